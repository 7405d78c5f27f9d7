"""Greedy search, the surgical fine-tuning idea: change one unit (or block) at a time,
keep what helps.

Start from ``start`` (all frozen, the linear probe, by default). Each round asks every
mask one flip away from the current one (a unit switched between frozen and fine-tuned),
and moves to the best of them if it beats the current fitness. At a local optimum, with
budget left, it restarts from the best mask with ``kick`` random flips (iterated local
search). Masks already evaluated are never asked again. With ``--granularity block`` or
``stage`` a unit is a block or a stage, so "one unit" is "one block".

In a level space a round asks every plan one unit away: that unit at each of its other levels
(lowest first); a kick moves a unit to a random other level; 'full' starts every unit at the
run's rate. With two levels this is the flip search above, with the same random draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from layerswarm.config_utils import JsonConfig, help_field
from layerswarm.errors import LayerswarmError
from layerswarm.searchers.base import Trial, batch_summary
from layerswarm.searchers.replay import ReplaySearcher, mask_bits

__all__ = ["GreedyConfig", "GreedySearcher"]

STARTS = ("frozen", "full", "random")


@dataclass
class GreedyConfig(JsonConfig):
    """Budget, start and restarts of the greedy search."""

    trials: int = help_field(120, "masks to evaluate (the budget)")
    start: str = help_field(
        "frozen", "first mask: 'frozen' (linear probe), 'full' (fine-tune all at the run's rate) or 'random'"
    )
    kick: int = help_field(2, "random flips of a restart from the best mask")

    def __post_init__(self) -> None:
        if self.trials < 1 or self.kick < 1:
            raise LayerswarmError("invalid greedy config: trials and kick must be >= 1")
        if self.start not in STARTS:
            raise LayerswarmError(f"invalid greedy config: start must be one of {', '.join(STARTS)}")

    @classmethod
    def from_budget(cls, evaluations: int, batch_size: int | None = None) -> GreedyConfig:
        return cls(trials=evaluations)


class GreedySearcher(ReplaySearcher):
    """One ``ask()`` is the start mask, a round of single flips, or a restart."""

    name = "greedy"
    config_class = GreedyConfig

    def _reset(self) -> None:
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        L = self.num_units
        if self.config.start == "random":
            first = self._random_plan()
        else:
            first = [self.space.full_level if self.config.start == "full" else 0] * L
        self._current: list[int] | None = None  # the mask the rounds flip from
        self._current_fit = -math.inf
        self._first = first
        self._archive: dict[str, float] = {}
        self._round = 0
        self._told_count = 0

    def _known(self, mask: list[int]) -> bool:
        return mask_bits(mask) in self._archive

    def _random_plan(self) -> list[int]:
        """Each unit at a uniformly drawn level (a mask: ``U(0, 1) >= 0.5``), one draw per unit."""
        k = self.space.levels
        return [min(int(u * k), k - 1) for u in self._rng.random(self.num_units)]

    def _neighbours(self, plan: list[int]) -> list[list[int]]:
        return [
            plan[:j] + [level] + plan[j + 1 :]
            for j in range(self.num_units)
            for level in range(self.space.levels)
            if level != plan[j]
        ]

    def _new_batch(self, first_number: int) -> list[Trial]:
        remaining = self.config.trials - self._told_count
        if self._current is None:
            return self._trials(first_number, [self._first], "start")
        for _ in range(1000):
            fresh = [m for m in self._neighbours(self._current) if not self._known(m)]
            if fresh:
                return self._trials(first_number, fresh[:remaining], "flips")
            # Every neighbour is known: move to the best if it helps, else restart.
            top = max(self._neighbours(self._current), key=lambda m: self._archive[mask_bits(m)])
            if self._archive[mask_bits(top)] > self._current_fit:
                self._current, self._current_fit = top, self._archive[mask_bits(top)]
                continue
            kicked = self._kick()
            if not self._known(kicked):
                return self._trials(first_number, [kicked], "restart")
            self._current, self._current_fit = kicked, self._archive[mask_bits(kicked)]
        # Restarts keep landing on known masks: take any unknown mask (is_done rules out none).
        while True:
            mask = self._random_plan()
            if not self._known(mask):
                return self._trials(first_number, [mask], "restart")

    def _kick(self) -> list[int]:
        assert self._best_mask is not None
        mask = list(self._best_mask)
        k = self.space.levels
        for j in self._rng.choice(self.num_units, min(self.config.kick, self.num_units), replace=False):
            # another level: with two, the flip (no draw, so a mask search's stream is unchanged)
            step = 1 if k == 2 else int(self._rng.integers(1, k))
            mask[int(j)] = (mask[int(j)] + step) % k
        return mask

    def _trials(self, first_number: int, masks: list[list[int]], kind: str) -> list[Trial]:
        return [
            self._make_trial(m, number=first_number + i, generation=self._round, index=i, info={"step": kind})
            for i, m in enumerate(masks)
        ]

    def _finish_batch(self, trials: list[Trial], fitnesses: list[float]) -> None:
        for trial, phi in zip(trials, fitnesses, strict=True):
            self._archive[mask_bits(trial.unit_levels)] = phi
            self._note_best(trial, phi)
        step = trials[0].info["step"]
        top = int(np.argmax(fitnesses))  # first of the best in ask order
        if step == "flips":
            if fitnesses[top] > self._current_fit:  # keep what helps
                self._current, self._current_fit = trials[top].unit_levels, fitnesses[top]
        else:  # the start or a restart: flip from here next
            self._current, self._current_fit = trials[0].unit_levels, fitnesses[0]
        self._history.append(batch_summary(self._round, fitnesses, self._best_fit))
        self._round += 1
        self._told_count += len(trials)

    def is_done(self) -> bool:
        spent = self._told_count >= self.config.trials
        return spent or len(self._archive) >= self.space.size(self.num_units)
