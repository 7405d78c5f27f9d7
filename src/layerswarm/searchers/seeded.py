"""``--init baselines``: the masks a user would try by hand among the first masks asked.

:func:`baseline_masks` are linear (all frozen), full (all trained) and last-k for k = 1, 2, 4
and L // 4 (those distinct and between 1 and L - 1). :func:`with_initial_masks` puts them in
front of any searcher, once for all of them: a searcher that can hold them in its first
population takes them there (:meth:`Searcher.place_initial_masks`: PSO as particles at
x = 0.25 / 0.75 per bit, GA as individuals), so that its search moves on from them; whatever it
does not take is asked first, as one batch, by :class:`SeededSearcher` (TPE, random, greedy,
exhaustive: a few evaluations more than their budget, repeated masks are answered by the memo).
Either way the search's best fitness is never below theirs. Trials of these masks carry
``info["init"]``, the baseline's name. In a level space a mask's trained units sit at the level
of the run's learning rate (:meth:`~layerswarm.searchers.space.LevelSpace.levels_of_mask`).
"""

from __future__ import annotations

from typing import Any

from layerswarm.errors import LayerswarmError
from layerswarm.searchers.base import (
    Searcher,
    Trial,
    batch_summary,
    check_fitness,
    decode_float,
    encode_float,
)

__all__ = ["INITS", "SeededSearcher", "baseline_masks", "with_initial_masks"]

INITS = ("random", "baselines")
Named = list[tuple[str, list[int]]]  # (name, mask)


def baseline_masks(num_units: int) -> Named:
    """(name, mask) of linear, full and last-k for k in 1, 2, 4, L // 4, without repeats."""
    out: Named = [("linear", [0] * num_units), ("full", [1] * num_units)]
    for k in (1, 2, 4, num_units // 4):
        mask = [0] * (num_units - k) + [1] * k
        if 0 < k < num_units and all(mask != m for _, m in out):
            out.append((f"last-{k}", mask))
    return out


def with_initial_masks(searcher: Searcher, init: str = "baselines") -> Searcher:
    """``searcher`` asking the baseline masks first (``init="baselines"``) or as it is (``"random"``)."""
    if init not in INITS:
        raise LayerswarmError(f"unknown init '{init}': use {' or '.join(INITS)}")
    if init == "random":
        return searcher
    left = searcher.place_initial_masks(baseline_masks(searcher.num_units))
    return SeededSearcher(searcher, left) if left else searcher


class SeededSearcher(Searcher):
    """``inner`` after one first batch of fixed masks (generation -1, so that the inner's
    generations keep their numbers; its trial numbers follow the batch's)."""

    def __init__(self, inner: Searcher, masks: Named) -> None:
        super().__init__(inner.num_units, inner.seed, inner.space)
        self.inner, self.masks = inner, [(name, list(m)) for name, m in masks]
        self.name = inner.name
        self._asked = False
        self._told: dict[int, float] = {}

    @property
    def _k(self) -> int:
        return len(self.masks)

    def _own(self) -> list[Trial]:
        return [
            Trial(
                number=i,
                generation=-1,
                index=i,
                info={"init": name},
                **self.space.trial_plan(self.space.levels_of_mask(m)),
            )
            for i, (name, m) in enumerate(self.masks)
        ]

    def _shift(self, trials: list[Trial]) -> list[Trial]:
        for t in trials:
            t.number += self._k
        return trials

    def _seeds_done(self) -> bool:
        return len(self._told) == self._k

    def ask(self) -> list[Trial]:
        if not self._asked:
            self._asked = True
            return self._own()
        if not self._seeds_done():
            raise RuntimeError(
                f"{self.name} searcher: tell the fitness of trials {[t.number for t in self.pending()]} "
                "before asking again (pending() returns them)"
            )
        return self._shift(self.inner.ask())

    def tell(self, number: int, fitness: float) -> None:
        if number >= self._k:
            self.inner.tell(number - self._k, fitness)
            return
        if not self._asked or number < 0:
            raise ValueError(f"{self.name} searcher: trial {number} was not asked")
        if number in self._told:
            raise ValueError(f"{self.name} searcher: trial {number} was already told")
        self._told[number] = check_fitness(fitness)

    def is_done(self) -> bool:
        return self._seeds_done() and self.inner.is_done()

    def pending(self) -> list[Trial]:
        if not self._asked:
            return []
        if not self._seeds_done():
            return [t for t in self._own() if t.number not in self._told]
        return self._shift(self.inner.pending())

    def best(self) -> tuple[list[int], float]:
        if not self._seeds_done():
            raise RuntimeError(f"{self.name} searcher: the first batch is not told yet, so no best mask")
        # strict >: the first of equals wins, and the fixed masks were asked first
        best = max(range(self._k), key=lambda i: (self._told[i], -i))
        mask, fitness = self.space.levels_of_mask(self.masks[best][1]), self._told[best]
        try:
            inner_mask, inner_fit = self.inner.best()
        except RuntimeError:
            return list(mask), fitness
        return (list(inner_mask), inner_fit) if inner_fit > fitness else (list(mask), fitness)

    def history(self) -> list[dict[str, Any]]:
        if not self._seeds_done():
            return []
        told = [self._told[i] for i in range(self._k)]
        rows = [batch_summary(-1, told, max(told))]
        for row in self.inner.history():
            row = dict(row)
            row["best_fitness"] = max(row["best_fitness"], max(told))
            rows.append(row)
        return rows

    def state_dict(self) -> dict[str, Any]:
        return {
            "searcher": self.name,
            "initial_masks": [[n, m] for n, m in self.masks],
            "asked": self._asked,
            "told": [[i, encode_float(f)] for i, f in self._told.items()],
            "inner": self.inner.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "initial_masks" not in state:
            raise LayerswarmError(
                "cannot resume: the saved search did not start from the baseline masks "
                "(it was --init random); resume with the same --init"
            )
        self.masks = [(n, list(m)) for n, m in state["initial_masks"]]
        self._asked = bool(state["asked"])
        self._told = {int(i): decode_float(f) for i, f in state["told"]}
        self.inner.load_state_dict(state["inner"])
