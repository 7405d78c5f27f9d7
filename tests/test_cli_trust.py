"""A command line you can trust with a day's work: everything is checked before
anything is written, resume is explicit, runs can be replaced only on purpose, configuration
files, file modes, export of a mask. Through the command line, on tiny models and data."""

from __future__ import annotations

import json
import os
import shutil
import stat

import numpy as np
import pytest
from PIL import Image

from layerswarm.cli import main

DATA = [
    "--model",
    "test_efficientnet",
    "--weights",
    "none",
    "--data",
    "digits",
    "--image-size",
    "16",
    "--train-per-class",
    "5",
    "--val-per-class",
    "3",
    "--max-test",
    "20",
    "--batch-size",
    "16",
]
SEARCH = [
    "search",
    *DATA,
    "--searcher",
    "pso",
    "--particles",
    "2",
    "--generations",
    "1",
    "--fitness-epochs",
    "1",
    "--final-epochs",
    "1",
    "--quiet",
]
FINETUNE = ["finetune", *DATA, "--epochs", "1", "--quiet"]


def run_error(capsys, argv) -> str:
    """Exit code 2 and exactly one line on stderr, naming the problem."""
    capsys.readouterr()  # what earlier commands of the test printed
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("layerswarm: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished tiny search, written under umask 022."""
    out = tmp_path_factory.mktemp("finished") / "run"
    old = os.umask(0o022)
    try:
        assert main([*SEARCH, "--out", str(out)]) == 0
    finally:
        os.umask(old)
    return out


def _copy(run, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(run, dst)
    return dst


@pytest.mark.parametrize(
    "bad, needle",
    [
        (["--granularity", "blok"], "--granularity"),
        (["--particles", "0"], "--particles"),
        (["--generations", "0"], "--generations"),
        (["--final-epochs", "0"], "--final-epochs"),
        (["--fitness-epochs", "0"], "--fitness-epochs"),
        (["--optimizer", "adam"], "--optimizer"),
        (["--searcher", "pso2"], "--searcher"),
    ],
)
def test_bad_search_options_are_refused_before_any_file(capsys, tmp_path, bad, needle):
    out = tmp_path / "e" / "run"
    msg = run_error(capsys, [*SEARCH, *bad, "--out", str(out)])
    assert needle in msg and "--help" in msg
    assert not (tmp_path / "e").exists()


def test_choices_show_in_help(capsys):
    assert main(["search", "--help"]) == 0
    text = capsys.readouterr().out
    for shown in (
        "[block|stage|module]",
        "[sgd|adamw]",
        "[step|cosine|constant]",
        "[pso|random|tpe|ga|greedy|exhaustive]",
    ):
        assert shown in text


def test_choices_agree_with_the_code():
    from layerswarm.cli import SEARCHER_CHOICES, STRATEGY_CHOICES, TRAIN_CHOICES
    from layerswarm.models.config import GRANULARITY_CHOICES
    from layerswarm.searchers import SEARCHERS
    from layerswarm.strategies import STRATEGIES
    from layerswarm.training.augment import AUGMENTATIONS
    from layerswarm.units import GRANULARITIES

    assert tuple(GRANULARITY_CHOICES) == tuple(GRANULARITIES)
    from layerswarm.models.config import POOLING_CHOICES
    from layerswarm.models.text import POOLINGS

    assert tuple(POOLING_CHOICES) == tuple(POOLINGS)
    assert set(SEARCHER_CHOICES) == set(SEARCHERS)
    assert set(STRATEGY_CHOICES) == set(STRATEGIES)
    assert set(TRAIN_CHOICES["augment"]) == set(AUGMENTATIONS)


def test_bad_settings_from_a_config_file_are_refused_before_any_file(capsys, tmp_path):
    """A config file bypasses click's checks: the run's own checks still come before any write."""
    config = tmp_path / "bad.json"
    config.write_text(
        json.dumps(
            {
                "model": {"name": "test_efficientnet", "weights": "none", "granularity": "blok"},
                "data": {"data": "digits", "image_size": 16, "train_per_class": 5, "val_per_class": 3},
            }
        )
    )
    out = tmp_path / "run"
    msg = run_error(capsys, [*SEARCH, "--config", str(config), "--out", str(out)])
    assert "granularity 'blok'" in msg
    assert not out.exists()
    config.write_text(json.dumps({"final": {"epochs": 0}}))
    msg = run_error(capsys, ["search", "--config", str(config), "--out", str(out)])
    assert "final_epochs=0" in msg and "--final-epochs" in msg
    assert not out.exists()
    config.write_text(json.dumps({"modle": {}}))
    msg = run_error(capsys, ["search", "--config", str(config), "--out", str(out)])
    assert "unknown keys ['modle']" in msg


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_unavailable_device_leaves_nothing_and_the_corrected_command_runs(capsys, tmp_path):
    out = tmp_path / "e" / "run"
    msg = run_error(capsys, [*SEARCH, "--device", "cuda", "--out", str(out)])
    assert "not available" in msg and "--device cpu" in msg
    assert not (tmp_path / "e").exists()
    assert main([*SEARCH, "--out", str(out)]) == 0  # the corrected command: no "already holds a run"
    assert (out / "final" / "metrics.json").is_file()


def test_finished_run_records_command_versions_device_and_is_readable(finished):
    config = json.loads((finished / "config.json").read_text())
    assert config["command"][:2] == ["layerswarm", "search"] and "--particles" in config["command"]
    assert {"python", "torch", "timm", "layerswarm"} <= set(config["versions"])
    assert config["device"] == "cpu"
    files = [p for p in finished.rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" for p in files) and any(p.name == "config.json" for p in files)
    modes = {str(p.relative_to(finished)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o644"}, modes


def test_a_run_is_replaced_only_with_overwrite(capsys, finished, tmp_path):
    run = _copy(finished, tmp_path)
    msg = run_error(capsys, [*SEARCH, "--out", str(run)])
    assert "already holds a run" in msg and "--overwrite" in msg and "--resume" in msg
    (run / "report.html").write_text("the old report")
    (run / "notes.txt").write_text("mine")
    assert main([*SEARCH, "--seed", "1", "--out", str(run), "--overwrite"]) == 0
    assert json.loads((run / "config.json").read_text())["seed"] == 1
    assert (run / "report.html").read_text() != "the old report"
    assert (run / "notes.txt").read_text() == "mine"  # only layerswarm's own files are replaced


def test_resume_refuses_changed_settings_naming_each(capsys, finished, tmp_path):
    run = _copy(finished, tmp_path)
    before = (run / "config.json").read_text()
    msg = run_error(capsys, ["search", "--resume", str(run), "--lr", "0.1", "--seed", "3"])
    assert "fitness.optim.lr 0.01 -> 0.1" in msg and "seed 0 -> 3" in msg and "data.splits.seed 0 -> 3" in msg
    # the final fine-tune has run: its settings are fixed now too
    msg = run_error(capsys, ["search", "--resume", str(run), "--final-epochs", "2"])
    assert "final.epochs 1 -> 2" in msg and "once the final fine-tune has started" in msg
    msg = run_error(capsys, ["search", "--resume", str(run), "--config", str(run / "config.json")])
    assert "--resume excludes --config" in msg
    assert (run / "config.json").read_text() == before


def test_resume_applies_and_records_safe_changes(capsys, finished, tmp_path):
    """Stopped before the final fine-tune: its epochs may change; the change is recorded."""
    run = _copy(finished, tmp_path)
    shutil.rmtree(run / "final")
    (run / "best_mask.json").unlink()
    assert main(["search", "--resume", str(run), "--final-epochs", "2", "--retries", "2", "--quiet"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["final"]["epochs"] == 2 and config["search"]["executor"]["retries"] == 2
    assert config["command"] == json.loads((finished / "config.json").read_text())["command"]  # the first one
    (entry,) = config["resumed"]
    assert entry["changed"] == {"final.epochs": {"old": 1, "new": 2}, "search.executor.retries": {"old": 1, "new": 2}}
    assert entry["command"][:3] == ["layerswarm", "search", "--resume"]
    metrics = json.loads((run / "final" / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2
    # the search itself was not run again: same evaluations, same mask
    assert (run / "evaluations.jsonl").read_text() == (finished / "evaluations.jsonl").read_text()
    assert (
        json.loads((run / "best_mask.json").read_text())["mask"]
        == json.loads((finished / "best_mask.json").read_text())["mask"]
    )


def test_a_run_repeats_from_its_own_config_json(capsys, finished, tmp_path):
    again = tmp_path / "again"
    assert main(["search", "--config", str(finished / "config.json"), "--out", str(again), "--quiet"]) == 0
    a, b = (json.loads((d / "final" / "metrics.json").read_text()) for d in (finished, again))
    assert a["mask"] == b["mask"] and a["test_accuracy"] == b["test_accuracy"]
    first, second = (json.loads((d / "config.json").read_text()) for d in (finished, again))
    for key in ("model", "data", "fitness", "final", "search", "seed", "speed"):
        assert first[key] == second[key], key


def test_config_file_yaml_with_flags_overriding(capsys, tmp_path):
    config = tmp_path / "ft.yaml"
    config.write_text(
        "model: {name: test_efficientnet, weights: none}\n"
        "data: {data: digits, image_size: 16, train_per_class: 5, val_per_class: 3, max_test: 20}\n"
        "train: {lr: 0.05, epochs: 3, batch_size: 16}\n"
    )
    out = tmp_path / "ft"
    assert main(["finetune", "--config", str(config), "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["optim"]["lr"] == 0.05 and saved["train"]["epochs"] == 1  # from the file; the flag wins
    assert saved["kind"] == "finetune" and saved["command"][:2] == ["layerswarm", "finetune"]
    assert len(json.loads((out / "final" / "metrics.json").read_text())["epochs"]) == 1
    # a recipe given over a file: the recipe's settings, the file's others, the options given on top
    out2 = tmp_path / "ft2"
    assert (
        main(
            [
                "finetune",
                "--config",
                str(config),
                "--recipe",
                "paper",
                "--momentum",
                "0.5",
                "--epochs",
                "1",
                "--quiet",
                "--out",
                str(out2),
            ]
        )
        == 0
    )
    train = json.loads((out2 / "config.json").read_text())["train"]
    assert train["recipe"] == "paper" and train["optim"]["lr"] == 0.01 and train["optim"]["momentum"] == 0.5
    assert train["optim"]["batch_size"] == 16  # not a recipe setting: from the file
    config.write_text("model: [unclosed\n")
    msg = run_error(capsys, ["finetune", "--config", str(config), "--out", str(tmp_path / "x")])
    assert "neither JSON nor valid YAML" in msg


def _tree(root, classes, per_class=8):
    for i, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            Image.fromarray(np.full((12, 12, 3), 30 * i + j, dtype=np.uint8)).save(root / c / f"{j}.png")
    return root


def test_finetune_refuses_degenerate_runs(capsys, tmp_path):
    one = _tree(tmp_path / "one", ["cat"])
    out = tmp_path / "o"
    msg = run_error(
        capsys,
        [
            "finetune",
            "--model",
            "test_efficientnet",
            "--weights",
            "none",
            "--image-size",
            "16",
            "--data",
            str(one),
            "--epochs",
            "1",
            "--out",
            str(out),
        ],
    )
    assert "1 class (cat)" in msg and "at least 2" in msg
    msg = run_error(capsys, [*FINETUNE, "--epochs", "0", "--out", str(out)])
    assert "--epochs" in msg
    assert not out.exists()


def test_finetune_refuses_an_existing_run_folder_without_overwrite(capsys, tmp_path):
    out = tmp_path / "ft"
    assert main([*FINETUNE, "--out", str(out), "--tensorboard"]) == 0
    assert (out / "config.json").is_file() and (out / "final" / "model.safetensors").is_file()
    assert list((out / "tensorboard" / "final").iterdir())
    model = (out / "final" / "model.safetensors").read_bytes()
    (out / "report.html").write_text("the old report")
    msg = run_error(capsys, [*FINETUNE, "--out", str(out)])
    assert "already holds a run" in msg and "--overwrite" in msg
    assert (out / "final" / "model.safetensors").read_bytes() == model
    assert main([*FINETUNE, "--strategy", "linear", "--out", str(out), "--overwrite"]) == 0
    assert not (out / "report.html").exists() and not (out / "tensorboard").exists()
    assert json.loads((out / "final" / "metrics.json").read_text())["strategy"] == "linear"


def test_version(capsys):
    assert main(["--version"]) == 0
    from layerswarm import __version__

    assert capsys.readouterr().out.strip() == f"layerswarm {__version__}"


def test_models_without_a_match_is_an_error(capsys):
    msg = run_error(capsys, ["models", "zzz*"])
    assert "no model name matches 'zzz*'" in msg
    assert main(["models", "efficientnet_lite*"]) == 0
    names = capsys.readouterr().out.split()
    assert len(names) == len(set(names)) and "efficientnet_lite0" in names


def test_predict_reads_folders_and_skips_unreadable_images(capsys, finished, tmp_path):
    images = _tree(tmp_path / "imgs", ["x"], per_class=3) / "x"
    (images / "broken.png").write_bytes(b"not an image")
    assert main(["predict", str(finished), str(images), "--top-k", "2", "--json"]) == 0
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert sorted(os.path.basename(r["image"]) for r in results) == ["0.png", "1.png", "2.png"]
    assert "skipped 1 unreadable image(s)" in captured.err and "broken.png" in captured.err
    msg = run_error(capsys, ["predict", str(finished), str(images / "broken.png")])
    assert "no readable image" in msg


def test_export_and_apply_mask(capsys, finished, tmp_path):
    import fnmatch

    import timm

    import layerswarm

    assert main(["export", str(finished)]) == 0
    spec = json.loads((finished / "mask_export.json").read_text())
    best = json.loads((finished / "best_mask.json").read_text())
    assert spec["mask"] == best["mask"] and spec["units"] == best["units"]
    model = timm.create_model("test_efficientnet", num_classes=5)  # the user's own model and head
    names = [n for n, _ in model.named_parameters()]
    # the patterns and the requires_grad map say the same
    for n in names:
        frozen = any(fnmatch.fnmatchcase(n, pat) for pat in spec["frozen_patterns"])
        assert spec["requires_grad"].get(n, True) is (not frozen), n
    assert any(not v for v in spec["requires_grad"].values()) or all(best["mask"])

    for source in (finished / "mask_export.json", finished / "best_mask.json", finished):
        model = timm.create_model("test_efficientnet", num_classes=5)
        frozen_modules = layerswarm.apply_mask(model, source)
        grads = {n: p.requires_grad for n, p in model.named_parameters()}
        assert grads == {n: spec["requires_grad"].get(n, True) for n in grads}, source
        assert frozen_modules == spec["frozen_modules"]
        model.train()  # frozen modules stay in eval mode for the forward pass (BatchNorm statistics kept)
        before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
        model(__import__("torch").rand(4, 3, 16, 16))
        after = model.state_dict()
        for m in frozen_modules:
            for k in before:
                if k.startswith(m + "."):
                    assert __import__("torch").equal(before[k], after[k]), k

    msg = run_error(capsys, ["export", str(tmp_path)])
    assert "holds no run" in msg


def test_the_readme_snippet_applies_an_exported_mask(finished):
    """The plain PyTorch/timm lines of README's "Use a mask elsewhere" run as printed (offline:
    random weights) and freeze what the export says."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## Use a mask elsewhere") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert main(["export", str(finished)]) == 0
    code = code.replace("runs/fmnist/mask_export.json", str(finished / "mask_export.json"))
    code = code.replace("pretrained=True", "pretrained=False")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    spec, model = scope["spec"], scope["model"]
    assert {n: p.requires_grad for n, p in model.named_parameters()} == {
        n: spec["requires_grad"].get(n, True) for n, _ in model.named_parameters()
    }
    import torch

    model.train()
    model(torch.rand(2, 3, 16, 16))  # the pre-hooks put the frozen modules back in eval mode
    assert all(not model.get_submodule(m).training for m in spec["frozen_modules"])
