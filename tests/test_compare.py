"""The comparison: same splits and seeds for every strategy, a table that matches the run files,
and an interrupted comparison that continues to the same result."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import pytest
from PIL import Image

from layerswarm.cli import main
from layerswarm.data import DataConfig
from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.errors import LayerswarmError
from layerswarm.models.bundle import ModelConfig
from layerswarm.run.compare import CompareConfig, parse_options, parse_strategies, run_compare, validate_compare
from layerswarm.training import TrainConfig
from layerswarm.training.config import AugmentConfig, EvalConfig, OptimConfig

DATA = DataConfig(
    data="digits", image=ImageConfig(size=16), splits=SplitConfig(train_per_class=8, val_per_class=4, max_test=60)
)
TRAIN = TrainConfig(
    epochs=5,
    evaluation=EvalConfig(test_every=5),
    optim=OptimConfig(batch_size=16, lr=0.05),
    augmentation=AugmentConfig(policy="none"),
)


def _cfg(**changes) -> CompareConfig:
    base = CompareConfig(
        model=ModelConfig(name="test_efficientnet", weights="none"),
        data=[DATA],
        strategies=["full", "linear"],
        train=TRAIN,
        repeats=2,
        seed=3,
    )
    return base.replace(**changes)


def _metrics(out: Path, strategy: str, repeat: int) -> dict:
    return json.loads((out / "digits" / strategy / f"repeat-{repeat}" / "final" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    started = []
    table = run_compare(_cfg(), out, on_start=lambda spec: started.append((spec.strategy, spec.repeat)))
    return out, table, started


def test_table_matches_the_run_files(finished):
    out, table, started = finished
    assert started == [("full", 0), ("linear", 0), ("full", 1), ("linear", 1)]  # whole repeats first
    rows = {r["strategy"]: r for r in csv.DictReader(io.StringIO((out / "results.csv").read_text()))}
    assert list(rows) == ["full", "linear"]
    for s in ("full", "linear"):
        runs = [_metrics(out, s, r) for r in range(2)]
        tests = [m["test_accuracy"] for m in runs]
        early = [m["epochs"][4]["test_accuracy"] for m in runs]
        assert float(rows[s]["digits_test_mean"]) == pytest.approx(statistics.fmean(tests), rel=1e-5)
        assert float(rows[s]["digits_test_std"]) == pytest.approx(statistics.stdev(tests), rel=1e-4, abs=1e-9)
        assert float(rows[s]["digits_acc5_mean"]) == pytest.approx(statistics.fmean(early), rel=1e-5)
        assert float(rows[s]["digits_seconds_per_run"]) == pytest.approx(
            statistics.fmean(m["wall_seconds"] for m in runs), rel=1e-4
        )
        assert rows[s]["digits_runs"] == "2"
        assert (out / "digits" / s / "repeat-0" / "final" / "model.safetensors").is_file()
    md = (out / "results.md").read_text()
    assert md == table.markdown() and "| full | " in md and "digits test acc %" in md


def test_every_strategy_gets_the_same_split_and_seed_per_repeat(finished):
    out, _, _ = finished
    runs = {
        (s, r): json.loads((out / "digits" / s / f"repeat-{r}" / "run.json").read_text())
        for s in ("full", "linear")
        for r in range(2)
    }
    for r in range(2):
        full, linear = runs[("full", r)], runs[("linear", r)]
        assert full["seed"] == linear["seed"] == 3 + r == full["train"]["seed"]
        assert full["data"] == linear["data"] and full["train"] == linear["train"]
    assert runs[("full", 0)]["data"] == runs[("full", 1)]["data"]  # one split across repeats


def test_resplit_draws_a_new_split_per_repeat(tmp_path):
    from layerswarm.run.compare import plan_runs

    specs = plan_runs(_cfg(resplit=True), tmp_path)
    assert [s.data.splits.seed for s in specs] == [0, 0, 1, 1]
    assert [s.data.splits.seed for s in plan_runs(_cfg(), tmp_path)] == [0, 0, 0, 0]


def test_interrupted_comparison_continues_to_the_same_result(finished, tmp_path):
    out, _, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    # interrupted during the last run: its folder has run.json but no final/metrics.json
    shutil.rmtree(copy / "digits" / "linear" / "repeat-1" / "final")
    started = []
    run_compare(_cfg(), copy, on_start=lambda spec: started.append((spec.strategy, spec.repeat)))
    assert started == [("linear", 1)]
    resumed, original = _metrics(copy, "linear", 1), _metrics(out, "linear", 1)
    assert resumed["test_accuracy"] == original["test_accuracy"]
    assert [e["train_loss"] for e in resumed["epochs"]] == [e["train_loss"] for e in original["epochs"]]

    def tests(path):
        return [(r["strategy"], r["digits_test_mean"]) for r in csv.DictReader(io.StringIO(path.read_text()))]

    assert tests(copy / "results.csv") == tests(out / "results.csv")


def test_changed_settings_in_the_same_folder_are_refused(finished, tmp_path):
    out, _, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with pytest.raises(LayerswarmError, match="different configuration") as err:
        run_compare(_cfg(train=TRAIN.replace(optim=TRAIN.optim.replace(lr=0.1))), copy)
    assert "\n" not in str(err.value)


def test_scratch_runs_from_random_weights(tmp_path):
    from layerswarm.run.compare import plan_runs

    cfg = _cfg(model=ModelConfig(name="test_efficientnet", weights="pretrained"), strategies=["scratch", "full"])
    scratch, full = plan_runs(cfg, tmp_path)[:2]
    assert scratch.config(cfg)["model"]["weights"] == "none"
    assert full.config(cfg)["model"]["weights"] == "pretrained"


def test_options_and_strategy_names():
    assert parse_options(["pso.particles=4", "l2sp.alpha=0.01", "mask.mask_file=best.json", "last-k.k=3"]) == {
        "pso": {"particles": 4},
        "l2sp": {"alpha": 0.01},
        "mask": {"mask_file": "best.json"},
        "last-k": {"k": 3},
    }
    with pytest.raises(LayerswarmError, match="STRATEGY.KEY=VALUE"):
        parse_options(["particles=4"])
    with pytest.raises(LayerswarmError, match="did you mean l2sp"):
        parse_strategies("full,l2-sp")
    with pytest.raises(LayerswarmError, match="not in --strategies"):
        _cfg(options={"pso": {"particles": 2}}).validate()
    with pytest.raises(LayerswarmError, match="its options are alpha, beta"):
        validate_compare(_cfg(strategies=["l2sp"], options={"l2sp": {"gamma": 1}}))


def _mit_indoor(root: Path) -> Path:
    """A tiny MIT Indoor copy in its publisher's layout (Images/ plus the official split lists)."""
    train, test = [], []
    for c, cls in enumerate(("bakery", "bar", "kitchen")):
        for i in range(8):
            rel = f"{cls}/{cls}_{i}.jpg"
            (root / "Images" / cls).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (12, 10), (80 * c, 30 * i % 256, 90)).save(root / "Images" / rel)
            (train if i < 6 else test).append(rel)
    (root / "TrainImages.txt").write_text("\n".join(train) + "\n")
    (root / "TestImages.txt").write_text("\n".join(test) + "\n")
    return root


def test_compare_command_with_a_paper_dataset(tmp_path, capsys):
    root = _mit_indoor(tmp_path / "indoor")
    out = tmp_path / "cmp"
    args = [
        "compare",
        "--model",
        "test_efficientnet",
        "--weights",
        "none",
        "--data",
        "digits",
        "--data",
        f"mit-indoor:{root}",
        "--image-size",
        "16",
        "--train-per-class",
        "4",
        "--val-per-class",
        "2",
        "--max-test",
        "30",
        "--strategies",
        "linear,last-k",
        "--option",
        "last-k.k=2",
        "--repeats",
        "1",
        "--epochs",
        "5",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| strategy | digits test acc % |" in printed and "mit-indoor test acc %" in printed
    assert printed.startswith((out / "results.md").read_text())
    assert (out / "mit-indoor" / "last-k" / "repeat-0" / "final" / "metrics.json").is_file()
    assert json.loads((out / "mit-indoor" / "last-k" / "repeat-0" / "final" / "metrics.json").read_text())["mask"] == [
        0,
        0,
        0,
        0,
        1,
        1,
    ]
    # run again: nothing is retrained, the same table is printed
    assert main(args) == 0
    assert capsys.readouterr().out == printed


def test_compare_command_one_line_errors(tmp_path, capsys):
    code = main(["compare", "--data", "digits", "--strategies", "full,nope", "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("layerswarm: error: unknown strategy 'nope'") and "\n" not in err


@pytest.mark.parametrize("searcher", ["ga", "pso"])
def test_pso_strategy_searches_through_the_driver_with_any_searcher_and_memoises(tmp_path, searcher):
    from layerswarm.io import read_jsonl

    options = {"pso": {"searcher": searcher, "particles": 4, "generations": 4, "fitness_epochs": 1}}
    cfg = _cfg(
        strategies=["pso"],
        options=options,
        repeats=1,
        train=TRAIN.replace(epochs=1, evaluation=TRAIN.evaluation.replace(test_every=1)),
    )
    run_compare(cfg, tmp_path)
    run = tmp_path / "digits" / "pso" / "repeat-0"
    records = read_jsonl(run / "evaluations.jsonl")
    assert 0 < len(records) <= 16 and _metrics(tmp_path, "pso", 0)["search"]["evaluations"] == len(records)
    seen: set[tuple[int, ...]] = set()
    for r in records:  # a mask met again is answered by the memo, never trained twice
        assert (r["epochs_trained"] == 0) == (tuple(r["mask"]) in seen), r
        seen.add(tuple(r["mask"]))
    if searcher == "pso":
        assert len(seen) < len(records)  # the swarm does meet masks again: those cost nothing
    assert json.loads((run / "best_mask.json").read_text())["searcher"] == searcher
