"""--fitness-steps: the fitness budget in optimizer steps, resolved to whole epochs of the data."""

from __future__ import annotations

import json

from layerswarm.cli import main
from layerswarm.io import read_jsonl
from layerswarm.run.budget import fitness_steps_per_epoch, resolve_fitness_steps
from layerswarm.run.search import run_search
from layerswarm.speed import SpeedConfig
from test_presets import TINY, captured  # noqa: F401  (the fixture)
from test_search_run import tiny_config


def with_steps(steps, **speed):
    cfg = tiny_config()
    return cfg.replace(
        search=cfg.search.replace(fitness=cfg.search.fitness.replace(steps=steps)), speed=SpeedConfig(**speed)
    )


def test_steps_resolve_to_whole_epochs_of_the_training_images(digits16):
    assert len(digits16.train) == 80 and fitness_steps_per_epoch(with_steps(1), digits16) == 5  # batches of 16
    assert resolve_fitness_steps(with_steps(12), digits16).fitness.epochs == 3  # ceil(12 / 5)
    assert resolve_fitness_steps(with_steps(10), digits16).fitness.epochs == 2
    # a fitness on half the training images has half the steps per epoch
    half = with_steps(12, fitness_train_fraction=0.5)
    assert fitness_steps_per_epoch(half, digits16) == 3 and resolve_fitness_steps(half, digits16).fitness.epochs == 4
    assert resolve_fitness_steps(tiny_config(), digits16) == tiny_config()  # no step budget: unchanged


def test_a_search_with_a_step_budget_records_both_and_resumes(tmp_path, digits16):
    cfg = with_steps(7)
    run_search(cfg, tmp_path / "run", data=digits16, report=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["search"]["fitness"]["steps"] == 7 and saved["fitness"]["epochs"] == 2
    evals = read_jsonl(tmp_path / "run" / "evaluations.jsonl")
    assert all(len(e["val_curve"]) == 2 for e in evals)
    assert sum(e["epochs_trained"] for e in evals) == 2 * len({tuple(e["mask"]) for e in evals})  # the memo still works
    # a resume with the saved (resolved) configuration is the same run
    again = run_search(
        cfg.replace(fitness=cfg.fitness.replace(epochs=2)), tmp_path / "run", data=digits16, resume=True, report=False
    )
    assert again["mask"] == json.loads((tmp_path / "run" / "best_mask.json").read_text())["mask"]


def test_cli_refuses_both_budgets_and_the_preset_yields_to_steps(tmp_path, captured):  # noqa: F811
    assert main([*TINY, "--fitness-epochs", "2", "--fitness-steps", "10", "--out", str(tmp_path / "x")]) != 0
    assert "cfg" not in captured and not (tmp_path / "x").exists()
    assert main([*TINY, "--preset", "paper", "--fitness-steps", "40", "--out", str(tmp_path / "p")]) == 0
    assert captured["cfg"].search.fitness.steps == 40
    assert main([*TINY, "--fitness-steps", "40", "--out", str(tmp_path / "q")]) == 0
    assert captured["cfg"].search.fitness.steps == 40
