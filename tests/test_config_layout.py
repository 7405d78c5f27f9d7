"""The configurations' groups (``TrainConfig.optim``, ``DataConfig.splits``, ``SearchConfig.method``,
...) against the flat layout they replaced: saved run folders of every format generation read
back as they did, the defaults, the paper preset and the command line build what they built,
old dotted keys still name their setting, and each group refuses a bad value in one line.

``fixtures/flat_configs.json`` holds what the code before the groups read and built, flattened
to its dotted keys: ``defaults`` (``RunConfig()``), ``compare`` (``CompareConfig()``), and, as
the keys that differ from ``defaults`` (``~removed``: keys they lack), ``paper``
(``RunConfig.from_preset("paper")``), ``cli`` (the configuration ``layerswarm search ARGS``
handed to ``run_search``), ``records`` (``RunConfig.from_dict`` of one ``config.json`` of each
format generation under benchmarks/results; ``finetune_records``: the data and train parts of a
fine-tune's, in full), and ``resumed`` (the configuration ``layerswarm search --resume`` on a copy
of that record handed to ``run_search``, as its differences from the record). It was written once
by running those calls with the flat-layout code (layerswarm 0.1.0 before the groups) and is
never regenerated: it is the reference the grouped code must reproduce.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

import layerswarm.run.search
from layerswarm.cli import main
from layerswarm.config_utils import flatten, leaf_fields
from layerswarm.data.config import DataConfig, ImageConfig, SplitConfig, TextConfig
from layerswarm.errors import LayerswarmError
from layerswarm.run.config import CompareConfig, RunConfig
from layerswarm.run.rundir import META_KEYS
from layerswarm.run.search import _check_resume
from layerswarm.run.search_config import (
    AnswerConfig,
    ExecutorConfig,
    FitnessConfig,
    SearchConfig,
    SearcherConfig,
    SelectionConfig,
)
from layerswarm.speed.config import SpeedConfig
from layerswarm.training.config import (
    AugmentConfig,
    EvalConfig,
    OptimConfig,
    RuntimeConfig,
    TrainConfig,
    recipe_config,
)

ROOT = Path(__file__).parents[1]
FLAT = json.loads((Path(__file__).parent / "fixtures" / "flat_configs.json").read_text())
PARTS: dict[str, Any] = {
    "data": DataConfig,
    "fitness": TrainConfig,
    "final": TrainConfig,
    "train": TrainConfig,
    "search": SearchConfig,
    "speed": SpeedConfig,
}


def as_flat_layout(config: dict[str, Any]) -> dict[str, Any]:
    """A configuration's dotted keys (``flatten``) named as the flat layout named them:
    ``fitness.optim.lr`` -> ``fitness.lr``, ``search.method.options.c1`` -> ``search.options.c1``."""
    out = {}
    for key, value in flatten(config, lists=True).items():
        part, _, rest = key.partition(".")
        cls = PARTS.get(re.sub(r"\[\d+\]$", "", part))
        if cls is not None and rest:
            before = {new: old for old, new in cls.moved.items()}
            for new in sorted(before, key=len, reverse=True):  # the longest place first
                if rest == new or rest.startswith(new + "."):
                    rest = before[new] + rest[len(new) :]
                    break
            key = f"{part}.{rest}"
        out[key] = value
    return out


def expand(changes: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """A stored configuration: ``base`` with ``changes`` (``~removed``: the keys it lacks)."""
    out = {k: v for k, v in base.items() if k not in changes.get("~removed", ())}
    out.update({k: v for k, v in changes.items() if k != "~removed"})
    return out


@pytest.fixture
def captured(monkeypatch):
    seen: dict[str, Any] = {}

    def fake_run_search(cfg, out_dir, **kw):
        seen["cfg"] = cfg
        return {"mask": [0], "fitness": 0.5, "test_accuracy": 0.5, "units": ["u"], "out_dir": str(out_dir)}

    monkeypatch.setattr(layerswarm.run.search, "run_search", fake_run_search)
    return seen


def test_the_defaults_and_the_paper_preset_are_as_before():
    assert as_flat_layout(RunConfig().to_dict()) == FLAT["defaults"]
    assert as_flat_layout(RunConfig.from_preset("paper").to_dict()) == expand(FLAT["paper"], FLAT["defaults"])
    assert as_flat_layout(CompareConfig().to_dict()) == FLAT["compare"]


@pytest.mark.parametrize("args", sorted(FLAT["cli"]))
def test_the_command_line_builds_what_it_built(args, captured, tmp_path):
    """Option names and defaults are unchanged, and each lands where its setting lives now."""
    assert main(["search", *args.split(), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert as_flat_layout(captured["cfg"].to_dict()) == expand(FLAT["cli"][args], FLAT["defaults"])


@pytest.mark.parametrize("record", sorted(FLAT["records"]))
def test_a_record_of_each_format_reads_as_before(record):
    cfg = RunConfig.from_dict(json.loads((ROOT / record).read_text()))
    assert as_flat_layout(cfg.to_dict()) == expand(FLAT["records"][record], FLAT["defaults"])


@pytest.mark.parametrize("record", sorted(FLAT["finetune_records"]))
def test_a_finetune_record_reads_as_before(record):
    saved = json.loads((ROOT / record).read_text())
    read = {
        "data": DataConfig.from_dict(saved["data"]).to_dict(),
        "train": TrainConfig.from_dict(saved["train"]).to_dict(),
    }
    assert as_flat_layout(read) == FLAT["finetune_records"][record]


@pytest.mark.parametrize("resume", sorted(FLAT["resumed"]))
def test_resuming_an_old_record_runs_the_same_configuration(resume, captured, tmp_path):
    """``--resume`` on a copy of a flat-layout record hands the run what it handed it before; the
    safe changes given with it are the only differences, named by their keys now."""
    record, *options = resume.split()
    run = tmp_path / "old"
    run.mkdir()
    shutil.copy(ROOT / record, run / "config.json")
    assert main(["search", "--resume", str(run), *options, "--quiet"]) == 0
    cfg = captured["cfg"]
    expected = expand(FLAT["resumed"][resume], expand(FLAT["records"][record], FLAT["defaults"]))
    assert as_flat_layout(cfg.to_dict()) == expected
    changes = _check_resume(run, cfg, started=False)  # what run_search applies, or refuses
    old = expand(FLAT["records"][record], FLAT["defaults"])
    assert {RunConfig.current_key(k) for k in FLAT["resumed"][resume]} == set(changes)
    assert all(changes[RunConfig.current_key(k)] == (old[k], v) for k, v in FLAT["resumed"][resume].items())


def test_every_tracked_config_json_reads_into_the_groups_and_writes_them():
    """Every config.json under benchmarks/results (searches and fine-tunes, every generation of
    the flat layout) reads back with each setting it holds at its place now, and what is written
    from it is the grouped layout, which reads back to the same configuration."""
    files = sorted((ROOT / "benchmarks" / "results").glob("**/config.json"))
    assert len(files) > 100
    for path in files:
        saved = {k: v for k, v in json.loads(path.read_text()).items() if k not in META_KEYS}
        if "train" in saved:  # a fine-tune's: its data and train parts
            parts = {"data": DataConfig.from_dict(saved["data"]), "train": TrainConfig.from_dict(saved["train"])}
            read = {k: v.to_dict() for k, v in parts.items()}
            saved = {k: saved[k] for k in parts}
        else:
            cfg = RunConfig.from_dict(saved)
            read = cfg.to_dict()
            assert RunConfig.from_dict(read) == cfg, path
            assert "optim" in read["fitness"] and "method" in read["search"] and "splits" in read["data"], path
        grouped = "optim" in (saved.get("fitness") or saved.get("train") or {})  # written since the groups
        flat = flatten(read) if grouped else as_flat_layout(read)
        assert {k: flat.get(k) for k in flatten(saved)} == flatten(saved), path


def test_old_dotted_keys_name_their_setting_now():
    assert RunConfig.current_key("fitness.lr") == "fitness.optim.lr"
    assert RunConfig.current_key("final.augment") == "final.augmentation.policy"
    assert RunConfig.current_key("data.val_fraction") == "data.splits.val_holdout_fraction"
    assert RunConfig.current_key("data.image_size") == "data.image.size"
    assert RunConfig.current_key("speed.val_fraction") == "speed.fitness_val_fraction"
    assert RunConfig.current_key("search.searcher") == "search.method.name"
    assert RunConfig.current_key("search.options.c1") == "search.method.options.c1"
    assert RunConfig.current_key("search.answer") == "search.outcome.answer"
    assert RunConfig.current_key("search.final_select") == "search.selection.top"
    for key in ("fitness.optim.lr", "search.outcome.answer", "seed", "model.name", "preset"):
        assert RunConfig.current_key(key) == key  # today's keys stay
    assert recipe_config("paper", lr=0.05, val_every=2).optim.lr == 0.05
    assert recipe_config("paper", **{"optim.lr": 0.05}) == recipe_config("paper", lr=0.05)


def test_a_preset_of_old_keys_gives_the_same_configuration(monkeypatch):
    """A preset written with the flat layout's keys (as every preset was) sets the same values."""
    from layerswarm.run import presets

    new = presets.PRESETS["paper"]
    before = {
        key.replace("search.method.name", "search.searcher")
        .replace("search.method.", "search.")
        .replace("search.fitness.steps", "search.fitness_steps")
        .replace("search.fitness.repeats", "search.fitness_repeats")
        .replace("search.fitness.score", "search.fitness_score")
        .replace("search.selection.top", "search.final_select")
        .replace("search.selection.epochs", "search.select_epochs")
        .replace("search.outcome.", "search."): value
        for key, value in new.items()
    }
    assert {RunConfig.current_key(k) for k in before} == set(new)
    monkeypatch.setitem(presets.PRESETS, "paper", before)
    old_keys = RunConfig.from_preset("paper")
    monkeypatch.setitem(presets.PRESETS, "paper", new)
    assert old_keys == RunConfig.from_preset("paper")


def test_a_config_file_of_either_layout_gives_the_same_run(captured, tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text(
        "fitness:\n  epochs: 2\n  lr: 0.05\nsearch:\n  patience: 1\n  answer: mask\ndata:\n  image_size: 48\n"
    )
    grouped = tmp_path / "grouped.yaml"
    grouped.write_text(
        "fitness:\n  epochs: 2\n  optim:\n    lr: 0.05\n"
        "search:\n  method:\n    patience: 1\n  outcome:\n    answer: mask\n"
        "data:\n  image:\n    size: 48\n"
    )
    runs = []
    for path in (flat, grouped):
        assert main(["search", "--config", str(path), "--out", str(tmp_path / path.stem), "--quiet"]) == 0
        runs.append(captured["cfg"])
    assert runs[0] == runs[1]
    cfg = runs[0]
    assert (cfg.fitness.optim.lr, cfg.search.method.patience, cfg.search.outcome.answer) == (0.05, 1, "mask")
    assert cfg.data.image.size == 48 and cfg.search.outcome.baselines == RunConfig().search.outcome.baselines


def test_the_option_names_are_the_flat_keys():
    """The command line keeps its option names: each setting's name before the groups."""
    names = {name: path for name, path, _owner, _field in leaf_fields(TrainConfig)}
    assert names["lr"] == "optim.lr" and names["augment"] == "augmentation.policy"
    assert names["val_every"] == "evaluation.val_every" and names["device"] == "runtime.device"
    names = {name: path for name, path, _owner, _field in leaf_fields(DataConfig)}
    assert names["val_fraction"] == "splits.val_holdout_fraction" and names["image_size"] == "image.size"
    names = {name: path for name, path, _owner, _field in leaf_fields(SearchConfig)}
    assert names["searcher"] == "method.name" and names["final_select"] == "selection.top"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: OptimConfig(optimizer="adam"), "optimizer='adam': use --optimizer sgd or adamw"),
        (lambda: OptimConfig(lr=-0.1), "lr=-0.1 is negative"),
        (lambda: OptimConfig(momentum=1.0), "momentum=1.0 is outside [0, 1)"),
        (lambda: OptimConfig(batch_size=0), "batch_size=0 is not positive"),
        (lambda: OptimConfig(schedule="linear"), "schedule='linear'"),
        (lambda: OptimConfig(head_init="hot"), "head_init='hot'"),
        (lambda: AugmentConfig(policy="mixup"), "augment='mixup'"),
        (lambda: AugmentConfig(rrc_scale_min=0.0), "rrc_scale_min=0.0 is outside (0, 1]"),
        (lambda: EvalConfig(val_every=0), "val_every=0 is not positive"),
        (lambda: EvalConfig(eval_batch_size=0), "eval_batch_size=0 is not positive"),
        (lambda: RuntimeConfig(device=""), "device='' is empty"),
        (
            lambda: SplitConfig(val_holdout_fraction=1.0),
            "val_holdout_fraction=1.0 is outside (0, 1): pass --val-fraction",
        ),
        (lambda: SplitConfig(train_per_class=0), "train_per_class=0 must be at least 1"),
        (lambda: ImageConfig(size=0), "image_size=0 is not positive: pass --image-size"),
        (lambda: ImageConfig(interpolation="nearest"), "interpolation='nearest' is not known"),
        (lambda: TextConfig(max_length=1), "max_length=1 is too short"),
        (lambda: SearcherConfig(init="best"), "init must be one of random, baselines"),
        (lambda: SearcherConfig(patience=-1), "patience must be >= 0"),
        (lambda: ExecutorConfig(max_failed_share=2.0), "max_failed_share must be between 0 and 1"),
        (lambda: FitnessConfig(repeats=0), "repeats must be >= 1 (--fitness-repeats)"),
        (lambda: FitnessConfig(score="loss"), "score must be one of"),
        (lambda: SelectionConfig(top=-1), "top must be >= 0 (--final-select"),
        (lambda: AnswerConfig(answer="test"), "answer must be one of mask, validation"),
        (lambda: SpeedConfig(fitness_val_fraction=0.0), "fitness_val_fraction=0.0 is outside (0, 1]"),
    ],
)
def test_each_group_refuses_a_bad_value_in_one_line(make, message):
    with pytest.raises(LayerswarmError) as err:
        make()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_value_in_a_saved_file_is_refused_before_anything_is_written(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("fitness:\n  lr: -1\n")
    assert main(["search", "--config", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert (
        capsys.readouterr().err.strip() == "layerswarm: error: lr=-1 is negative: pass --lr with a rate >= 0, e.g. 0.01"
    )
    assert not (tmp_path / "run").exists()


def test_the_paper_preset_of_old_keys_on_the_command_line(captured, tmp_path, monkeypatch):
    """``--preset`` reads a preset's flat-layout keys at their place now, as RunConfig.from_preset does."""
    from layerswarm.run import presets

    old = {
        key.replace("search.method.name", "search.searcher"): value for key, value in presets.PRESETS["paper"].items()
    }
    old = {key.replace("search.method.", "search."): value for key, value in old.items()}
    old = {key.replace("search.outcome.", "search."): value for key, value in old.items()}
    monkeypatch.setitem(presets.PRESETS, "paper", old)
    assert main(["search", "--preset", "paper", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert as_flat_layout(captured["cfg"].to_dict()) == expand(FLAT["cli"]["--preset paper"], FLAT["defaults"])
