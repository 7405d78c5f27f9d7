"""Executors run the fitness evaluations of a batch of trials (locally, or spread over Ray).

A failed evaluation is classified before anyone retries it: a non-finite loss *diverged* (the
mask and learning rate do that every time); a programming or input error is *permanent*
(``TypeError``, ``ValueError``, ``ImportError``, a layerswarm error, a missing file); running
out of memory, a failed read or a lost Ray worker is *transient* and retried; anything else is
retried once, and the same error again makes it permanent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from ..errors import LayerswarmError
from ..fitness.evaluation import Evaluation, Executor
from ..run.failpoints import pass_point
from ..training import NonFiniteLossError

__all__ = ["Evaluation", "Executor", "describe_error", "evaluate_settled", "failure_kind", "torch_threads"]

PERMANENT = (
    LayerswarmError,
    TypeError,
    ValueError,
    ImportError,
    AttributeError,
    NameError,
    LookupError,
    AssertionError,
    NotImplementedError,
    ArithmeticError,
    SyntaxError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)
TRANSIENT = (MemoryError, OSError, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError))


def describe_error(err: BaseException) -> str:
    """``Type: first line of the message``: what a failed evaluation records."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def failure_kind(err: BaseException) -> str:
    """'diverged', 'permanent', 'transient' or 'unknown' (see the module's docstring)."""
    if isinstance(err, NonFiniteLossError):
        return "diverged"
    if isinstance(err, PERMANENT):  # before TRANSIENT: a missing file is an OSError too
        return "permanent"
    # MPS runs out of memory as a RuntimeError; Ray's own errors: a worker or a node was lost
    ray_error = type(err).__module__.startswith("ray.")
    if isinstance(err, TRANSIENT) or "out of memory" in str(err) or ray_error:
        return "transient"
    return "unknown"


def failed_evaluation(err: BaseException) -> Evaluation:
    """The record of an evaluation that raised ``err``: fitness -inf, its one-line error."""
    status = "diverged" if failure_kind(err) == "diverged" else "failed"
    return Evaluation(fitness=-math.inf, error=describe_error(err), status=status)


def evaluate_settled(
    evaluate: Callable[[list[int], int | None], Evaluation], mask: list[int], epochs: int | None
) -> Evaluation:
    """``evaluate(mask, epochs)``; a failure that no retry can mend (diverged, permanent) is
    returned as its :func:`failed_evaluation`, any other is raised for the caller to retry."""
    try:
        pass_point("evaluate")  # the failpoint evaluate=raise:ERROR (layerswarm.run.failpoints)
        return evaluate(mask, epochs)
    except Exception as err:  # noqa: BLE001 - one evaluation's failure must not end the search
        if failure_kind(err) in ("diverged", "permanent"):
            return failed_evaluation(err)
        raise


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op CPU threads, then restore the previous count.

    CPU results change in the last bits with the thread count (reductions are split
    differently), so every backend evaluates with the same count for equal fitnesses.
    """
    if not threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
