"""``--patience P``: end a search once its best fitness has not risen for P batches in a row.

A swarm collapses: after a few generations its particles sit on masks it has already seen and
its best stops moving (docs/results/fashion-mnist.md: the paper's swarm found its final best by
generation 5 of 12 on every Fashion-MNIST seed). The generations after that cost little where the
memo answers the repeats, and a lot where the swarm keeps wandering over new masks without finding
better ones (digits). :class:`PatientSearcher` stops it there.

The stop is read from the searcher's own per-batch history (best fitness so far after each told
batch), so it needs no state of its own: a resumed run stops exactly where the uninterrupted one
does, and a stopped run's evaluations are the first ones of the same run without patience.
A batch is a generation for PSO and GA, one batch of asks for the others (``batch_size``).
"""

from __future__ import annotations

from typing import Any

from layerswarm.errors import LayerswarmError
from layerswarm.searchers.base import Searcher, Trial

__all__ = ["PatientSearcher", "batches_without_gain", "with_patience"]


def batches_without_gain(history: list[dict[str, Any]]) -> int:
    """Told batches since the last one that raised the best fitness (0: the last one did)."""
    best = [row["best_fitness"] for row in history]
    for i in range(len(best) - 1, 0, -1):
        if best[i] > best[i - 1]:
            return len(best) - 1 - i
    return max(len(best) - 1, 0)  # the first batch sets the first best


def with_patience(searcher: Searcher, patience: int = 0) -> Searcher:
    """``searcher`` ending after ``patience`` batches without a better fitness; 0: as it is."""
    if patience < 0:
        raise LayerswarmError(f"patience must be >= 0 (0: off), not {patience}")
    return PatientSearcher(searcher, patience) if patience else searcher


class PatientSearcher(Searcher):
    """``inner``, done when its budget is spent or its best has not risen for ``patience`` batches."""

    def __init__(self, inner: Searcher, patience: int) -> None:
        super().__init__(inner.num_units, inner.seed, inner.space)
        self.inner, self.patience = inner, patience
        self.name = inner.name

    def stalled(self) -> bool:
        history = self.inner.history()
        return bool(history) and batches_without_gain(history) >= self.patience

    def is_done(self) -> bool:
        return self.inner.is_done() or (not self.inner.pending() and self.stalled())

    def ask(self) -> list[Trial]:
        if self.is_done():
            raise RuntimeError(
                f"{self.name} searcher: done (budget spent, or no better fitness for {self.patience} batches)"
            )
        return self.inner.ask()

    def tell(self, number: int, fitness: float) -> None:
        self.inner.tell(number, fitness)

    def pending(self) -> list[Trial]:
        return self.inner.pending()

    def best(self) -> tuple[list[int], float]:
        return self.inner.best()

    def history(self) -> list[dict[str, Any]]:
        return self.inner.history()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()  # the stop is read from the inner's history: nothing to add

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def place_initial_masks(self, masks: list[tuple[str, list[int]]]) -> list[tuple[str, list[int]]]:
        return self.inner.place_initial_masks(masks)
