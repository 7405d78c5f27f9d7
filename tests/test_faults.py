"""Injected failures: a NaN loss, an exception in the data, a flaky read. A transient one is
retried; a permanent one is not, nor is a diverged fine-tune; each is recorded (-inf, a status,
one-line reason) and the search goes on, unless failures are all it gets. A failed write, a
diverged baseline, the folder lock. The same faults through the command line:
tests/test_fault_matrix.py."""

from __future__ import annotations

import dataclasses
import errno
import logging
import math
import os
import re
import subprocess
import sys
from collections import Counter

import pytest
import torch

from layerswarm.cli import main
from layerswarm.data import DataConfig, ImageSet, SearchSplits, load_dataset
from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.errors import LayerswarmError, RunFailed
from layerswarm.executors import (
    FitnessSpec,
    LocalExecutor,
    describe_error,
    evaluate_with_retries,
    failure_kind,
)
from layerswarm.fitness.mask_fitness import Evaluation, MaskFitness
from layerswarm.io import WriteFailed, append_jsonl, atomic_write_json, read_json, read_jsonl
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.failpoints import ENV
from layerswarm.run.failures import EvaluationsFailing
from layerswarm.run.finetune import run_finetune
from layerswarm.run.lock import LOCK_FILE, lock_run_folder, one_writer, refuse_if_locked
from layerswarm.run.search import EVALUATIONS_FILE, STATE_FILE, search_masks
from layerswarm.searchers import Searcher, Trial, create_searcher
from layerswarm.strategies import create_strategy
from layerswarm.training import NonFiniteLossError, TrainConfig
from layerswarm.training.config import OptimConfig

PSO = {"particles": 4, "generations": 2}


@pytest.fixture(scope="module")
def tiny():
    data = load_dataset(
        DataConfig(data="digits", image=ImageConfig(size=16), splits=SplitConfig(train_per_class=20, val_per_class=10))
    )
    cfg = TrainConfig(epochs=1, optim=OptimConfig(lr=0.1, batch_size=16))
    spec = FitnessSpec(ModelConfig(name="test_efficientnet", weights="none"), cfg, data.num_classes, seed=0)
    return data.for_search(), spec


class Faulty:
    """Evaluate normally, except: NaN loss for one mask, corrupt labels for another, and a
    read error on the first attempt only for a third. Counts attempts per mask."""

    def __init__(self, data: SearchSplits, spec: FitnessSpec, nan_mask, data_mask, flaky_mask) -> None:
        bundle = build_bundle(spec.model, spec.num_classes, spec.fitness, seed=spec.seed)
        self.clean = MaskFitness(bundle, data, spec.fitness)
        # lr = NaN: the first step turns every trained weight into NaN, the next loss is NaN
        self.nan = MaskFitness(bundle, data, spec.fitness.replace(optim=spec.fitness.optim.replace(lr=float("nan"))))
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
            assert r["fitness"] is None and r["status"] == "diverged"
            assert r["error"].startswith("NonFiniteLossError: non-finite loss nan at step 2")
        elif r["mask"] == masks[2]:  # an IndexError: a permanent error, not retried
            assert r["fitness"] is None and r["status"] == "failed"
            assert "out of bounds" in r["error"]
        else:
            assert r["error"] is None and r["fitness"] is not None and r["status"] == "ok"
        if r["error"]:
            assert "\n" not in r["error"]
            assert faulty.attempts[key] == [x["mask"] for x in records.values()].count(r["mask"])
            where = f"generation {r['generation']}, particle {r['particle']}"
            assert f"evaluation {n} ({where}) {r['status']}:" in caplog.text
    assert {1, 2} <= failed

    # the flaky read (transient) was retried once, then gave the fitness of a clean evaluation
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


@pytest.mark.parametrize(
    "err, kind",
    [
        (TypeError("bad argument"), "permanent"),
        (ValueError("bad value"), "permanent"),
        (ImportError("no module"), "permanent"),
        (LayerswarmError("bad input"), "permanent"),
        (IndexError("out of bounds"), "permanent"),
        (FileNotFoundError(errno.ENOENT, "gone"), "permanent"),
        (MemoryError(), "transient"),
        (OSError(errno.EIO, "read error"), "transient"),
        (torch.OutOfMemoryError("CUDA out of memory"), "transient"),
        (RuntimeError("MPS backend out of memory"), "transient"),
        (RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR"), "unknown"),
        (NonFiniteLossError("non-finite loss nan"), "diverged"),
    ],
)
def test_failures_are_classified(err, kind):
    assert failure_kind(err) == kind


class Raising:
    """Raises ``errors`` one per call, then scores a mask by its sum; counts the calls."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors, self.calls = list(errors), 0

    def __call__(self, mask, epochs=None) -> Evaluation:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return Evaluation(fitness=float(sum(mask)))


@pytest.mark.parametrize(
    "errors, calls, status",
    [
        ([TypeError("bug")] * 9, 1, "failed"),  # permanent: tried once
        ([NonFiniteLossError("non-finite loss nan")] * 9, 1, "diverged"),  # diverges every time
        ([MemoryError()] * 2, 3, "ok"),  # transient: retried until it passes
        ([MemoryError()] * 9, 4, "failed"),  # ... at most 3 retries
        ([RuntimeError("same")] * 9, 2, "failed"),  # unknown: retried until it repeats itself
        ([RuntimeError("a"), RuntimeError("b")], 3, "ok"),  # unknown, another each time: retried
    ],
)
def test_retries_follow_the_kind_of_failure(errors, calls, status):
    evaluate = Raising(errors)
    ev = evaluate_with_retries(evaluate, Trial(0, 0, 0, [1, 0, 1]), retries=3)
    assert evaluate.calls == calls and ev.status == status
    assert (ev.fitness == 2.0) if status == "ok" else (ev.fitness == -math.inf and ev.error)


def test_the_evaluate_failpoint_raises_in_every_attempt_it_names(monkeypatch):
    monkeypatch.setenv(ENV, "evaluate=raise:MemoryError@1")  # the first attempt: a transient error
    evaluate = Raising([])
    assert evaluate_with_retries(evaluate, Trial(0, 0, 0, [1, 1]), retries=1).fitness == 2.0
    assert evaluate.calls == 1  # the failpoint raised before the first call
    monkeypatch.setenv(ENV, "evaluate=raise:TypeError")
    ev = evaluate_with_retries(evaluate, Trial(1, 0, 1, [1, 1]), retries=1)
    assert ev.error == f"TypeError: injected by {ENV} evaluate=raise:TypeError"
    assert evaluate.calls == 1


WEIGHTS = [0.3, -0.2, 0.5, 0.1, -0.4, 0.2, 0.6, -0.1]


class Quick:
    """A fast fitness (a weighted sum of the mask); raises TypeError on the calls in ``broken``."""

    def __init__(self, broken=()) -> None:
        self.broken, self.calls = set(broken), 0

    def __call__(self, mask, epochs=None) -> Evaluation:
        self.calls += 1
        if self.calls in self.broken:
            raise TypeError(f"broken on call {self.calls}")
        return Evaluation(fitness=float(sum(w * b for w, b in zip(WEIGHTS, mask, strict=True))))


def _pso() -> Searcher:
    return create_searcher("pso", 8, {"particles": 4, "generations": 3}, seed=3)


def _strip(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "seconds"}


def test_a_failing_first_batch_stops_and_a_resume_after_the_fix_equals_a_clean_run(tmp_path):
    expected = search_masks(_pso(), LocalExecutor(Quick()), tmp_path / "clean")
    out = tmp_path / "run"
    with pytest.raises(
        EvaluationsFailing,
        match=(
            r"^every evaluation of the first batch failed \(4 of 4\); the first, evaluation 0 "
            r"\(generation 0, particle 0\) failed with TypeError: broken on call 1: "
            r"fix its cause$"
        ),
    ):
        search_masks(_pso(), LocalExecutor(Quick(broken=range(1, 5)), retries=0), out)
    assert [r["status"] for r in read_jsonl(out / EVALUATIONS_FILE)] == ["failed"] * 4
    searcher = _pso()
    searcher.load_state_dict(read_json(out / STATE_FILE))
    assert [t.number for t in searcher.pending()] == [0, 1, 2, 3]  # back at the batch's start
    fixed = Quick()
    assert search_masks(searcher, LocalExecutor(fixed), out) == expected
    assert fixed.calls == 12  # the failed batch ran again
    clean = read_jsonl(tmp_path / "clean" / EVALUATIONS_FILE)
    assert [_strip(r) for r in read_jsonl(out / EVALUATIONS_FILE)] == [_strip(r) for r in clean]


def test_more_than_the_share_of_failures_stops_the_search(tmp_path):
    # batch 1 succeeds; from call 5 on every evaluation fails: 5 of 9 > half at the 9th
    failing = LocalExecutor(Quick(broken=range(5, 99)), retries=0)
    with pytest.raises(
        EvaluationsFailing,
        match=(
            r"^5 of 9 evaluations failed, more than --max-failed-share 0.5; the first, "
            r"evaluation 4 \(generation 1, particle 0\)"
        ),
    ):
        search_masks(_pso(), failing, tmp_path / "half")
    state = read_json(tmp_path / "half" / STATE_FILE)
    searcher = _pso()
    searcher.load_state_dict(state)
    assert [t.number for t in searcher.pending()] == [8, 9, 10, 11]  # the batch it stopped in
    # 1 tolerates any share: the search runs to its end, failures counted as worst
    search_masks(_pso(), LocalExecutor(Quick(broken=range(5, 99)), retries=0), tmp_path / "all", max_failed_share=1.0)
    assert len(read_jsonl(tmp_path / "all" / EVALUATIONS_FILE)) == 12


@pytest.mark.parametrize(
    "spec, says",
    [
        ("explode=raise:TypeError", "unknown point 'explode'"),
        ("loss=raise:TypeError", "point loss takes nan"),
        ("evaluate=raise:Nope", "'Nope' is neither a built-in exception nor an errno name"),
        ("write=raise:ENOSPC@0", "@0 must be a count from 1"),
    ],
)
def test_a_malformed_failpoint_is_refused_before_any_work(monkeypatch, capsys, tmp_path, spec, says):
    monkeypatch.setenv(ENV, spec)
    assert main(["search", "--out", str(tmp_path / "run")]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"layerswarm: error: {ENV}: ") and says in line and "\n" not in line
    assert not (tmp_path / "run").exists()


def test_a_failed_write_names_the_file_and_the_fix_and_keeps_the_one_before(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    atomic_write_json(path, {"step": 1})
    monkeypatch.setenv(ENV, "write=raise:EACCES@2")
    atomic_write_json(path, {"step": 2})
    with pytest.raises(WriteFailed) as failed:
        atomic_write_json(path, {"step": 3})
    assert str(failed.value) == (
        f"cannot write '{path}': Permission denied (injected by {ENV} "
        f"write=raise:EACCES@2) (EACCES): make '{tmp_path}' writable for "
        "this user"
    )
    assert read_json(path) == {"step": 2} and [p.name for p in tmp_path.iterdir()] == ["state.json"]
    monkeypatch.delenv(ENV)
    with pytest.raises(WriteFailed) as full:  # a real full device: the kernel's ENOSPC
        append_jsonl("/dev/full", {"number": 0})
    assert str(full.value) == (
        "cannot write '/dev/full': No space left on device (ENOSPC): "
        "free space on the disk of '/dev' (or give the run more quota)"
    )
    assert full.value.exit_code == 1


def test_a_diverged_baseline_stops_with_its_learning_rate(digits16, tmp_path, monkeypatch):
    model = ModelConfig(name="test_efficientnet", weights="none")
    bundle = build_bundle(model, digits16.num_classes, TrainConfig(), seed=0)
    monkeypatch.setenv(ENV, "loss=nan@2")
    out = tmp_path / "baselines" / "full" / "final"
    with pytest.raises(RunFailed) as diverged:
        run_finetune(
            bundle,
            digits16,
            create_strategy("full"),
            TrainConfig(epochs=2, optim=OptimConfig(lr=0.1, batch_size=16)),
            out,
        )
    assert str(diverged.value) == (
        f"the full fine-tune ({out}) diverged, non-finite loss nan at "
        "step 2 (epoch 1), with lr 0.1: pass a lower --lr, e.g. 0.01"
    )
    assert not diverged.value.resumable and not (out / "model.safetensors").exists()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = (
        "import sys, time\nfrom layerswarm.run.lock import lock_run_folder\n"
        "lock_run_folder(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = f"'{tmp_path}' is in use by another layerswarm run (process {holder.pid})"
        with pytest.raises(LayerswarmError, match=re.escape(busy)):
            refuse_if_locked(tmp_path)
        with pytest.raises(LayerswarmError, match=re.escape(busy)):
            lock_run_folder(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    one_writer(lock_run_folder)(tmp_path)  # free at once: the kernel released it with the process
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    refuse_if_locked(tmp_path)  # and this process let it go when the call returned
    done = code.replace("time.sleep(120)", "")
    check = subprocess.run([sys.executable, "-c", done, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout.strip() == "held", check.stderr[-2000:]
