"""The final fine-tune resumes from its last completed epoch (a checkpoint written atomically
after every epoch) and ends exactly as the same run never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from layerswarm.cli import main
from layerswarm.data import DataConfig
from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.models.config import ModelConfig
from layerswarm.run.config import RunConfig, SearchConfig
from layerswarm.run.search import FINAL_CHECKPOINT, run_search
from layerswarm.run.search_config import AnswerConfig, SearcherConfig
from layerswarm.training import TrainConfig
from layerswarm.training.config import EvalConfig, OptimConfig


def _config(keep_best: bool) -> RunConfig:
    optim, evaluation = OptimConfig(batch_size=16, lr=0.05), EvalConfig(keep_best=keep_best)
    return RunConfig(
        model=ModelConfig(name="test_efficientnet", weights="none"),
        data=DataConfig(
            data="digits",
            image=ImageConfig(size=16),
            splits=SplitConfig(train_per_class=8, val_per_class=4, max_test=40),
        ),
        fitness=TrainConfig(epochs=1, optim=optim, evaluation=evaluation),
        final=TrainConfig(epochs=5, optim=optim, evaluation=evaluation.replace(val_every=2, test_every=2)),
        search=SearchConfig(
            method=SearcherConfig(options={"particles": 2, "generations": 1}),
            outcome=AnswerConfig(baselines="none", answer="mask"),
        ),
    )


def _strip(epochs: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]


def _same_model(a, b) -> None:
    wa, wb = load_file(str(a / "final" / "model.safetensors")), load_file(str(b / "final" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.parametrize("keep_best", [False, True])
def test_interrupted_final_finetune_resumes_to_the_same_result(tmp_path, keep_best):
    cfg = _config(keep_best)
    straight = tmp_path / "straight"
    expected = run_search(cfg, straight, report=False)

    cut = tmp_path / "cut"

    def stop_in_epoch_4(record):
        if record["epoch"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, cut, report=False, on_final_epoch=stop_in_epoch_4)
    checkpoint = cut / "final" / FINAL_CHECKPOINT
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)  # tensors and plain values only
    assert len(saved["state"]["history"]) == 3 and not (cut / "final" / "metrics.json").exists()

    seen = []
    resumed = run_search(cfg, cut, resume=True, report=False, on_final_epoch=lambda r: seen.append(r["epoch"]))
    assert seen == [4, 5]  # epochs 1-3 were not trained again
    assert resumed["test_accuracy"] == expected["test_accuracy"]
    a, b = (json.loads((d / "final" / "metrics.json").read_text()) for d in (straight, cut))
    assert _strip(a["epochs"]) == _strip(b["epochs"])
    assert a["val_accuracy"] == b["val_accuracy"] and a.get("restored_epoch") == b.get("restored_epoch")
    # validated as the uninterrupted run: every epoch for keep_best, else every 2nd and the last
    unvalidated = [e["val_accuracy"] is None for e in b["epochs"]]
    assert unvalidated == ([False] * 5 if keep_best else [True, False, True, False, False])
    _same_model(straight, cut)
    assert not checkpoint.exists()  # removed once the results are saved


def test_killed_final_finetune_resumes_through_the_command_line(tmp_path):
    args = [
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
        "--max-test",
        "40",
        "--batch-size",
        "16",
        "--searcher",
        "pso",
        "--particles",
        "2",
        "--generations",
        "1",
        "--fitness-epochs",
        "1",
        "--final-epochs",
        "8",
        "--quiet",
    ]
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    assert main(["search", *args, "--out", str(straight)]) == 0

    proc = subprocess.Popen(
        [sys.executable, "-m", "layerswarm.cli", "search", *args, "--out", str(cut)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint = cut / "final" / FINAL_CHECKPOINT
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    if (cut / "final" / "metrics.json").exists():
        pytest.skip("the fine-tune finished before the kill")
    done = len(torch.load(checkpoint, map_location="cpu", weights_only=True)["state"]["history"])
    assert 1 <= done < 8

    assert main(["search", "--resume", str(cut), "--quiet"]) == 0
    a, b = (json.loads((d / "final" / "metrics.json").read_text()) for d in (straight, cut))
    assert _strip(a["epochs"]) == _strip(b["epochs"]) and a["test_accuracy"] == b["test_accuracy"]
    _same_model(straight, cut)
