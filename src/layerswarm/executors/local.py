"""Evaluate trials one after another in this process."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from ..fitness.evaluation import Evaluation
from ..searchers.base import Trial
from .base import Executor, describe_error, torch_threads

log = logging.getLogger(__name__)


class LocalExecutor(Executor):
    """Sequential evaluation with retries; an evaluation that keeps failing scores -inf.

    ``threads``: torch CPU threads during each evaluation (None leaves torch's setting).
    """

    name = "local"

    def __init__(
        self, evaluate: Callable[[list[int], int | None], Evaluation], retries: int = 1, threads: int | None = None
    ) -> None:
        self.evaluate = evaluate
        self.retries = retries
        self.threads = threads

    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, Evaluation]]:
        for trial in trials:
            with torch_threads(self.threads):
                evaluation = evaluate_with_retries(self.evaluate, trial, self.retries)
            yield trial, evaluation


def evaluate_with_retries(evaluate, trial: Trial, retries: int) -> Evaluation:
    """Run ``evaluate(mask, epochs)``; on an exception retry, then record the failure."""
    error = None
    for attempt in range(retries + 1):
        try:
            return evaluate(trial.mask, trial.budget_epochs)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001 - any failure of one evaluation must not end the search
            error = describe_error(err)
            log.warning("evaluation %d failed (attempt %d/%d): %s", trial.number, attempt + 1, retries + 1, error)
    return Evaluation(fitness=float("-inf"), error=error)
