"""The search driver: ask/tell a searcher to the end over an executor, resumably.

``layerswarm search`` (:func:`layerswarm.run.search.run_search`), the ``pso`` strategy of
``layerswarm compare`` and ``layerswarm bench`` all search through :func:`search_masks` on an
executor from :func:`make_executor`, so each gets memoisation, the prefix cache, Ray and every
searcher; ``layerswarm race`` runs its searchers through the same loop, :func:`drive`.

Files in the output folder (each written atomically): ``evaluations.jsonl`` (one line per
fitness evaluation), ``search_state.json`` (searcher state after every evaluation) and
``best_mask.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.imageset import DatasetSplits, SearchSplits
from ..executors import FitnessSpec, create_executor
from ..fitness.evaluation import Evaluation, Executor
from ..fitness.noise import best_with_noise
from ..io import append_jsonl, atomic_write_json, atomic_write_text, read_json, read_jsonl
from ..searchers import PatientSearcher, Searcher, Trial
from ..searchers.space import LevelSpace, space_of
from ..speed import wrap_executor
from ..units import Unit, save_mask
from .failures import DEFAULT_MAX_FAILED_SHARE, EvaluationsFailing, FailureWatch

if TYPE_CHECKING:
    from ..models.bundle import ModelBundle

log = logging.getLogger(__name__)

EVALUATIONS_FILE = "evaluations.jsonl"
STATE_FILE = "search_state.json"
BEST_MASK_FILE = "best_mask.json"


def record_evaluation(trial: Trial, ev: Evaluation, repeats: int = 1) -> dict:
    """The ``evaluations.jsonl`` line of one evaluation (with ``levels`` in a level space)."""
    finite = ev.fitness != float("-inf")
    return {
        "number": trial.number,
        "generation": trial.generation,
        "particle": trial.index,
        "position": trial.position,
        "mask": list(trial.mask),
        **({} if trial.levels is None else {"levels": list(trial.levels)}),
        "fitness": ev.fitness if finite else None,
        "fitness_se": ev.fitness_se if finite else None,  # standard error (layerswarm.fitness.noise)
        "repeats": repeats,
        "val_images": ev.val_images,
        "seconds": round(ev.seconds, 3),
        "epochs_trained": ev.epochs_trained,
        "val_curve": [e.get("val_accuracy") for e in ev.epochs],  # None: not validated
        "error": ev.error,
        "status": ev.status,  # ok, failed (it raised), diverged (a non-finite loss)
        **({"init": trial.info["init"]} if "init" in trial.info else {}),  # a baseline mask (--init baselines)
    }


def drive(
    searcher: Searcher,
    executor: Executor,
    on_batch: Callable[[list[Trial]], list[Trial]] | None = None,
    on_result: Callable[[Trial, Evaluation], None] | None = None,
) -> None:
    """Ask/tell until the searcher is done: each batch (the pending trials first, after a
    resume) through ``on_batch`` (which may tell some trials itself and returns those left to
    evaluate), then through the executor; ``on_result`` sees each evaluation once it is told.
    An exception from the executor (a spent race budget) ends the search where it stands."""
    while not searcher.is_done():
        trials = searcher.pending() or searcher.ask()
        if on_batch is not None:
            trials = on_batch(trials)
        for trial, ev in executor.run(trials):
            searcher.tell(trial.number, ev.fitness)
            if on_result is not None:
                on_result(trial, ev)


def search_masks(
    searcher: Searcher,
    executor: Executor,
    out_dir: str | Path,
    on_evaluation: Callable[[dict], None] | None = None,
    max_failed_share: float = DEFAULT_MAX_FAILED_SHARE,
) -> tuple[list[int], float]:
    """Drive ask/tell to the end, logging each evaluation and saving state after each one.

    Resumable: evaluations already in ``evaluations.jsonl`` are told again, not re-run, except
    the failed ones of a batch the searcher still waits for (a run stopped by
    :class:`~layerswarm.run.failures.FailureWatch`, ``max_failed_share``): they run again.
    """
    out = Path(out_dir)
    records = read_jsonl(out / EVALUATIONS_FILE)
    pending = {t.number for t in searcher.pending()}  # its failed evaluations run again
    records = [r for r in records if r.get("phase") or r.get("status") != "failed" or r["number"] not in pending]
    drop_torn_tail(out / EVALUATIONS_FILE, records)
    done = {r["number"]: r for r in records if not r.get("phase")}  # the search's, not a final selection's
    _seed_memo(executor, records)
    repeats = _repeats(executor)
    watch, errors = FailureWatch(max_failed_share), set()

    def batch(trials: list[Trial]) -> list[Trial]:
        state = searcher.state_dict()
        atomic_write_json(out / STATE_FILE, state)
        todo = []
        for trial in trials:
            if trial.number in done:  # finished before an interruption: reuse its result
                fitness = done[trial.number]["fitness"]
                searcher.tell(trial.number, float("-inf") if fitness is None else fitness)
            else:
                todo.append(trial)
        watch.start_batch(todo, state)
        return todo

    def result(trial: Trial, ev: Evaluation) -> None:
        record = record_evaluation(trial, ev, repeats)
        append_jsonl(out / EVALUATIONS_FILE, record)
        done[trial.number] = record
        atomic_write_json(out / STATE_FILE, searcher.state_dict())
        if ev.error:  # each error once at error level: a failing run keeps its last line in view
            level = logging.INFO if ev.error in errors else logging.ERROR
            log.log(
                level,
                "evaluation %d (generation %d, particle %d) %s: %s",
                trial.number,
                trial.generation,
                trial.index,
                ev.status,
                ev.error,
            )
            errors.add(ev.error)
        if on_evaluation is not None:
            on_evaluation(record)
        watch.seen(record)

    try:
        drive(searcher, executor, batch, result)
    except EvaluationsFailing:  # back to the batch's start: a resume runs its failed trials again
        atomic_write_json(out / STATE_FILE, watch.batch_state)
        raise
    atomic_write_json(out / STATE_FILE, searcher.state_dict())
    return searcher.best()


def drop_torn_tail(path: Path, records: list[dict]) -> None:
    """A kill while appending can leave half a line; the next append would glue onto it and
    hide every later line from :func:`read_jsonl`. Rewrite the file with the whole lines
    (``records``: those to keep)."""
    whole = "".join(json.dumps(r) + "\n" for r in records)
    if path.is_file() and path.read_text(encoding="utf-8") != whole:
        atomic_write_text(path, whole)


def _repeats(executor: Executor) -> int:
    """Evaluations averaged per fitness by ``executor`` (its ``repeats``, wherever it is wrapped)."""
    node: Any = executor
    while node is not None:
        if hasattr(node, "repeats"):
            return node.repeats
        node = getattr(node, "inner", None)
    return 1


def _seed_memo(executor: Executor, records: list[dict]) -> None:
    """Hand a resumed run's finished evaluations to the fitness memo, wherever it is wrapped."""
    node: Any = executor
    while node is not None:
        if hasattr(node, "remember"):
            node.remember(records)
            return
        node = getattr(node, "inner", None)


def make_executor(
    cfg: Any,
    bundle: ModelBundle | None,
    data: SearchSplits | DatasetSplits,
    on_epoch=None,
    repeats: int | None = None,
    seed_offset: int = 0,
) -> Executor:
    """The executor of ``cfg.search`` (local or Ray) with the speed-ups of ``cfg.speed``.

    Each fitness averages ``repeats`` evaluations (default ``cfg.search.fitness.repeats``)
    with seeds from index ``seed_offset`` on (:class:`~layerswarm.fitness.mask_fitness.MaskFitness`).

    ``cfg`` is a :class:`~layerswarm.run.search.RunConfig` or anything with its ``model``,
    ``fitness``, ``search``, ``speed`` and ``seed`` (the PSO strategy's search has no
    ``model``: it runs locally on its bundle). ``data`` never needs its test split.
    """
    data = data.for_search() if isinstance(data, DatasetSplits) else data
    s = cfg.search
    repeats = repeats if repeats is not None else s.fitness.repeats
    score = s.fitness.score
    space = space_of(s.method)  # --space lr: trials carry levels, which the evaluator reads off the ladder
    spec = FitnessSpec(
        cfg.model,
        cfg.fitness,
        data.num_classes,
        seed=cfg.seed,
        speed=cfg.speed,  # workers rebuild
        repeats=repeats,
        seed_offset=seed_offset,
        score=score,  # the same bundle
        ladder=None if space.name == "mask" else space.ladder,
    )
    # a FitnessSpec is the evaluator factory every backend takes; its MaskFitness takes a mask
    # as list[float] (multipliers), the protocol says list[int], and list is invariant
    executor = create_executor(
        s.executor.backend,
        spec,  # type: ignore[arg-type]
        data,
        bundle=bundle,
        on_epoch=on_epoch,
        retries=s.executor.retries,
        cpus_per_trial=s.executor.cpus_per_trial,
        gpus_per_trial=s.executor.gpus_per_trial,
        address=s.executor.address,
    )
    # what its evaluations average (records say it; the memo keys on it)
    executor.repeats = repeats  # type: ignore[attr-defined]
    return wrap_executor(executor, cfg.speed, cfg.fitness, repeats, score)  # memoisation, successive halving


def run_searcher(
    searcher: Searcher,
    executor: Executor,
    out_dir: str | Path,
    units: list[Unit],
    on_evaluation: Callable[[dict], None] | None = None,
    max_failed_share: float = DEFAULT_MAX_FAILED_SHARE,
) -> tuple[list[int], float]:
    """:func:`search_masks` to the end, release the executor, save ``best_mask.json``; returns the
    best plan (its levels: the mask in the mask space) and its fitness."""
    out = Path(out_dir)
    try:
        mask, fitness = search_masks(searcher, executor, out, on_evaluation, max_failed_share)
    finally:
        executor.close()
    if isinstance(searcher, PatientSearcher) and not searcher.inner.is_done():
        log.info(
            "search ended after %d generations: no better fitness for the last %d (--patience)",
            len(searcher.history()),
            searcher.patience,
        )
    noise = best_with_noise(read_jsonl(out / EVALUATIONS_FILE), mask, fitness)
    space = searcher.space
    save_mask(
        out / BEST_MASK_FILE,
        space.mask(mask),
        units,
        **plan_fields(space, mask),
        fitness=fitness,
        **noise,
        searcher=searcher.name,
        history=searcher.history(),
    )
    return mask, fitness


def plan_fields(space: LevelSpace, levels: list[int]) -> dict:
    """``best_mask.json``'s keys for a plan beside its ``mask``: none in the mask space; in a
    level space its ``lr_multipliers`` (one per unit, 0 for frozen), ``levels``, ``space`` and
    ``ladder``."""
    if space.name == "mask":
        return {}
    return {"lr_multipliers": space.multipliers(levels), "levels": list(levels), **space.to_dict()}


def load_searcher_state(searcher: Searcher, out_dir: str | Path) -> Searcher:
    """Restore ``searcher`` from the ``search_state.json`` in ``out_dir`` when there is one."""
    path = Path(out_dir) / STATE_FILE
    if path.is_file():
        searcher.load_state_dict(read_json(path))
    return searcher
