"""A whole search run: outputs, the search never touching the test split, the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import torch

from layerswarm.cli import main
from layerswarm.data import DataConfig
from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.data.imageset import ImageSet
from layerswarm.io import read_jsonl
from layerswarm.models.bundle import ModelConfig
from layerswarm.models.factory import pretrained_input
from layerswarm.run.config import RunConfig, SearchConfig
from layerswarm.run.rundir import META_KEYS, config_record
from layerswarm.run.search import run_search
from layerswarm.run.search_config import AnswerConfig, SearcherConfig
from layerswarm.training import TrainConfig
from layerswarm.training.config import OptimConfig


def tiny_config(**search_options) -> RunConfig:
    """A tiny search: the swarm alone, to its whole budget, no baselines (the tests of patience
    and of the baselines switch them on)."""
    options = {"particles": 3, "generations": 2, **search_options}
    return RunConfig(
        model=ModelConfig(name="test_efficientnet", weights="none"),
        data=DataConfig(
            data="digits", image=ImageConfig(size=16), splits=SplitConfig(train_per_class=8, val_per_class=4)
        ),
        fitness=TrainConfig(epochs=1, optim=OptimConfig(batch_size=16)),
        final=TrainConfig(epochs=2, optim=OptimConfig(batch_size=16)),
        search=SearchConfig(
            method=SearcherConfig(name="pso", options=options, patience=0),
            outcome=AnswerConfig(baselines="none", answer="mask"),
        ),
    )


def test_search_writes_every_output(tmp_path, digits16):
    cfg = tiny_config()
    result = run_search(cfg, tmp_path / "run", data=digits16)
    run = tmp_path / "run"
    saved = json.loads((run / "config.json").read_text())
    # the settings (the input resolved: size, crop and interpolation), then the run's record:
    # command line (none through the API), versions, device
    resolved = cfg.replace(data=cfg.data.resolved(pretrained_input("test_efficientnet")))
    assert (
        saved["data"]["image"]["size"],
        saved["data"]["image"]["crop_pct"],
        saved["data"]["image"]["interpolation"],
    ) == (
        16,
        1.0,
        "bilinear",
    )
    assert {k: v for k, v in saved.items() if k not in META_KEYS} == resolved.to_dict()
    assert saved["command"] is None and "torch" in saved["versions"] and saved["device"] == "cpu"
    assert saved["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()  # the kernels that made these numbers
    evals = read_jsonl(run / "evaluations.jsonl")
    assert len(evals) == 3 * 2
    # Within a generation, evaluations are logged as they finish (memo hits first, Ray in any order).
    assert sorted((e["generation"], e["particle"]) for e in evals) == [(g, p) for g in range(2) for p in range(3)]
    for e in evals:
        assert e["mask"] == [int(x > 0.5) for x in e["position"]]
        assert 0.0 <= e["fitness"] <= 1.0 and e["seconds"] >= 0  # a memoised repeat costs 0 s
    best = json.loads((run / "best_mask.json").read_text())
    top = max(evals, key=lambda e: e["fitness"])
    assert best["fitness"] == top["fitness"] and best["mask"] == result["mask"]
    assert len(best["units"]) == len(best["mask"])
    metrics = json.loads((run / "final" / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and "test_accuracy" in metrics["epochs"][-1]
    assert metrics["test_accuracy"] == result["test_accuracy"] and metrics["mask"] == best["mask"]
    assert (run / "final" / "model.safetensors").stat().st_size > 0


def test_the_search_never_reads_the_test_split(tmp_path, digits16):
    """Poison the test split (random labels, noise images): the search must not change."""
    g = torch.Generator().manual_seed(0)
    poisoned = dataclasses.replace(
        digits16,
        test=ImageSet(
            torch.randint(0, 256, digits16.test.images.shape, dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (len(digits16.test),), generator=g),
        ),
    )
    a = run_search(tiny_config(), tmp_path / "a", data=digits16)
    b = run_search(tiny_config(), tmp_path / "b", data=poisoned)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_jsonl(tmp_path / "a" / "evaluations.jsonl")) == strip(
        read_jsonl(tmp_path / "b" / "evaluations.jsonl")
    )
    assert a["mask"] == b["mask"] and a["fitness"] == b["fitness"]
    assert a["test_accuracy"] != b["test_accuracy"]  # only the final evaluation sees it


def test_search_command_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "search",
            "--model",
            "test_efficientnet",
            "--weights",
            "none",
            "--data",
            "digits",
            "--image-size",
            "16",
            "--train-per-class",
            "8",
            "--val-per-class",
            "4",
            "--searcher",
            "pso",
            "--particles",
            "2",
            "--generations",
            "2",
            "--fitness-epochs",
            "1",
            "--final-epochs",
            "1",
            "--batch-size",
            "16",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    best = json.loads((out / "best_mask.json").read_text())
    assert "".join(map(str, best["mask"])) in printed and "final test accuracy" in printed
    records = read_jsonl(out / "evaluations.jsonl")
    # the defaults: random start (the swarm's 2 x 2 asks only), no final selection, the baselines
    # linear, full and last-k (k = half of the 6 units) beside it, and the best validated answers
    assert len(records) == 4 and not [r for r in records if r.get("phase")]
    assert sorted(p.name for p in (out / "baselines").iterdir() if p.is_dir()) == ["full", "last-3", "linear"]
    answer = json.loads((out / "answer.json").read_text())
    assert answer["val_accuracy"] == max(answer["validation"].values()) and "answer: " in printed


def test_finetune_command_with_a_mask_file(tmp_path, capsys):
    mask = tmp_path / "m.json"
    mask.write_text(json.dumps({"mask": [0, 0, 0, 1, 1, 1]}))
    code = main(
        [
            "finetune",
            "--model",
            "test_efficientnet",
            "--weights",
            "none",
            "--data",
            "digits",
            "--image-size",
            "16",
            "--train-per-class",
            "8",
            "--val-per-class",
            "4",
            "--mask",
            str(mask),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "ft"),
            "--quiet",
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "ft" / "final" / "metrics.json").read_text())
    assert metrics["mask"] == [0, 0, 0, 1, 1, 1] and metrics["strategy"] == "mask"


def test_recorded_cpu_kernels_follow_the_dispatch_cap():
    # Pinning the kernels is how a record made on another CPU is reproduced (docs/results/index.md);
    # what config.json records must be what the run dispatched to, not what the CPU offers.
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run(
        [sys.executable, "-c", "from layerswarm.run.rundir import cpu_kernels; print(cpu_kernels())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "DEFAULT, oneDNN max AVX2"


def test_a_resume_keeps_the_first_runs_kernels_and_records_its_own():
    previous = {
        "seed": 0,
        "command": ["layerswarm", "search"],
        "versions": {},
        "device": "cpu",
        "cpu_kernels": "AVX2, oneDNN max AVX2",
    }
    record = config_record({"seed": 0}, {"command": ["layerswarm", "search", "--resume"]}, "cpu", previous, {})
    assert record["cpu_kernels"] == "AVX2, oneDNN max AVX2"
    assert record["resumed"][-1]["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
