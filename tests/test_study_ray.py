"""A study's trials as Ray tasks, on a local Ray of 2 CPUs: the same records as the local loop.

One test on purpose: starting Ray and its workers costs seconds.
"""

from __future__ import annotations

import logging
import sys

import pytest
import torch
import transformers

import layerswarm
from layerswarm.io import read_jsonl

ray = pytest.importorskip("ray")


def tiny_bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def make_objective(model, target):
    """The units whose training agrees with ``target`` after ``trial.apply``; raises on the
    plans that train the embeddings and the first layer (failed trials)."""

    def objective(trial):
        if trial.mask[:2] == [1, 1]:
            raise ValueError("diverged")
        trial.apply(model)
        grads = {n: p.requires_grad for n, p in model.named_parameters()}
        return float(sum(grads[u.params[0]] == bool(b) for u, b in zip(trial.units, target, strict=True)))

    return objective


def test_ray_runs_a_study_as_the_local_loop_does(tmp_path):
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module
    try:
        target = [0, 1, 1, 0]
        outs = {}
        for backend in ("local", "ray"):
            model = tiny_bert()
            outs[backend] = tmp_path / backend
            study = layerswarm.create_study(
                model, "pso", out=outs[backend], seed=2, options={"particles": 4, "generations": 3}
            )
            study.optimize(make_objective(model, target), backend=backend, n_trials=10)
            study.optimize(make_objective(model, target), backend=backend)  # the rest of the budget
            assert study.best_trial.mask == target
    finally:
        ray.shutdown()

    def rows(out):
        return sorted((r["number"], r["mask"], r["value"], r["error"]) for r in read_jsonl(out / "evaluations.jsonl"))

    assert rows(outs["ray"]) == rows(outs["local"])
    assert len(rows(outs["ray"])) == 12 and any(r[3] == "ValueError: diverged" for r in rows(outs["ray"]))
