"""Evaluate trials one after another in this process."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from ..fitness import Evaluation
from ..searchers.base import Trial
from .base import Executor

log = logging.getLogger(__name__)


class LocalExecutor(Executor):
    """Sequential evaluation with retries; an evaluation that keeps failing scores -inf."""

    name = "local"

    def __init__(self, evaluate: Callable[[list[int], int | None], Evaluation], retries: int = 1) -> None:
        self.evaluate = evaluate
        self.retries = retries

    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, Evaluation]]:
        for trial in trials:
            yield trial, evaluate_with_retries(self.evaluate, trial, self.retries)


def evaluate_with_retries(evaluate, trial: Trial, retries: int) -> Evaluation:
    """Run ``evaluate(mask, epochs)``; on an exception retry, then record the failure."""
    error = None
    for attempt in range(retries + 1):
        try:
            return evaluate(trial.mask, trial.budget_epochs)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001 - any failure of one evaluation must not end the search
            error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            log.warning("evaluation %d failed (attempt %d/%d): %s", trial.number, attempt + 1, retries + 1, error)
    return Evaluation(fitness=float("-inf"), error=error)
