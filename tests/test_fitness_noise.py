"""Fitness noise: every fitness carries its standard error, --fitness-repeats
averages evaluations over seeds, the memo keys on it, best_mask.json says what is within noise."""

from __future__ import annotations

import json
import math

import pytest

from layerswarm.fitness.evaluation import Evaluation
from layerswarm.fitness.mask_fitness import MaskFitness
from layerswarm.fitness.noise import (
    NOISE_Z,
    best_with_noise,
    binomial_se,
    repeats_se,
    verdict,
    within_noise,
)
from layerswarm.io import read_jsonl
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.search import run_search
from layerswarm.speed import MemoExecutor
from layerswarm.training import TrainConfig
from layerswarm.training.config import OptimConfig
from test_search_run import tiny_config

CFG = TrainConfig(epochs=2, optim=OptimConfig(batch_size=16, lr=0.05))
MASK = [0, 0, 1, 1, 1, 1]


def test_noise_rules():
    assert binomial_se(0.5, 100) == pytest.approx(0.05)
    assert binomial_se(1.0, 10) == 0.0 and binomial_se(0.3, 0) == 0.0
    assert repeats_se([0.4], 50) == pytest.approx(binomial_se(0.4, 50))
    values = [0.4, 0.5, 0.6]  # mean 0.5, sample variance 0.01, /R
    assert repeats_se(values, 100) == pytest.approx(math.sqrt(0.25 / 100 + 0.01 / 3))
    assert within_noise(0.80, 0.02, 0.80 + NOISE_Z * math.sqrt(2) * 0.02 - 1e-9, 0.02)
    assert not within_noise(0.80, 0.01, 0.90, 0.01)
    assert verdict(0.9, 0.01, 0.8, 0.01) == "won" and verdict(0.7, 0.01, 0.8, 0.01) == "lost"
    assert verdict(0.80, 0.02, 0.81, 0.02) == "tied"


@pytest.fixture(scope="module")
def bundle():
    return build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, CFG)


def test_one_evaluation_is_unchanged_and_carries_its_binomial_se(bundle, digits16):
    data = digits16.for_search()
    plain = MaskFitness(bundle, data, CFG)(MASK)
    again = MaskFitness(bundle, data, CFG, repeats=1)(MASK)
    assert plain.fitness == again.fitness and plain.epochs[-1]["train_loss"] == again.epochs[-1]["train_loss"]
    assert plain.val_images == len(data.val) == 40
    assert plain.fitness_se == pytest.approx(binomial_se(plain.fitness, 40))


def test_repeats_average_evaluations_with_other_seeds(bundle, digits16):
    data = digits16.for_search()
    plain = MaskFitness(bundle, data, CFG)(MASK)
    two = MaskFitness(bundle, data, CFG, repeats=2)(MASK)
    first, second = two.info["repeats"]
    assert first == plain.fitness  # repeat 0 is the plain evaluation
    assert two.fitness == pytest.approx((first + second) / 2)
    assert two.fitness_se == pytest.approx(repeats_se([first, second], 40))
    assert two.epochs_trained == 2 * CFG.epochs
    # repeat 1 drew another head and batch order: it trained differently
    shifted = MaskFitness(bundle, data, CFG, seed_offset=1)(MASK)
    assert shifted.fitness == second
    assert shifted.epochs[-1]["train_loss"] != plain.epochs[-1]["train_loss"]


def test_memo_remembers_only_records_of_its_own_repeats():
    records = [
        {"mask": [1, 0], "fitness": 0.5, "fitness_se": 0.1, "val_curve": [0.5], "repeats": 1},
        {"mask": [0, 1], "fitness": 0.6, "fitness_se": 0.1, "val_curve": [0.6], "repeats": 2},
        {"mask": [1, 1], "fitness": 0.7, "fitness_se": 0.1, "val_curve": [0.7], "repeats": 1, "phase": "selection"},
    ]
    one, two = MemoExecutor(None, 1), MemoExecutor(None, 1, repeats=2)
    one.remember(records)
    two.remember(records)
    assert set(one.results) == {((1, 0), 1)} and set(two.results) == {((0, 1), 1)}
    assert one.results[((1, 0), 1)].fitness_se == 0.1


def test_a_shorter_budget_from_a_longer_curve_keeps_an_se():
    memo = MemoExecutor(None, 3, truncatable=True)
    memo.results[((1, 0), 3)] = Evaluation(
        fitness=0.6, val_images=40, epochs=[{"val_accuracy": v} for v in (0.5, 0.55, 0.6)]
    )
    short = memo.lookup(((1, 0), 2))
    assert short.fitness == 0.55 and short.fitness_se == pytest.approx(binomial_se(0.55, 40))


def test_search_records_se_and_repeats_and_best_mask_names_the_masks_within_noise(tmp_path, digits16):
    cfg = tiny_config()
    cfg = cfg.replace(search=cfg.search.replace(fitness=cfg.search.fitness.replace(repeats=2)))
    result = run_search(cfg, tmp_path / "run", data=digits16, report=False)
    evals = read_jsonl(tmp_path / "run" / "evaluations.jsonl")
    for e in evals:
        assert e["repeats"] == 2 and e["val_images"] == 40 and e["fitness_se"] > 0
    best = json.loads((tmp_path / "run" / "best_mask.json").read_text())
    top = next(e for e in evals if e["mask"] == result["mask"])
    assert best["fitness"] == top["fitness"] and best["fitness_se"] == top["fitness_se"]
    assert "noise_rule" in best
    listed = {tuple(r["mask"]) for r in best["within_noise"]}
    for e in evals:
        if e["mask"] != best["mask"]:
            close = abs(e["fitness"] - best["fitness"]) <= NOISE_Z * math.hypot(e["fitness_se"], best["fitness_se"])
            assert (tuple(e["mask"]) in listed) == close


def test_best_with_noise_ignores_a_final_selection():
    records = [
        {"mask": [1], "fitness": 0.8, "fitness_se": 0.05},
        {"mask": [0], "fitness": 0.79, "fitness_se": 0.05},
        {"mask": [0], "fitness": 0.1, "fitness_se": 0.01, "phase": "selection"},
    ]
    noise = best_with_noise(records, [1], 0.8)
    assert noise["fitness_se"] == 0.05 and [r["mask"] for r in noise["within_noise"]] == [[0]]


def test_the_convergence_figure_draws_the_se(tmp_path):
    from layerswarm.report.figures import plot_convergence

    evals = [
        {"generation": 0, "fitness": 0.5, "fitness_se": 0.05},
        {"generation": 1, "fitness": 0.6, "fitness_se": 0.04},
    ]
    history = [
        {"generation": 0, "best_fitness": 0.5, "mean_fitness": 0.5},
        {"generation": 1, "best_fitness": 0.6, "mean_fitness": 0.6},
    ]
    fig = plot_convergence([("run", history, evals)])
    bars = [c for c in fig.axes[0].collections if c.__class__.__name__ == "LineCollection"]
    assert bars and len(bars[0].get_segments()) == 2
    segment = bars[0].get_segments()[0]
    assert segment[:, 1].tolist() == pytest.approx([0.45, 0.55])
