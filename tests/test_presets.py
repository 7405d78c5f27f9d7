"""--preset paper: the paper's Algorithm 1 as one flag; explicit flags still win."""

from __future__ import annotations

import json

import pytest

import layerswarm.run.search
from layerswarm.cli import main
from layerswarm.errors import LayerswarmError
from layerswarm.run.presets import PRESETS

TINY = [
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
    "--batch-size",
    "16",
    "--quiet",
]


@pytest.fixture
def captured(monkeypatch):
    """The RunConfig the search command builds, without running it."""
    seen = {}

    def fake_run_search(cfg, out_dir, **kw):
        seen["cfg"] = cfg
        return {"mask": [0], "fitness": 0.5, "test_accuracy": 0.5, "units": ["u"], "out_dir": str(out_dir)}

    monkeypatch.setattr(layerswarm.run.search, "run_search", fake_run_search)
    return seen


def test_paper_preset_is_algorithm_1(tmp_path, captured):
    assert main([*TINY, "--preset", "paper", "--out", str(tmp_path / "p")]) == 0
    cfg = captured["cfg"]
    assert cfg.preset == "paper"
    assert cfg.search.method.name == "pso"
    opts = cfg.search.method.options
    assert (opts["particles"], opts["generations"], opts["c1"], opts["c2"]) == (10, 12, 1.5, 1.5)
    assert (opts["inertia_start"], opts["inertia_end"], opts["velocity_max"]) == (1.4, 0.7, None)
    assert cfg.fitness.epochs == 5 and cfg.final.epochs == 110
    assert cfg.search.fitness.score == "accuracy"  # the last validation accuracy, whatever the default
    for train in (cfg.fitness, cfg.final):  # the paper's optimiser: SGD 0.01, momentum 0.9, wd 5e-4, x0.1 / 30
        assert (
            train.recipe == "paper"
            and train.optim.optimizer == "sgd"
            and train.optim.lr == 0.01
            and train.optim.momentum == 0.9
        )
        assert (
            train.optim.weight_decay == 5e-4
            and train.optim.schedule == "step"
            and train.optim.step_size == 30
            and train.optim.gamma == 0.1
        )
    assert cfg.to_dict()["preset"] == "paper"  # recorded in config.json
    assert cfg.search.method.space == "mask" and cfg.search.method.ladder is None  # the paper's bit per unit


def test_flags_given_override_the_preset(tmp_path, captured):
    assert (
        main(
            [
                *TINY,
                "--preset",
                "paper",
                "--particles",
                "3",
                "--final-epochs",
                "2",
                "--lr",
                "0.05",
                "--out",
                str(tmp_path / "p"),
            ]
        )
        == 0
    )
    cfg = captured["cfg"]
    assert cfg.search.method.options["particles"] == 3 and cfg.search.method.options["generations"] == 12
    assert cfg.final.epochs == 2 and cfg.fitness.epochs == 5
    assert cfg.fitness.optim.lr == 0.05 and cfg.fitness.recipe == "paper" and cfg.fitness.optim.momentum == 0.9


def test_no_preset_is_recorded_as_none(tmp_path, captured):
    assert main([*TINY, "--out", str(tmp_path / "p")]) == 0
    assert captured["cfg"].preset is None


def test_preset_overrides_a_config_file_and_flags_override_both(tmp_path, captured):
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps(
            {
                "search": {"searcher": "random", "options": {"trials": 3}},
                "fitness": {"epochs": 1},
                "final": {"epochs": 1},
            }
        )
    )
    assert (
        main(
            [
                "search",
                "--config",
                str(config),
                "--preset",
                "paper",
                "--generations",
                "2",
                "--out",
                str(tmp_path / "p"),
                "--quiet",
            ]
        )
        == 0
    )
    cfg = captured["cfg"]
    assert cfg.preset == "paper" and cfg.search.method.name == "pso"
    assert cfg.search.method.options["particles"] == 10 and cfg.search.method.options["generations"] == 2
    assert cfg.fitness.epochs == 5 and cfg.final.epochs == 110


def test_every_preset_key_is_set_by_a_search_option():
    from layerswarm.cli import search
    from layerswarm.cli.search_cmd import _option_keys

    settable = {key for p in search.params for key in _option_keys(p.name)}
    for preset in PRESETS.values():
        assert set(preset) <= settable, set(preset) - settable


def test_the_paper_preset_from_python_is_the_command_lines(tmp_path, captured):
    from layerswarm.data import DataConfig
    from layerswarm.models.config import ModelConfig
    from layerswarm.run.config import RunConfig

    assert main(["search", "--preset", "paper", "--out", str(tmp_path / "p"), "--quiet"]) == 0
    assert RunConfig.from_preset("paper") == captured["cfg"]
    paper = captured["cfg"]
    model = ModelConfig(name="test_efficientnet", weights="none")
    data = DataConfig(data="fashion-mnist")
    assert (
        main(
            [
                "search",
                "--preset",
                "paper",
                "--model",
                "test_efficientnet",
                "--weights",
                "none",
                "--data",
                "fashion-mnist",
                "--out",
                str(tmp_path / "f"),
                "--quiet",
            ]
        )
        == 0
    )
    from_python = RunConfig.from_preset("paper", model=model, data=data)
    assert from_python == captured["cfg"] == paper.replace(model=model, data=data)
    with pytest.raises(LayerswarmError, match="unknown preset 'papr': use paper"):
        RunConfig.from_preset("papr")


def test_the_default_search_is_the_measured_one(tmp_path, captured):
    """docs/concepts/defaults.md: the paper's swarm (10 x 12 PSO, 5 fitness epochs, random start, no
    selection, ended after 3 generations without a better fitness), the baselines beside it, and the
    best of them by final validation accuracy as the answer."""
    assert main([*TINY, "--out", str(tmp_path / "d")]) == 0
    cfg = captured["cfg"]
    assert cfg.search.method.name == "pso"
    assert (cfg.search.method.options["particles"], cfg.search.method.options["generations"]) == (10, 12)
    assert cfg.fitness.epochs == 5 and cfg.search.method.init == "random" and cfg.search.selection.top == 0
    assert cfg.search.outcome.baselines == "linear,full,last-k" and cfg.search.outcome.answer == "validation"
    assert cfg.search.fitness.score == "accuracy" and cfg.search.fitness.repeats == 1
    assert cfg.search.method.patience == 3  # stops after 3 generations without a better fitness
    assert main([*TINY, "--preset", "paper", "--out", str(tmp_path / "p")]) == 0  # the same search, the paper's answer
    paper = captured["cfg"]
    assert paper.search.method.patience == 0  # the paper's swarm runs all 12 generations
    # the same fitness fine-tune: --recipe paper pins the values the default recipe has today
    assert (
        paper.search.method.options == cfg.search.method.options
        and paper.fitness.replace(recipe=cfg.fitness.recipe) == cfg.fitness
    )
    assert (paper.search.outcome.baselines, paper.search.outcome.answer) == ("none", "mask")
    assert main([*TINY, "--fitness-score", "trend", "--out", str(tmp_path / "t")]) == 0
    assert captured["cfg"].search.fitness.score == "trend"
    assert main([*TINY, "--searcher", "ga", "--out", str(tmp_path / "g")]) == 0  # the swarm's number of evaluations
    assert (captured["cfg"].search.method.options["trials"], captured["cfg"].search.method.options["population"]) == (
        120,
        10,
    )
    assert main([*TINY, "--searcher", "ga", "--particles", "4", "--budget", "12", "--out", str(tmp_path / "b")]) == 0
    assert (captured["cfg"].search.method.options["population"], captured["cfg"].search.method.options["trials"]) == (
        4,
        12,
    )


def test_a_pso_option_without_pso_is_refused_not_ignored(tmp_path, capsys):
    from test_cli_trust import run_error

    msg = run_error(capsys, [*TINY, "--searcher", "ga", "--generations", "3", "--out", str(tmp_path / "x")])
    assert msg.endswith("--generations is a PSO option and the searcher is 'ga': add --searcher pso, or drop it")
    assert not (tmp_path / "x").exists()


def test_a_pso_runs_options_may_be_changed_alone_from_its_config(tmp_path, captured):
    assert main([*TINY, "--searcher", "pso", "--out", str(tmp_path / "a")]) == 0
    config = tmp_path / "c.json"
    config.write_text(json.dumps(captured["cfg"].to_dict()))
    assert main(["search", "--config", str(config), "--generations", "2", "--out", str(tmp_path / "b")]) == 0
    assert captured["cfg"].search.method.name == "pso" and captured["cfg"].search.method.options["generations"] == 2
