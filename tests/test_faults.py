"""Injected failures: a NaN loss, an exception in the data, a flaky read. A transient one is
retried; a permanent one is not, nor is a diverged fine-tune; each is recorded (-inf, a status,
one-line reason) and the search goes on. Faults through the command line: tests/test_fault_matrix.py."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter

import pytest
import torch

from layerswarm.data import DataConfig, ImageSet, SearchSplits, load_dataset
from layerswarm.executors import FitnessSpec, LocalExecutor, describe_error
from layerswarm.fitness.mask_fitness import MaskFitness
from layerswarm.io import read_json, read_jsonl
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.search import EVALUATIONS_FILE, STATE_FILE, search_masks
from layerswarm.searchers import create_searcher
from layerswarm.training import TrainConfig

PSO = {"particles": 4, "generations": 2}


@pytest.fixture(scope="module")
def tiny():
    data = load_dataset(DataConfig(data="digits", image_size=16, train_per_class=20, val_per_class=10))
    cfg = TrainConfig(epochs=1, lr=0.1, batch_size=16)
    spec = FitnessSpec(ModelConfig(name="test_efficientnet", weights="none"), cfg, data.num_classes, seed=0)
    return data.for_search(), spec


class Faulty:
    """Evaluate normally, except: NaN loss for one mask, corrupt labels for another, and a
    read error on the first attempt only for a third. Counts attempts per mask."""

    def __init__(self, data: SearchSplits, spec: FitnessSpec, nan_mask, data_mask, flaky_mask) -> None:
        bundle = build_bundle(spec.model, spec.num_classes, spec.fitness, seed=spec.seed)
        self.clean = MaskFitness(bundle, data, spec.fitness)
        # lr = NaN: the first step turns every trained weight into NaN, the next loss is NaN
        self.nan = MaskFitness(bundle, data, spec.fitness.replace(lr=float("nan")))
        bad_train = ImageSet(data.train.images, torch.full_like(data.train.labels, 99))  # no class 99
        self.bad_data = MaskFitness(bundle, dataclasses.replace(data, train=bad_train), spec.fitness)
        self.masks = {"nan": nan_mask, "data": data_mask, "flaky": flaky_mask}
        self.attempts: Counter = Counter()

    def __call__(self, mask, epochs=None):
        key = "".join(map(str, mask))
        self.attempts[key] += 1
        if mask == self.masks["nan"]:
            return self.nan(mask, epochs)
        if mask == self.masks["data"]:
            return self.bad_data(mask, epochs)
        if mask == self.masks["flaky"] and self.attempts[key] == 1:
            raise OSError("read error: shard 3 unavailable\n  (second line of detail)")
        return self.clean(mask, epochs)


def test_failures_are_classified_recorded_as_worst_and_the_search_goes_on(tiny, tmp_path, caplog):
    data, spec = tiny
    first = create_searcher("pso", 6, PSO, seed=0).ask()
    masks = [t.mask for t in first]
    assert len({tuple(m) for m in masks}) == 4, "the test needs four distinct masks in generation 1"
    faulty = Faulty(data, spec, nan_mask=masks[1], data_mask=masks[2], flaky_mask=masks[3])
    searcher = create_searcher("pso", 6, PSO, seed=0)
    retries = 2

    with caplog.at_level(logging.INFO):
        mask, fitness = search_masks(searcher, LocalExecutor(faulty, retries=retries, threads=1), tmp_path)

    records = {r["number"]: r for r in read_jsonl(tmp_path / EVALUATIONS_FILE)}
    assert sorted(records) == list(range(8)), "every evaluation of both generations is recorded"
    assert read_json(tmp_path / STATE_FILE)["generation"] == 2
    failed = {n for n, r in records.items() if r["error"]}
    for n, r in records.items():
        key = "".join(map(str, r["mask"]))
        if r["mask"] == masks[1]:  # the same every time: not retried
            assert r["fitness"] is None and r["error"].startswith("NonFiniteLossError: non-finite loss nan at step 2")
            assert r["status"] == "diverged"
        elif r["mask"] == masks[2]:  # an IndexError: a permanent error, not retried
            assert r["fitness"] is None and "out of bounds" in r["error"] and r["status"] == "failed"
        else:
            assert r["error"] is None and r["fitness"] is not None and r["status"] == "ok"
        if r["error"]:
            assert "\n" not in r["error"]
            assert faulty.attempts[key] == [x["mask"] for x in records.values()].count(r["mask"])
            where = f"evaluation {n} (generation {r['generation']}, particle {r['particle']}) {r['status']}:"
            assert where in caplog.text
    assert {1, 2} <= failed

    # the flaky read (transient) was retried once, then gave exactly the fitness of a clean evaluation
    flaky = records[3]
    assert flaky["error"] is None and faulty.attempts["".join(map(str, masks[3]))] >= 2
    assert flaky["fitness"] == faulty.clean(masks[3]).fitness
    # failures count as worst: the best is the best finite fitness
    finite = [r["fitness"] for r in records.values() if r["fitness"] is not None]
    assert fitness == max(finite) and math.isfinite(fitness)
    assert mask not in (masks[1], masks[2])


def test_error_is_one_line_with_its_type():
    assert describe_error(ValueError("bad pixel\nmore")) == "ValueError: bad pixel"
    assert describe_error(MemoryError()) == "MemoryError"
