"""What one fitness evaluation returns, and the interface of whatever runs a batch of them.

Kept apart from :mod:`layerswarm.fitness.mask_fitness` (the training stack) so that executors and the
executor-side speed-ups (memo, halving) depend on this small module only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .noise import binomial_se, combined_se

if TYPE_CHECKING:  # annotations only: the command line imports this module for FITNESS_SCORES, without numpy
    from ..searchers.base import Trial

# how a validation curve becomes a fitness (SearchConfig.fitness.score; docs/concepts/fitness.md)
FITNESS_SCORES = ("accuracy", "trend")
# how an evaluation ended: a fitness; an exception (fitness -inf); a non-finite loss (fitness -inf)
STATUSES = ("ok", "failed", "diverged")


def middle_epoch(epochs: int) -> int:
    """The epoch (1-based) whose validation the 'trend' score compares with the last: E // 2."""
    return epochs // 2


def curve_score(curve: list[dict], score: str, val_images: int | None = None) -> tuple[float, float | None] | None:
    """(fitness, its standard error) of a validation curve (one dict per epoch, ``val_accuracy``
    None where not validated); None when the curve lacks an epoch the score needs.

    'accuracy' (the paper): the last epoch's validation accuracy.
    'trend': the last value plus its rise since the middle epoch, i.e. the line through epochs
    E // 2 and E carried on as far again. A short fine-tune of a mask that freezes most of the
    network learns fast and then flattens, one that trains most of it is still climbing: on the
    last value alone the first outranks the second, though after the final fine-tune the
    second ends higher (docs/concepts/fitness.md). Its se treats the two values as independent.
    """
    if not curve or curve[-1].get("val_accuracy") is None:
        return None
    last, n = curve[-1]["val_accuracy"], val_images or 0

    def se(e: dict) -> float:
        return e["val_se"] if e.get("val_se") is not None else binomial_se(e["val_accuracy"], n)

    middle = middle_epoch(len(curve))
    if score == "accuracy" or middle < 1:
        return last, se(curve[-1]) if n else None
    if curve[middle - 1].get("val_accuracy") is None:
        return None
    start = curve[middle - 1]["val_accuracy"]
    return 2.0 * last - start, combined_se(2.0 * se(curve[-1]), se(curve[middle - 1])) if n else None


@dataclass
class Evaluation:
    """The outcome of one fitness evaluation."""

    fitness: float
    fitness_se: float | None = None  # its standard error (layerswarm.fitness.noise); None: not known
    val_images: int | None = None  # images the fitness was measured on
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    epochs_trained: int = 0
    error: str | None = None
    info: dict = field(default_factory=dict)  # how it was computed: memo hit, fidelity rung, early stop
    status: str = "ok"  # one of STATUSES: "failed" (it raised), "diverged" (a non-finite loss)

    def __post_init__(self) -> None:
        if self.error and self.status == "ok":  # an error without a status: it failed
            self.status = "failed"


class Executor(ABC):
    """Evaluate trials; yield ``(trial, evaluation)`` as each finishes (any order)."""

    name = "base"

    @abstractmethod
    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, Evaluation]]:
        """Evaluate every trial. A failed evaluation yields ``Evaluation(fitness=-inf, error=...)``."""

    def close(self) -> None:  # noqa: B027 - optional hook: most executors hold nothing
        """Release workers."""
