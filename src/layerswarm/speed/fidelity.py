"""Approximate speed-ups: cheaper fitness estimates that may change the search's result.

* :class:`HalvingExecutor`, successive halving inside a generation: every particle is
  trained ``low`` epochs, only the best ``keep`` fraction is trained on to the full
  ``maxEpoch`` (continued from its paused low-rung run when the evaluator kept it,
  ``SpeedConfig.pause_mb``, else from the pretrained weights: either way its fitness is the
  exact full one); the others are told their low-fidelity fitness, which is usually lower,
  so they rarely become a personal or swarm best.
* :class:`EarlyStopping`: an evaluation whose validation accuracy after an epoch lies
  more than ``margin`` below the best full fitness seen so far is stopped there and scores
  that accuracy (per process: under Ray each worker knows only its own best).
* :func:`subset_splits`: fitness on stratified fractions of the train and val splits.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator

import torch

from ..data.imageset import SearchSplits
from ..data.splits import subsample_stratified
from ..fitness.evaluation import Evaluation, Executor
from ..searchers.base import Trial

STAGE_FITNESS_SUBSET = 11  # own random stream: never reshuffles the data splits


class HalvingExecutor(Executor):
    """Two-rung successive halving over each batch of trials with the default budget."""

    name = "halving"

    def __init__(self, inner: Executor, low_epochs: int, keep: float) -> None:
        self.inner, self.low, self.keep = inner, low_epochs, keep

    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, Evaluation]]:
        fixed = [t for t in trials if t.budget_epochs is not None]  # the searcher chose: leave them
        free = [t for t in trials if t.budget_epochs is None]
        yield from self.inner.run(fixed)
        if not free:
            return
        low = {t.number: ev for t, ev in self.inner.run([dataclasses.replace(t, budget_epochs=self.low) for t in free])}
        ranked = sorted(free, key=lambda t: low[t.number].fitness, reverse=True)  # stable: ties keep ask order
        n_keep = max(1, math.ceil(self.keep * len(free)))
        for trial in ranked[n_keep:]:
            ev = low[trial.number]
            yield trial, dataclasses.replace(ev, info={**ev.info, "fidelity": self.low})
        for trial, ev in self.inner.run(ranked[:n_keep]):
            ev.epochs_trained += low[trial.number].epochs_trained  # the rung-1 epochs were spent too
            yield trial, ev

    def close(self) -> None:
        self.inner.close()


class EarlyStopping:
    """Wrap ``evaluate(mask, epochs, stop=...)``: stop evaluations that cannot catch the best."""

    def __init__(self, evaluate: Callable[..., Evaluation], margin: float, epochs: int) -> None:
        self.evaluate, self.margin, self.epochs = evaluate, margin, epochs
        self.best = -math.inf

    def __call__(self, mask: list[int], epochs: int | None = None) -> Evaluation:
        target = epochs or self.epochs

        def stop(record: dict) -> bool:
            return record["epoch"] < target and record["val_accuracy"] < self.best - self.margin

        ev = self.evaluate(mask, epochs, stop=stop)
        if target == self.epochs and len(ev.epochs) == target:  # only full-fidelity fitnesses set the bar
            self.best = max(self.best, ev.fitness)
        return ev


def subset_splits(data: SearchSplits, train_fraction: float, val_fraction: float, seed: int) -> SearchSplits:
    """Stratified, seeded fractions of the search's train and val splits."""

    def part(images, fraction):
        if fraction >= 1.0:
            return images
        n = max(len(data.classes), round(fraction * len(images)))
        idx = subsample_stratified(images.labels, n, seed, stage=STAGE_FITNESS_SUBSET)
        return images.subset(torch.from_numpy(idx))

    return SearchSplits(part(data.train, train_fraction), part(data.val, val_fraction), data.classes)
