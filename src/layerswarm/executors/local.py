"""Evaluate trials one after another in this process."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from ..fitness.evaluation import Evaluation
from ..searchers.base import Trial
from .base import (
    Executor,
    describe_error,
    evaluate_settled,
    failed_evaluation,
    failure_kind,
    torch_threads,
)

log = logging.getLogger(__name__)


class LocalExecutor(Executor):
    """Sequential evaluation with retries (:func:`evaluate_with_retries`); one that keeps failing
    scores -inf.

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
    """Run ``evaluate(plan, epochs)`` (the trial's mask, or its levels); retry a transient
    failure up to ``retries`` times, an unknown one until it repeats itself, a permanent or
    diverged one never; then record it."""
    last, attempts = None, 0
    while True:
        try:
            return evaluate_settled(evaluate, trial.unit_levels, trial.budget_epochs)
        except Exception as err:  # noqa: BLE001 - what no retry mends came back as an evaluation
            attempts, error = attempts + 1, describe_error(err)
            if attempts > retries or (failure_kind(err) == "unknown" and error == last):
                return failed_evaluation(err)
            last = error
            log.warning(
                "evaluation %d failed (attempt %d/%d), retrying: %s", trial.number, attempts, retries + 1, error
            )
