"""A search over the plans of a model with the user's own objective, in optuna's shape.

``study = create_study(model, searcher="pso", direction="maximize", out="runs/s")``;
``trial = study.ask()`` hands out the next plan the searcher wants, ``study.tell(trial, value)``
takes the user's metric, ``study.optimize(objective, n_trials, timeout)`` loops the two.
Every searcher of the command line works (they maximise: under ``minimize`` they see minus
the value). A batch searcher (PSO, GA) asks a whole generation at once: every trial of it
must be told before the next generation is asked.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import LayerswarmError
from ..executors import describe_error
from ..run.driver import EVALUATIONS_FILE, drop_torn_tail
from ..searchers import Searcher, config_for_budget, create_searcher
from ..searchers import Trial as SearcherTrial
from ..searchers.space import LevelSpace
from ..units import Unit
from .records import STUDY_KIND, StudyFolder
from .space import check_space, lr_multipliers
from .trial import COMPLETE, DIRECTIONS, FAIL, Trial, fitness_of
from .units import UnitPatterns, find_units

log = logging.getLogger(__name__)

Objective = Callable[[Trial], float]


class Study:
    """Ask/tell over the plans of one model's ``units``; see :func:`create_study`."""

    def __init__(
        self,
        units: list[Unit],
        head: list[str],
        searcher: Searcher,
        direction: str = "maximize",
        space: str | LevelSpace = "mask",
        folder: StudyFolder | None = None,
    ) -> None:
        if direction not in DIRECTIONS:
            raise LayerswarmError(f"direction '{direction}': use 'maximize' or 'minimize'")
        self.units, self.head = units, head
        self.direction = direction
        self.space = space if isinstance(space, LevelSpace) else check_space(space)
        self._searcher, self._folder = searcher, folder
        self.trials: list[Trial] = []  # told trials, in tell order (a resumed study's first)
        self._running: dict[int, Trial] = {}  # asked, not told
        self._asked_at: dict[int, float] = {}
        self._best: Trial | None = None

    @property
    def searcher(self) -> str:
        return self._searcher.name

    @property
    def out(self) -> Path | None:
        return None if self._folder is None else self._folder.path

    @property
    def is_done(self) -> bool:
        """True once the searcher's budget is spent."""
        return self._searcher.is_done()

    @property
    def best_trial(self) -> Trial:
        """The completed trial with the best value (the first of equals)."""
        if self._best is None:
            raise LayerswarmError("no trial has completed yet: tell a value first (study.optimize or study.tell)")
        return self._best

    @property
    def best_value(self) -> float:
        return float(self.best_trial.value)  # type: ignore[arg-type]

    def ask(self) -> Trial:
        """The next trial: a plan the searcher asks for (its ``mask``, ``lr_multipliers``)."""
        return self._hand_out(1)[0]

    def _hand_out(self, limit: int) -> list[Trial]:
        """Up to ``limit`` trials of the searcher's batch not handed out yet (a new batch once
        every trial of the last one is told)."""
        waiting = [t for t in self._searcher.pending() if t.number not in self._running]
        if not waiting:
            if self._running:
                raise LayerswarmError(
                    f"tell trials {sorted(self._running)} before asking again: the "
                    f"{self.searcher} searcher asks one batch at a time"
                )
            if self._searcher.is_done():
                raise LayerswarmError(
                    f"the {self.searcher} searcher's budget is spent: create a study with a "
                    "larger budget (budget=N or options) to search further"
                )
            self._searcher.ask()
            self._save_state()
            waiting = self._searcher.pending()
        trials = [self._trial_of(asked) for asked in waiting[:limit]]
        for trial in trials:
            self._running[trial.number] = trial
            self._asked_at[trial.number] = time.monotonic()
        return trials

    def tell(
        self,
        trial: Trial | int,
        value: float | None = None,
        error: str | None = None,
        seconds: float | None = None,
    ) -> Trial:
        """Record the objective's ``value`` for ``trial`` (a trial or its number); ``None`` or
        NaN, or an ``error``, record a failed trial (the searcher sees ``-inf``). ``seconds``:
        how long the trial took (default: since it was asked)."""
        number = trial if isinstance(trial, int) else trial.number
        if number not in self._running:
            raise LayerswarmError(f"trial {number} is not running: tell each asked trial once")
        told = self._running.pop(number)
        asked_at = self._asked_at.pop(number)
        told.seconds = round(time.monotonic() - asked_at if seconds is None else seconds, 3)
        if error is None and value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                value, error = None, f"the objective returned {value!r}, not a number"
        if error is None and (value is None or math.isnan(value)):
            error = f"the objective returned {value}"
        told.value = None if error else value
        told.fitness = fitness_of(told.value, self.direction)
        told.state, told.error = (FAIL, error) if error else (COMPLETE, None)
        self._searcher.tell(number, told.fitness)
        self._record(told)
        if told.state == FAIL:
            log.warning("trial %d failed: %s", number, error)
        else:
            log.info("trial %d: value %s (mask %s)", number, told.value, "".join(map(str, told.mask)))
        return told

    def optimize(
        self,
        objective: Objective,
        n_trials: int | None = None,
        timeout: float | None = None,
        backend: str = "local",
        cpus_per_trial: int = 1,
        gpus_per_trial: float = 0.0,
        address: str | None = None,
    ) -> None:
        """Call ``objective(trial)`` and tell its value, until ``n_trials`` more trials are told,
        ``timeout`` seconds have passed (checked between trials), or the searcher is done.

        An objective that raises is recorded as a failed trial and the study goes on
        (``KeyboardInterrupt`` ends it; a new study on the same ``out`` resumes the trial).
        ``backend="ray"``: the trials of each batch run at once as Ray tasks, each with
        ``cpus_per_trial`` CPUs (its torch threads) and ``gpus_per_trial`` GPUs, on the Ray of
        this process, the cluster at ``address``, or a Ray started here
        (:mod:`layerswarm.study.parallel`); the objective must pickle (cloudpickle).
        """
        if backend not in ("local", "ray"):
            raise LayerswarmError(f"backend '{backend}': use 'local' or 'ray'")
        start, told = time.monotonic(), 0

        def room() -> int:
            if self.is_done or timeout is not None and time.monotonic() - start >= timeout:
                return 0
            return 1 << 30 if n_trials is None else n_trials - told

        if backend == "local":
            while room() > 0:
                trial = self.ask()
                try:
                    value = objective(trial)
                except Exception as err:  # noqa: BLE001 - one failed objective must not end the study
                    self.tell(trial, error=describe_error(err))
                else:
                    self.tell(trial, value)
                told += 1
            return
        from .parallel import RayTrials

        tasks = RayTrials(objective, cpus_per_trial, gpus_per_trial, address)
        try:
            while room() > 0:
                for trial, (value, error, seconds) in tasks.run(self._hand_out(room())):
                    self.tell(trial, value, error=error, seconds=seconds)
                    told += 1
        finally:
            tasks.close()

    def _trial_of(self, asked: SearcherTrial) -> Trial:
        return Trial(
            units=self.units,
            lr_multipliers=lr_multipliers(self.space, asked),
            head=self.head,
            number=asked.number,
            generation=asked.generation,
            particle=asked.index,
            position=asked.position,
            info=dict(asked.info),
        )

    def _record(self, trial: Trial) -> None:
        self.trials.append(trial)
        better = trial.state == COMPLETE and (self._best is None or trial.fitness > self._best.fitness)
        if better:
            self._best = trial
        if self._folder is not None:
            self._folder.append(trial)
            self._save_state()
            if better:
                self._folder.save_best(trial, self.direction, self._searcher)

    def _save_state(self) -> None:
        if self._folder is not None:
            self._folder.save_searcher(self._searcher)

    def _resume(self) -> None:
        """Take up a study from its folder: the told trials back, the searcher as it was, and
        the trials told before the searcher's last saved state told to it again."""
        assert self._folder is not None
        records = self._folder.records()
        drop_torn_tail(self._folder.path / EVALUATIONS_FILE, records)
        self._folder.load_searcher(self._searcher)
        for record in records:
            trial = Trial(
                units=self.units,
                lr_multipliers=record["lr_multipliers"],
                head=self.head,
                number=record["number"],
                generation=record["generation"],
                particle=record["particle"],
                position=record.get("position"),
                state=record.get("state", COMPLETE),
                value=record.get("value"),
                error=record.get("error"),
                seconds=record.get("seconds", 0.0),
                info={"init": record["init"]} if "init" in record else {},
            )
            trial.fitness = fitness_of(trial.value, self.direction)
            self.trials.append(trial)
            if trial.state == COMPLETE and (self._best is None or trial.fitness > self._best.fitness):
                self._best = trial
        done = {t.number: t for t in self.trials}
        for asked in self._searcher.pending():
            if asked.number in done:  # recorded, then interrupted before the state was saved
                self._searcher.tell(asked.number, done[asked.number].fitness)
        self._save_state()


def create_study(
    model: nn.Module,
    searcher: str = "pso",
    direction: str = "maximize",
    out: str | Path | None = None,
    *,
    units: UnitPatterns | None = None,
    head: Sequence[str] | None = None,
    granularity: str = "block",
    space: str = "mask",
    ladder: Sequence[float] | None = None,
    budget: int | None = None,
    options: dict[str, Any] | None = None,
    init: str = "random",
    patience: int = 0,
    seed: int = 0,
) -> Study:
    """A study over the plans of ``model``'s units (:func:`layerswarm.study.find_units`).

    ``searcher``: any of the command line's (pso, ga, tpe, random, greedy, exhaustive), with
    its ``options`` (PSO: particles, generations, ...) or sized for ``budget`` trials;
    ``init``, ``patience``, ``seed``, ``space`` and ``ladder`` as the command line's
    (``space="lr"``: a trial's ``lr_multipliers`` are levels of ``ladder``, 0 frozen). ``out``: a
    folder
    for the records (see :mod:`layerswarm.study.records`); a study created again on the same
    folder, with the same settings and model, resumes it. ``units``, ``head``,
    ``granularity``: how the model splits into units (:func:`~layerswarm.study.find_units`).
    """
    found, head = find_units(model, units, head, granularity)
    opts = dict(config_for_budget(searcher, budget)) if budget is not None else {}
    opts.update(options or {})
    plans = check_space(space, ladder)
    search = create_searcher(searcher, len(found), opts, seed=seed, init=init, patience=patience, space=plans)
    folder = StudyFolder(out) if out is not None else None
    study = Study(found, head, search, direction, plans, folder)
    if folder is not None:
        settings = {
            "kind": STUDY_KIND,
            "model": {
                "name": type(model).__name__,
                "class": f"{type(model).__module__}.{type(model).__qualname__}",
                "granularity": granularity,
                "units": len(found),
                "unit_patterns": _jsonable(units),
                "head": list(head),
            },
            "search": {
                "searcher": searcher,
                "options": opts,
                "budget": budget,
                "init": init,
                "patience": patience,
            },
            "space": space,
            **({} if plans.name == "mask" else {"ladder": list(plans.ladder)}),
            "direction": direction,
            "seed": seed,
        }
        names = [n for n, _ in model.named_parameters()]
        if folder.open(settings, found, head, names):
            study._resume()
    return study


def _jsonable(units: UnitPatterns | None) -> list | None:
    return None if units is None else [u if isinstance(u, str) else list(u) for u in units]
