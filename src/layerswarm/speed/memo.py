"""Fitness memoisation: a (mask, epochs) already evaluated is not trained again (in a level
space: the levels, ``Trial.unit_levels``).

Exact: an evaluation starts from the same pretrained weights with the same seed every time,
so training the same mask again gives the same fitness, bit for bit (tests/test_speed.py).
It wraps any executor (local or Ray), so duplicates are caught across workers too. With a
budget (``layerswarm race``) it also charges each new evaluation its epochs and stops the
search, :class:`BudgetSpent`, at the first new one the budget cannot pay for.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator

from ..fitness.evaluation import Evaluation, Executor, curve_score
from ..searchers.base import Trial

Key = tuple[tuple[int, ...], int]


class BudgetSpent(Exception):
    """Raised by :meth:`MemoExecutor.run` when a new evaluation would exceed the budget."""


class MemoExecutor(Executor):
    """Serve repeated trials from the first evaluation of their (mask, epochs).

    ``truncatable``: the learning-rate schedule does not depend on the number of epochs
    (step or constant), so the first ``e`` epochs of a longer evaluation *are* an
    ``e``-epoch evaluation and a shorter request is answered from its validation curve.
    Failed evaluations are not remembered: a repeat tries again. ``budget_epochs``: trials are
    taken in ask order until the first new one that the budget cannot pay for; those are
    evaluated, then :class:`BudgetSpent` is raised.
    """

    name = "memo"

    def __init__(
        self,
        inner: Executor,
        default_epochs: int,
        truncatable: bool = False,
        budget_epochs: float = math.inf,
        repeats: int = 1,
        score: str = "accuracy",
    ) -> None:
        self.inner, self.default_epochs, self.truncatable = inner, default_epochs, truncatable
        self.score = score  # how a curve becomes a fitness: a truncated curve is scored the same way
        self.repeats = repeats  # evaluations averaged per fitness: a record with another count is another fitness
        self.results: dict[Key, Evaluation] = {}
        self.hits = 0
        self.budget_epochs = budget_epochs
        self.spent = 0  # epochs charged for new evaluations (a repeat costs nothing)

    def remember(self, records: Iterable[dict]) -> None:
        """Seed with the finished evaluations of an interrupted run (``evaluations.jsonl``
        lines), so that a resumed search trains no mask the uninterrupted one would not.

        Only complete, successful search evaluations at the default budget and with this
        memo's ``repeats`` are taken (their validation curve has ``default_epochs`` points ending
        at the fitness); a final selection's (``phase``) drew other seeds.
        """
        for r in records:
            curve = r.get("val_curve") or []
            if r.get("error") or r.get("fitness") is None or len(curve) != self.default_epochs:
                continue
            epochs = [{"val_accuracy": v} for v in curve]
            scored = curve_score(epochs, self.score)
            if scored is None or scored[0] != r["fitness"] or r.get("phase") or r.get("repeats", 1) != self.repeats:
                continue  # another score's, an early-stopped run's, or another phase's fitness
            plan = r["mask"] if r.get("levels") is None else r["levels"]  # a level space's: levels
            key = (tuple(plan), self.default_epochs)
            self.results.setdefault(
                key,
                Evaluation(
                    fitness=r["fitness"], fitness_se=r.get("fitness_se"), val_images=r.get("val_images"), epochs=epochs
                ),
            )

    def _key(self, trial: Trial) -> Key:
        return tuple(trial.unit_levels), trial.budget_epochs or self.default_epochs

    def lookup(self, key: Key) -> Evaluation | None:
        ev = self.results.get(key)
        if ev is None and self.truncatable:
            mask, epochs = key
            ev = next(
                (
                    t
                    for (m, n), e in self.results.items()
                    if m == mask and n > epochs and len(e.epochs) == n
                    for t in [self._truncate(e, epochs)]
                    if t is not None
                ),
                None,
            )
        if ev is None:
            return None
        self.hits += 1
        return dataclasses.replace(ev, seconds=0.0, epochs_trained=0, info={**ev.info, "memo": True})

    def _truncate(self, ev: Evaluation, epochs: int) -> Evaluation | None:
        """The ``epochs``-epoch evaluation within a longer one; None if its curve lacks an epoch the score needs."""
        curve = ev.epochs[:epochs]
        # a mean over repeats carries each epoch's se (val_se); one evaluation's is binomial
        repeated_without_se = ev.info.get("repeats") is not None and curve[-1].get("val_se") is None
        scored = curve_score(curve, self.score, None if repeated_without_se else ev.val_images)
        if scored is None:
            return None
        value, se = scored
        return Evaluation(
            fitness=value, fitness_se=se, val_images=ev.val_images, epochs=curve, seconds=0.0, epochs_trained=0
        )

    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, Evaluation]]:
        todo: list[Trial] = []
        duplicates: dict[tuple, list[Trial]] = {}
        spent = False
        for trial in trials:
            key = self._key(trial)
            hit = None if key in duplicates else self.lookup(key)
            if hit is not None:
                yield trial, hit
            elif key in duplicates:
                duplicates[key].append(trial)  # same mask twice in one batch: train it once
            elif self.spent + key[1] > self.budget_epochs:
                spent = True  # this new mask and the rest of the batch are beyond the budget
                break
            else:
                self.spent += key[1]
                duplicates[key] = []
                todo.append(trial)
        for trial, ev in self.inner.run(todo):
            key = self._key(trial)
            if ev.error is None:
                self.results[key] = ev
            yield trial, ev
            for dup in duplicates.pop(key, []):
                yield dup, (self.lookup(key) or ev) if ev.error is None else ev
        if spent:
            raise BudgetSpent(f"the budget of {self.budget_epochs} epochs is spent ({self.spent} charged)")

    def close(self) -> None:
        self.inner.close()
