"""When failing evaluations end a run, and what a run fine-tunes only after a success.

An evaluation that raised is recorded with status "failed" (fitness -inf) and the search goes
on: one mask running out of memory is no reason to stop. A bug, a missing package or a broken
data set fails every evaluation, though, and would spend the whole budget to then fine-tune a
mask no evaluation ever scored. :class:`FailureWatch` stops such a search early with one line
naming the first error; a diverged evaluation (a non-finite loss) is a result, not a failure.
"""

from __future__ import annotations

import math
from collections import Counter

from ..errors import RunFailed

DEFAULT_MAX_FAILED_SHARE = 0.5


class EvaluationsFailing(RunFailed):
    """:class:`FailureWatch` stopped the search; the driver rolls the searcher back to the start
    of the batch, so that a resume after the fix evaluates that batch's failed trials again."""


def _where(record: dict) -> str:
    where = f"generation {record['generation']}, particle {record['particle']}"
    return f"evaluation {record['number']} ({where}) failed with {record['error']}"


class FailureWatch:
    """Stop when every evaluation of the first batch this process runs has failed, or, once that
    batch is done, when more than ``max_share`` of the evaluations it ran have failed.

    Counted per process: a resume after the fix is judged on its own evaluations.
    ``batch_state``: the searcher's state when the current batch began.
    """

    def __init__(self, max_share: float = DEFAULT_MAX_FAILED_SHARE) -> None:
        self.max_share = max_share
        self.first_batch: set[int] | None = None  # numbers of the first batch not yet seen
        self.first_size, self.first_succeeded = 0, False
        self.ran = self.failed = 0
        self.first_failure: dict | None = None
        self.batch_state: dict | None = None

    def start_batch(self, todo: list, state: dict) -> None:
        """A batch begins: ``todo``, the trials to evaluate; ``state``, the searcher's now."""
        self.batch_state = state
        if self.first_batch is None and todo:
            self.first_batch = {t.number for t in todo}
            self.first_size = len(todo)

    def seen(self, record: dict) -> None:
        """Count an ``evaluations.jsonl`` record; raise :class:`EvaluationsFailing` to stop."""
        failed = record.get("status") == "failed"
        self.ran, self.failed = self.ran + 1, self.failed + failed
        if failed and self.first_failure is None:
            self.first_failure = record
        first = self.first_batch if self.first_batch is not None else set()
        if record["number"] in first:
            first.discard(record["number"])
            self.first_succeeded |= not failed
            if not first and not self.first_succeeded:
                raise EvaluationsFailing(
                    f"every evaluation of the first batch failed ({self.first_size} of "
                    f"{self.first_size}); the first, {_where(self.first_failure)}: fix its cause"
                )
        elif not first and self.failed > self.max_share * self.ran:
            raise EvaluationsFailing(
                f"{self.failed} of {self.ran} evaluations failed, more than --max-failed-share "
                f"{self.max_share:g}; the first, {_where(self.first_failure)}: fix its cause"
            )


def check_answerable(evaluations: list[dict], fitness: float, lr: float) -> None:
    """Refuse to fine-tune the search's answer when no evaluation scored it (fitness -inf)."""
    if math.isfinite(fitness):
        return
    search = [r for r in evaluations if not r.get("phase")]
    statuses = Counter(r.get("status") for r in search)
    if search and statuses["diverged"] == len(search):
        raise RunFailed(
            f"every fitness evaluation ({len(search)}) diverged, a non-finite loss, "
            f"with lr {lr:g}: "
            f"nothing to fine-tune; start a new run with a lower --lr, e.g. {lr / 10:g}",
            resumable=False,
        )
    first = next((r for r in search if r.get("status") == "failed"), None)
    because = f"; the first, {_where(first)}" if first else ""
    raise RunFailed(
        f"no fitness evaluation succeeded ({statuses['failed']} failed, {statuses['diverged']} "
        f"diverged){because}: nothing to fine-tune; fix the cause and start a new run",
        resumable=False,
    )
