"""The paper's random-mask baseline as a searcher: each unit fine-tuned if U(0, 1) >= 0.5.

``trials=1`` is exactly the paper's baseline (one random mask, then the final fine-tune);
larger budgets make it random search, the natural control for PSO at the same cost.
Draw order: at each ``ask()``, one vector of L uniforms per trial, in trial order. In a level
space of K levels a uniform u gives level floor(u K): each level equally likely, and with the
mask space's two levels exactly the bit above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from layerswarm.config_utils import JsonConfig, help_field
from layerswarm.errors import LayerswarmError
from layerswarm.searchers.base import (
    BatchSearcher,
    Trial,
    batch_summary,
    decode_float,
    encode_float,
)
from layerswarm.searchers.space import LevelSpace

__all__ = ["RandomConfig", "RandomSearcher"]


@dataclass
class RandomConfig(JsonConfig):
    """Budget of the random search; the defaults match PSO's default n * G = 120."""

    trials: int = help_field(120, "masks to evaluate (1: the paper's random-mask baseline)")
    batch_size: int = help_field(10, "masks handed out per ask() (the last batch may be smaller)")

    def __post_init__(self) -> None:
        if self.trials < 1 or self.batch_size < 1:
            raise LayerswarmError("invalid random config: trials and batch_size must be >= 1")

    @property
    def budget(self) -> int:
        return self.trials

    budget_fields: ClassVar[tuple[str, ...]] = ("trials", "batch_size")

    @classmethod
    def from_budget(cls, evaluations: int, batch_size: int | None = None) -> RandomConfig:
        return cls(trials=evaluations, batch_size=batch_size or 10)


class RandomSearcher(BatchSearcher):
    """Independent random masks; the best told one wins (strict ``>``: ties keep the first)."""

    name = "random"
    config_class = RandomConfig

    def __init__(
        self, num_units: int, config: RandomConfig | None = None, seed: int = 0, space: LevelSpace | None = None
    ) -> None:
        super().__init__(num_units, seed, config, space)
        self._batches = 0  # batches fully told
        self._told_count = 0

    def _new_batch(self, first_number: int) -> list[Trial]:
        size = min(self.config.batch_size, self.config.trials - first_number)
        draws = self._rng.random((size, self.num_units))
        k = self.space.levels
        return [
            self._make_trial(
                [min(int(u * k), k - 1) for u in draws[i]], number=first_number + i, generation=self._batches, index=i
            )
            for i in range(size)
        ]

    def _finish_batch(self, trials: list[Trial], fitnesses: list[float]) -> None:
        for trial, phi in zip(trials, fitnesses, strict=True):
            # The first told mask is the best even when it failed, so best() is always defined.
            self._note_best(trial, phi)
        self._history.append(batch_summary(self._batches, fitnesses, self._best_fit))
        self._told_count += len(trials)
        self._batches += 1

    def is_done(self) -> bool:
        return self._told_count >= self.config.trials

    def state_dict(self) -> dict[str, Any]:
        return self._saved_state(
            batches=self._batches,
            told_count=self._told_count,
            best_mask=self._best_mask,
            best_fitness=encode_float(self._best_fit),
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore exactly, config included (the saved config wins over the constructor's)."""
        self._load_saved_state(state)
        self._batches = int(state["batches"])
        self._told_count = int(state["told_count"])
        self._best_mask = None if state["best_mask"] is None else list(state["best_mask"])
        self._best_fit = decode_float(state["best_fitness"])
