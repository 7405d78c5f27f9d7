"""--fitness-score: 'accuracy' is the paper's fitness, 'trend' adds the rise of the
validation curve since the middle epoch. Both come from the same training run; the memo, the
noise rule and a search's records score a curve the same way."""

from __future__ import annotations

import math

import pytest

from layerswarm.fitness.evaluation import Evaluation, curve_score
from layerswarm.fitness.mask_fitness import MaskFitness
from layerswarm.fitness.noise import binomial_se
from layerswarm.io import read_json, read_jsonl
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.search import run_search
from layerswarm.speed import MemoExecutor
from layerswarm.training import TrainConfig
from layerswarm.training.config import EvalConfig, OptimConfig
from test_search_run import tiny_config

# validated at the end only, as a search's speed settings leave it: 'trend' must add the middle epoch
CFG = TrainConfig(epochs=4, optim=OptimConfig(batch_size=16, lr=0.05), evaluation=EvalConfig(val_every=4))
MASK = [0, 0, 1, 1, 1, 1]


def curve(*values):
    return [{"val_accuracy": v} for v in values]


def test_curve_scores():
    assert curve_score(curve(None, 0.5, None, 0.6), "accuracy", 100) == (0.6, pytest.approx(binomial_se(0.6, 100)))
    trend, se = curve_score(curve(None, 0.5, None, 0.6), "trend", 100)
    assert trend == pytest.approx(0.7)  # the line through epochs 2 and 4, carried on to epoch 6
    assert se == pytest.approx(math.hypot(2 * binomial_se(0.6, 100), binomial_se(0.5, 100)))
    assert curve_score(curve(0.5, None, None, 0.6), "trend") is None  # the middle epoch was not validated
    assert curve_score(curve(0.5, 0.6, 0.7, None), "accuracy") is None
    assert curve_score(curve(0.3), "trend") == (0.3, None)  # one epoch has no middle: its accuracy
    falling = curve_score(curve(0.8, 0.7), "trend")[0]
    assert falling == pytest.approx(0.6)  # a curve going down is scored below its last value


@pytest.fixture(scope="module")
def bundle():
    return build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, CFG)


def test_a_trend_fitness_is_the_same_run_scored_by_its_rise(bundle, digits16):
    data = digits16.for_search()
    plain = MaskFitness(bundle, data, CFG)(MASK)
    trend = MaskFitness(bundle, data, CFG, score="trend")(MASK)
    assert plain.epochs[1]["val_accuracy"] is None  # val_every 4: the paper's fitness validates once
    middle = trend.epochs[1]["val_accuracy"]
    assert middle is not None
    # validating the middle epoch trained nothing differently
    assert [e["train_loss"] for e in trend.epochs] == [e["train_loss"] for e in plain.epochs]
    assert trend.epochs[-1]["val_accuracy"] == plain.fitness
    assert trend.fitness == pytest.approx(2 * plain.fitness - middle)
    assert trend.fitness_se == pytest.approx(math.hypot(2 * binomial_se(plain.fitness, 40), binomial_se(middle, 40)))


def test_the_memo_scores_remembered_and_truncated_curves_its_own_way():
    records = [
        {"mask": [1, 0], "fitness": 0.7, "fitness_se": 0.1, "val_curve": [None, 0.5, None, 0.6], "repeats": 1},
        {"mask": [0, 1], "fitness": 0.6, "fitness_se": 0.1, "val_curve": [None, 0.5, None, 0.6], "repeats": 1},
    ]
    trend, accuracy = MemoExecutor(None, 4, score="trend"), MemoExecutor(None, 4)
    trend.remember(records)
    accuracy.remember(records)
    assert set(trend.results) == {((1, 0), 4)} and set(accuracy.results) == {((0, 1), 4)}

    memo = MemoExecutor(None, 4, truncatable=True, score="trend")
    memo.results[((1, 1), 4)] = Evaluation(fitness=0.8, val_images=40, epochs=curve(0.4, 0.5, 0.55, 0.6))
    assert memo.lookup(((1, 1), 2)).fitness == pytest.approx(0.6)  # 2 x 0.5 - 0.4
    assert memo.lookup(((1, 1), 3)).fitness == pytest.approx(0.7)  # 2 x 0.55 - 0.4
    memo.results[((0, 0), 4)] = Evaluation(fitness=0.8, val_images=40, epochs=curve(None, 0.5, 0.55, 0.6))
    assert memo.lookup(((0, 0), 2)) is None  # its epoch 1 was not validated: train it, do not guess


def test_a_search_with_the_trend_score_records_scored_curves(tmp_path, digits16):
    cfg = tiny_config()
    cfg = cfg.replace(
        fitness=cfg.fitness.replace(epochs=2),
        search=cfg.search.replace(fitness=cfg.search.fitness.replace(score="trend")),
    )
    run_search(cfg, tmp_path / "run", data=digits16, report=False)
    assert read_json(tmp_path / "run" / "config.json")["search"]["fitness"]["score"] == "trend"
    for e in read_jsonl(tmp_path / "run" / "evaluations.jsonl"):
        first, last = e["val_curve"]
        assert e["fitness"] == pytest.approx(2 * last - first)
