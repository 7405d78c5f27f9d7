"""What one fitness evaluation returns, and the interface of whatever runs a batch of them.

Kept apart from :mod:`layerswarm.fitness` (the training stack) so that executors and the
executor-side speed-ups (memo, halving) depend on this small module only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

from .searchers.base import Trial


@dataclass
class Evaluation:
    """The outcome of one fitness evaluation."""

    fitness: float
    fitness_se: float | None = None  # its standard error (layerswarm.noise); None: not known
    val_images: int | None = None  # images the fitness was measured on
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    epochs_trained: int = 0
    error: str | None = None
    info: dict = field(default_factory=dict)  # how it was computed: memo hit, fidelity rung, early stop


class Executor(ABC):
    """Evaluate trials; yield ``(trial, evaluation)`` as each finishes (any order)."""

    name = "base"

    @abstractmethod
    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, Evaluation]]:
        """Evaluate every trial. A failed evaluation yields ``Evaluation(fitness=-inf, error=...)``."""

    def close(self) -> None:  # noqa: B027 - optional hook: most executors hold nothing
        """Release workers."""
