"""Executors run the fitness evaluations of a batch of trials (locally, or spread over Ray)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..fitness.evaluation import Evaluation, Executor

__all__ = ["Evaluation", "Executor", "describe_error", "torch_threads"]


def describe_error(err: BaseException) -> str:
    """``Type: first line of the message``: what a failed evaluation records."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


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
