"""Resume by replay: a searcher's state is its seed, config and told fitnesses.

:class:`ReplaySearcher` saves what was asked and told, and restores by rebuilding the searcher
from its seed and re-running the same ask/tell sequence with the recorded fitnesses. This
restores state that cannot be serialised cleanly (an optuna study and its samplers' random
streams) exactly, and checks itself: each re-asked mask must equal the recorded one, or the
resume is refused (e.g. after an upgrade of the library that samples).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from layerswarm.errors import LayerswarmError
from layerswarm.searchers.base import BatchSearcher, Trial, decode_float, encode_float
from layerswarm.searchers.space import LevelSpace

__all__ = ["ReplaySearcher", "mask_bits"]


def mask_bits(levels: list[int]) -> str:
    """A plan as a string key, one digit per unit: a mask's bits, or levels (at most 10 of them)."""
    return "".join(str(int(b)) for b in levels)


class ReplaySearcher(BatchSearcher):
    """A :class:`BatchSearcher` whose state is its ask/tell record (see the module doc)."""

    def __init__(self, num_units: int, config: Any = None, seed: int = 0, space: LevelSpace | None = None) -> None:
        # ``config=None``: the config class's defaults
        super().__init__(num_units, seed, config, space)
        self._record: list[list[Trial]] = []  # every asked batch, in ask order
        self._fitness: dict[int, float] = {}  # every told fitness, by trial number
        self._reset()

    @abstractmethod
    def _reset(self) -> None:
        """(Re)initialise every search variable from ``self.seed`` and ``self.config``."""

    def ask(self) -> list[Trial]:
        batch = super().ask()
        self._record.append([Trial.from_dict(t.to_dict()) for t in batch])
        return batch

    def tell(self, number: int, fitness: float) -> None:
        super().tell(number, fitness)
        self._fitness[number] = float(fitness)

    def state_dict(self) -> dict[str, Any]:
        told = self._fitness
        return {
            **self._header_state(),
            "batches": [
                [
                    [t.number, mask_bits(t.unit_levels), encode_float(told[t.number]) if t.number in told else None]
                    for t in batch
                ]
                for batch in self._record
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild from the seed and replay the record; the saved config wins."""
        self._load_header_state(state)
        BatchSearcher.__init__(self, self.num_units, self.seed, self.config, self.space)
        self._record, self._fitness = [], {}
        self._reset()
        for saved in state["batches"]:
            batch = self.ask()
            if [[t.number, mask_bits(t.unit_levels)] for t in batch] != [row[:2] for row in saved]:
                raise LayerswarmError(
                    f"cannot resume the {self.name} search: replaying its record asked other masks "
                    "(was the sampling library upgraded?); start a new search"
                )
            for number, _, fitness in saved:
                if fitness is not None:
                    self.tell(number, decode_float(fitness))
