"""Every one of the 2^L masks, for L <= 12: the ground truth the other searchers are judged by.

The order is a seeded shuffle (``order="shuffled"``, the default), so that a search cut short
is random search without replacement; ``order="binary"`` counts in binary (unit 0 the most
significant bit) and ignores the seed. In a level space of K levels it enumerates the K^L plans
the same way (counting in base K), up to the same 4096 plans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerswarm.config_utils import JsonConfig, help_field
from layerswarm.errors import LayerswarmError
from layerswarm.searchers.base import Trial, batch_summary
from layerswarm.searchers.replay import ReplaySearcher
from layerswarm.searchers.space import LevelSpace

__all__ = ["MAX_UNITS", "ExhaustiveConfig", "ExhaustiveSearcher"]

MAX_UNITS = 12  # 4096 masks; beyond that an exhaustive search is not a sensible request
MAX_PLANS = 2**MAX_UNITS
ORDERS = ("shuffled", "binary")


@dataclass
class ExhaustiveConfig(JsonConfig):
    """Batching and order of the enumeration; the budget is always all 2^L masks."""

    batch_size: int = help_field(16, "masks handed out per ask()")
    order: str = help_field("shuffled", "'shuffled' (seeded) or 'binary' (counting order)")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise LayerswarmError("invalid exhaustive config: batch_size must be >= 1")
        if self.order not in ORDERS:
            raise LayerswarmError(f"invalid exhaustive config: order must be one of {', '.join(ORDERS)}")

    @classmethod
    def from_budget(cls, evaluations: int, batch_size: int | None = None) -> ExhaustiveConfig:
        """The budget is 2^L by definition; only the batch size is taken."""
        return cls() if batch_size is None else cls(batch_size=batch_size)


def mask_of(index: int, num_units: int, levels: int = 2) -> list[int]:
    """The ``index``-th plan in base-``levels`` counting order (unit 0 the most significant digit;
    with 2 levels, the ``index``-th mask in binary)."""
    return [(index // levels ** (num_units - 1 - j)) % levels for j in range(num_units)]


class ExhaustiveSearcher(ReplaySearcher):
    """All 2^L masks once each; the best told one wins (strict ``>``: ties keep the first)."""

    name = "exhaustive"
    config_class = ExhaustiveConfig

    def __init__(
        self, num_units: int, config: ExhaustiveConfig | None = None, seed: int = 0, space: LevelSpace | None = None
    ) -> None:
        levels = 2 if space is None else space.levels
        if levels**num_units > MAX_PLANS:
            raise LayerswarmError(
                f"exhaustive search needs at most {MAX_PLANS} plans ({levels}^units <= "
                f"2^{MAX_UNITS}), this model has {num_units} units; use --granularity stage or "
                "another searcher"
            )
        super().__init__(num_units, config, seed, space)

    def _reset(self) -> None:
        total = self.space.size(self.num_units)
        if self.config.order == "shuffled":
            self._order = np.random.default_rng(self.seed).permutation(total).tolist()
        else:
            self._order = list(range(total))
        self._done = 0

    def _new_batch(self, first_number: int) -> list[Trial]:
        indices = self._order[first_number : first_number + self.config.batch_size]
        return [
            self._make_trial(
                mask_of(k, self.num_units, self.space.levels),
                number=first_number + i,
                generation=len(self._history),
                index=i,
                info={"index": int(k)},
            )
            for i, k in enumerate(indices)
        ]

    def _finish_batch(self, trials: list[Trial], fitnesses: list[float]) -> None:
        for trial, phi in zip(trials, fitnesses, strict=True):
            self._note_best(trial, phi)
        self._history.append(batch_summary(len(self._history), fitnesses, self._best_fit))
        self._done += len(trials)

    def is_done(self) -> bool:
        return self._done >= len(self._order)
