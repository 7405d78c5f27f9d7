"""The Ray backend on a local Ray of 2 CPUs: same results as local, faults survived.

Few tests on purpose: starting Ray and its workers costs seconds.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

import pytest

from layerswarm.data import DataConfig, load_dataset
from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.errors import LayerswarmError
from layerswarm.executors import FitnessSpec, LocalExecutor, create_executor
from layerswarm.io import read_jsonl
from layerswarm.models.bundle import ModelConfig
from layerswarm.run.config import RunConfig, SearchConfig
from layerswarm.run.search import EVALUATIONS_FILE, run_search
from layerswarm.run.search_config import AnswerConfig, ExecutorConfig, SearcherConfig
from layerswarm.searchers import Trial
from layerswarm.training import TrainConfig
from layerswarm.training.config import OptimConfig

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    # The fault-injecting factory below lives in this test module, which Ray workers cannot
    # import: ship it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data():
    return load_dataset(
        DataConfig(data="digits", image=ImageConfig(size=16), splits=SplitConfig(train_per_class=20, val_per_class=10))
    )


def tiny_config(backend: str) -> RunConfig:
    train = TrainConfig(epochs=1, optim=OptimConfig(lr=0.1, batch_size=16))
    return RunConfig(
        model=ModelConfig(name="test_efficientnet", weights="none"),
        data=DataConfig(data="digits"),
        fitness=train,
        final=train,
        search=SearchConfig(
            method=SearcherConfig(options={"particles": 3, "generations": 2}),
            executor=ExecutorConfig(backend=backend, cpus_per_trial=1),
            outcome=AnswerConfig(baselines="none"),
        ),
        seed=0,
    )


def without_seconds(epochs: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]


def test_ray_search_gives_the_masks_and_fitnesses_of_the_local_search(local_ray, data, tmp_path):
    runs = {b: run_search(tiny_config(b), tmp_path / b, data=data, report=False) for b in ("local", "ray")}
    local, remote = ({r["number"]: r for r in read_jsonl(tmp_path / b / EVALUATIONS_FILE)} for b in ("local", "ray"))
    assert sorted(local) == sorted(remote) == list(range(6))
    fitnesses = {r["fitness"] for r in local.values()}
    assert len(fitnesses) > 1, "fitnesses all equal: the comparison would prove nothing"
    for n in local:
        for key in ("mask", "position", "fitness", "val_curve", "error"):
            assert local[n][key] == remote[n][key], (n, key)
    for key in ("mask", "fitness", "test_accuracy"):
        assert runs["local"][key] == runs["ray"][key]


class KillWorker:
    """An evaluator factory that kills its Ray worker (``os._exit``) in the middle of chosen
    evaluations: after the training epoch, before the result goes back. Attempts are
    counted in files, since every attempt may run in a fresh worker process."""

    def __init__(
        self, spec: FitnessSpec, marks: str, die_once: list[int], die_always: list[int], raise_always: list[int]
    ) -> None:
        self.spec, self.marks = spec, marks
        self.die_once, self.die_always, self.raise_always = die_once, die_always, raise_always

    def __call__(self, data):
        clean, dying = self.spec(data), self.spec(data, on_epoch=lambda record: os._exit(1))

        def evaluate(mask, epochs=None):
            attempts = Path(self.marks) / "".join(map(str, mask))
            with open(attempts, "a") as fh:
                fh.write("attempt\n")
            if mask == self.raise_always:
                raise ValueError("corrupt image in shard 7\ntraceback detail")
            first = attempts.read_text().count("\n") == 1
            dies = mask == self.die_always or (mask == self.die_once and first)
            return (dying if dies else clean)(mask, epochs)

        return evaluate


def test_worker_killed_mid_evaluation_is_retried_and_failures_are_recorded(local_ray, data, tmp_path):
    cfg = tiny_config("ray")
    spec = FitnessSpec(cfg.model, cfg.fitness, data.num_classes, seed=cfg.seed)
    masks = [[1, 0, 0, 0, 1, 1], [1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 0, 1], [0, 1, 0, 1, 0, 1]]
    trials = [Trial(number=i, generation=0, index=i, mask=m) for i, m in enumerate(masks)]
    factory = KillWorker(spec, str(tmp_path), die_once=masks[0], die_always=masks[1], raise_always=masks[2])
    executor = create_executor("ray", factory, data.for_search(), retries=1)
    try:
        got = {t.number: ev for t, ev in executor.run(trials)}
    finally:
        executor.close()
    expected = {t.number: ev for t, ev in LocalExecutor(spec(data.for_search()), threads=1).run(trials)}

    def attempts(mask):
        return (tmp_path / "".join(map(str, mask))).read_text().count("\n")

    # killed once, retried by Ray, then bit-identical to the local evaluation (losses included)
    assert attempts(masks[0]) == 2
    assert got[0].error is None and without_seconds(got[0].epochs) == without_seconds(expected[0].epochs)
    # killed on every attempt: worst fitness and a one-line reason
    assert attempts(masks[1]) == 2
    assert got[1].fitness == -math.inf and "\n" not in got[1].error
    assert "died" in got[1].error.lower() or "crash" in got[1].error.lower(), got[1].error
    # a permanent error in the data (a ValueError): not retried, recorded with its type and 1st line
    assert attempts(masks[2]) == 1
    assert got[2].fitness == -math.inf and got[2].error == "ValueError: corrupt image in shard 7"
    assert got[2].status == "failed" and got[1].status == "failed" and got[0].status == "ok"
    # the others are unaffected
    assert without_seconds(got[3].epochs) == without_seconds(expected[3].epochs)


def test_ray_refuses_a_gpu_device_without_gpus_per_trial(data):
    cfg = tiny_config("ray")
    spec = FitnessSpec(
        cfg.model, cfg.fitness.replace(runtime=cfg.fitness.runtime.replace(device="cuda")), data.num_classes
    )
    with pytest.raises(LayerswarmError, match="--gpus-per-trial"):
        create_executor("ray", spec, data.for_search())


def test_bench_exact_on_ray_equals_the_plain_reference(local_ray, data):
    """Particles evaluated in parallel Ray tasks (1 thread each) give the reference's masks and
    fitnesses, bit for bit, when the reference runs on 1 thread too."""
    import torch

    from layerswarm.bench import BenchPreset, run_bench
    from layerswarm.speed import SpeedConfig

    preset = BenchPreset(
        particles=2,
        generations=2,
        fitness_epochs=1,
        final_epochs=1,
        throughput_epochs=1,
        lr=0.1,
        approximate=SpeedConfig(fitness_train_fraction=0.5),
    )
    threads = torch.get_num_threads()
    try:
        result = run_bench(
            preset=preset,
            seeds=(0,),
            model=ModelConfig(name="test_resnet", weights="none"),
            data=data,
            log=lambda _: None,
            throughput=False,
            threads=1,
            backend="ray",
        )
    finally:
        torch.set_num_threads(threads)
    assert result["backend"] == "ray"
    assert result["exact_check"] == {"same_masks": True, "max_fitness_difference": 0.0}
    assert len(set(result["reference"]["fitnesses"])) > 1


def test_text_search_on_ray_equals_the_local_search(local_ray, tmp_path):
    pytest.importorskip("transformers")
    from layerswarm.models.factory import pretrained_input
    from text_fixtures import make_text_csv, make_tiny_bert

    name = f"hf:{make_tiny_bert(tmp_path / 'bert')}"  # workers rebuild the model from this folder
    spec = DataConfig(
        data=str(make_text_csv(tmp_path / "texts.csv")), splits=SplitConfig(train_per_class=10, val_per_class=5)
    )
    spec = spec.resolved(pretrained_input(name))
    text = load_dataset(spec)
    train = TrainConfig(epochs=1, optim=OptimConfig(lr=3e-3, batch_size=8, optimizer="adamw", weight_decay=0.01))

    def config(backend: str) -> RunConfig:
        return RunConfig(
            model=ModelConfig(name=name),
            data=spec,
            fitness=train,
            final=train,
            search=SearchConfig(
                method=SearcherConfig(options={"particles": 3, "generations": 2}),
                executor=ExecutorConfig(backend=backend, cpus_per_trial=1),
                outcome=AnswerConfig(baselines="none"),
            ),
            seed=0,
        )

    runs = {b: run_search(config(b), tmp_path / b, data=text, report=False) for b in ("local", "ray")}
    local, remote = (
        {r["number"]: (r["mask"], r["fitness"]) for r in read_jsonl(tmp_path / b / EVALUATIONS_FILE)}
        for b in ("local", "ray")
    )
    assert local == remote and len(local) >= 6
    assert runs["local"]["test_accuracy"] == runs["ray"]["test_accuracy"]
