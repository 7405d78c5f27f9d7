"""Executors run the fitness evaluations of a batch of trials (locally, or spread over Ray)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from ..fitness import Evaluation
from ..searchers.base import Trial


class Executor(ABC):
    """Evaluate trials; yield ``(trial, evaluation)`` as each finishes (any order)."""

    name = "base"

    @abstractmethod
    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, Evaluation]]:
        """Evaluate every trial. A failed evaluation yields ``Evaluation(fitness=-inf, error=...)``."""

    def close(self) -> None:
        """Release workers."""
