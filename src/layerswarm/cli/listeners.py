"""The callbacks of a search run (progress bars, TensorBoard) and a fan-out over several."""

from __future__ import annotations

from collections.abc import Iterable


class RunListener:
    """Callbacks of a search run; every method is optional (a no-op here)."""

    def on_fitness_epoch(self, record: dict) -> None:
        """An epoch of a fitness fine-tune finished (trainer's epoch record)."""

    def on_evaluation(self, record: dict) -> None:
        """An evaluation finished (its ``evaluations.jsonl`` record)."""

    def on_final_epoch(self, record: dict) -> None:
        """An epoch of the final fine-tune finished."""

    def close(self, result: dict | None = None) -> None:
        """The run ended (``result`` from ``run_search``, or ``None`` on failure)."""


class Listeners(RunListener):
    """Fan one callback out to several listeners, in order."""

    def __init__(self, listeners: Iterable[RunListener | None]) -> None:
        self.listeners = [x for x in listeners if x is not None]

    def on_fitness_epoch(self, record: dict) -> None:
        for x in self.listeners:
            x.on_fitness_epoch(record)

    def on_evaluation(self, record: dict) -> None:
        for x in self.listeners:
            x.on_evaluation(record)

    def on_final_epoch(self, record: dict) -> None:
        for x in self.listeners:
            x.on_final_epoch(record)

    def close(self, result: dict | None = None) -> None:
        for x in self.listeners:
            x.close(result)
