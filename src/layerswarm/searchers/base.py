"""The searcher interface: ask for candidate plans (a freeze mask, or a level per unit), tell
their fitness (as in optuna)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layerswarm.errors import LayerswarmError
from layerswarm.searchers.space import LevelSpace, MaskSpace


@dataclass
class Trial:
    """One candidate handed out by :meth:`Searcher.ask`.

    ``number`` is unique within a search and increases in ask order; ``generation`` and
    ``index`` place it in a batch (a PSO generation and particle). ``position`` is the
    searcher's continuous encoding when it has one (PSO: x in [0,1]^L), else ``None``.
    ``mask`` is 1 where a unit trains; ``levels`` each unit's level in a level space
    (:mod:`layerswarm.searchers.space`; 0 frozen), ``None`` in the mask space, where the mask
    is the whole plan: :attr:`unit_levels` is the plan either way.
    """

    number: int
    generation: int
    index: int
    mask: list[int]
    position: list[float] | None = None
    budget_epochs: int | None = None  # fidelity asked for; None means the search default
    info: dict[str, Any] = field(default_factory=dict)
    levels: list[int] | None = None

    @property
    def unit_levels(self) -> list[int]:
        """Each unit's level: ``levels`` in a level space, the mask (levels 0 and 1) in the mask
        space."""
        return list(self.mask if self.levels is None else self.levels)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "number": self.number,
            "generation": self.generation,
            "index": self.index,
            "mask": list(self.mask),
            "position": None if self.position is None else list(self.position),
            "budget_epochs": self.budget_epochs,
            "info": dict(self.info),
        }
        if self.levels is not None:  # a mask-space trial's record stays as it always was
            out["levels"] = list(self.levels)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trial:
        return cls(**d)


class Searcher(ABC):
    """Ask/tell search over the plans of ``space`` for ``num_units`` units: binary freeze masks
    (the default :class:`~layerswarm.searchers.space.MaskSpace`) or a level per unit.

    Protocol: ``ask()`` returns the next batch of trials (possibly one); every trial of
    a batch must be told with ``tell(trial.number, fitness)`` (higher is better; use
    ``float('-inf')`` for a failed evaluation) before the next ``ask()``; ``pending()``
    returns the asked trials not yet told (after ``load_state_dict`` the driver evaluates
    those before asking again). ``is_done()`` says when the budget is spent; ``best()``
    raises ``RuntimeError`` until a result has been told. ``state_dict()`` is JSON-serialisable and
    ``load_state_dict()`` restores the searcher exactly, random-number state included,
    so that a resumed search asks the same trials as an uninterrupted one.

    A searcher that takes ``space`` (constructor keyword) supports level spaces; its plans are
    ``Trial.unit_levels`` and :meth:`best` returns the best plan's levels (in the mask space:
    the mask). Every built-in searcher does.
    """

    name: str = "base"

    def __init__(self, num_units: int, seed: int = 0, space: LevelSpace | None = None) -> None:
        if num_units < 1:
            raise ValueError("num_units must be >= 1")
        self.num_units = num_units
        self.seed = seed
        self.space = space if space is not None else MaskSpace()

    @abstractmethod
    def ask(self) -> list[Trial]:
        """The next batch of trials to evaluate."""

    @abstractmethod
    def tell(self, number: int, fitness: float) -> None:
        """Report the fitness of trial ``number`` (asked and not yet told)."""

    @abstractmethod
    def is_done(self) -> bool:
        """True when no further ``ask()`` is allowed."""

    @abstractmethod
    def pending(self) -> list[Trial]:
        """Trials asked and not yet told, in ask order (re-hand these after a resume)."""

    @abstractmethod
    def best(self) -> tuple[list[int], float]:
        """The best plan told so far (its unit levels: the mask in the mask space) and its
        fitness; ``RuntimeError`` before any result."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state, random-number state included."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`state_dict`."""

    def history(self) -> list[dict[str, Any]]:
        """Per-generation summaries (e.g. best and mean fitness); optional."""
        return []

    def place_initial_masks(self, masks: list[tuple[str, list[int]]]) -> list[tuple[str, list[int]]]:
        """Take some of ``masks`` ((name, mask) pairs) into the first batch, before any ask; returns
        those not taken, which :func:`~layerswarm.searchers.seeded.with_initial_masks` asks first.
        Default: none taken. A searcher with a population (PSO, GA) places them there."""
        return list(masks)


# --- Helpers shared by the built-in searchers (additions; the API above is unchanged) ---


def encode_float(x: float) -> float | str:
    """A float as strict JSON: finite values unchanged, others as "-inf", "inf" or "nan".

    ``json.dumps`` would write ``-Infinity``, which is not JSON and which other readers
    (jq, JavaScript) reject; a failed evaluation's ``-inf`` must survive a checkpoint.
    """
    x = float(x)
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def decode_float(x: float | str | None) -> float:
    """Inverse of :func:`encode_float` (``None`` also reads as ``-inf``)."""
    if x is None:
        return float("-inf")
    return float(x)  # float("-inf"), float("inf") and float("nan") parse the strings


def check_fitness(fitness: float) -> float:
    """``fitness`` as a float; NaN is refused because it compares false with everything."""
    value = float(fitness)
    if math.isnan(value):
        raise ValueError("fitness is NaN; report a failed evaluation as float('-inf')")
    return value


class BatchSearcher(Searcher):
    """Bookkeeping for searchers that hand out whole batches (a PSO generation).

    Subclasses implement :meth:`_new_batch` (the trials of the next batch, given the first
    trial number) and :meth:`_finish_batch` (act on a batch once every trial is told).
    This class enforces the protocol: no ``ask()`` while a batch is outstanding or after
    the budget, no unknown or repeated ``tell()``; and it keeps the outstanding batch so
    that :meth:`pending` can re-hand it after :meth:`load_state_dict`.
    """

    config_class: type | None = None  # the searcher's JsonConfig dataclass, if it has options

    def __init__(self, num_units: int, seed: int = 0, config: Any = None, space: LevelSpace | None = None) -> None:
        super().__init__(num_units, seed, space)
        if self.config_class is not None:
            self.config = config if config is not None else self.config_class()
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._next_number = 0
        self._batch: list[Trial] = []  # the outstanding batch, in ask order
        self._told: dict[int, float] = {}  # fitness of its trials told so far
        self._best_mask: list[int] | None = None  # the default best()/history() read these
        self._best_fit = -math.inf
        self._history: list[dict[str, Any]] = []

    @abstractmethod
    def _new_batch(self, first_number: int) -> list[Trial]:
        """The next batch; numbers ``first_number, first_number + 1, ...``."""

    @abstractmethod
    def _finish_batch(self, trials: list[Trial], fitnesses: list[float]) -> None:
        """Act on a fully told batch; ``fitnesses`` follow ``trials`` (ask order)."""

    def ask(self) -> list[Trial]:
        if self._batch:
            missing = [t.number for t in self.pending()]
            raise RuntimeError(
                f"{self.name} searcher: tell the fitness of trials {missing} before asking "
                "again (pending() returns them)"
            )
        if self.is_done():
            raise RuntimeError(f"{self.name} searcher: the budget is spent (is_done() is True)")
        batch = self._new_batch(self._next_number)
        self._next_number += len(batch)
        self._batch = batch
        self._told = {}
        return [Trial.from_dict(t.to_dict()) for t in batch]  # copies: callers may mutate

    def tell(self, number: int, fitness: float) -> None:
        value = check_fitness(fitness)
        if number not in {t.number for t in self._batch}:
            raise ValueError(f"{self.name} searcher: trial {number} was not asked in this batch")
        if number in self._told:
            raise ValueError(f"{self.name} searcher: trial {number} was already told")
        self._told[number] = value
        if len(self._told) == len(self._batch):
            trials, told = self._batch, self._told
            self._batch, self._told = [], {}
            self._finish_batch(trials, [told[t.number] for t in trials])

    def _note_best(self, trial: Trial, fitness: float) -> None:
        """Keep the best told plan; strict ``>`` so ties (and a failed first one) keep the first."""
        if self._best_mask is None or fitness > self._best_fit:
            self._best_mask, self._best_fit = trial.unit_levels, fitness

    def _make_trial(self, levels: Any, **fields: Any) -> Trial:
        """A trial of the plan ``levels`` (its mask, and its levels in a level space)."""
        return Trial(**fields, **self.space.trial_plan(levels))

    def best(self) -> tuple[list[int], float]:
        if self._best_mask is None:
            raise RuntimeError(f"{self.name} searcher: no batch has been told yet, so no best mask")
        return list(self._best_mask), float(self._best_fit)

    def history(self) -> list[dict[str, Any]]:
        return [dict(h) for h in self._history]

    def pending(self) -> list[Trial]:
        """Trials asked and not yet told, in ask order (re-hand these after a resume)."""
        return [Trial.from_dict(t.to_dict()) for t in self._batch if t.number not in self._told]

    def _batch_state(self) -> dict[str, Any]:
        return {
            "next_number": self._next_number,
            "batch": [t.to_dict() for t in self._batch],
            "told": [[n, encode_float(f)] for n, f in self._told.items()],
        }

    def _load_batch_state(self, state: dict[str, Any]) -> None:
        self._next_number = int(state["next_number"])
        self._batch = [Trial.from_dict(d) for d in state["batch"]]
        self._told = {int(n): decode_float(f) for n, f in state["told"]}

    def _header_state(self) -> dict[str, Any]:
        """What every saved state starts with: who wrote it, for what, with which config (and
        its space, unless the mask space: a mask search's state stays as it always was)."""
        return {
            "searcher": self.name,
            "version": 1,
            "num_units": self.num_units,
            "seed": self.seed,
            "config": self.config.to_dict(),  # type: ignore[attr-defined]
            **({} if self.space.name == "mask" else {"space": self.space.to_dict()}),
        }

    def _load_header_state(self, state: dict[str, Any]) -> None:
        """Check and restore the header; the saved config wins over the constructor's."""
        self._check_state(state)
        self.seed = state["seed"]
        self.config = type(self.config).from_dict(state["config"])  # type: ignore[attr-defined]

    def _saved_state(self, **own: Any) -> dict[str, Any]:
        """The state of a searcher drawing from a numpy ``self._rng``: the header, the random
        stream, the history, the outstanding batch and the searcher's ``own`` variables."""
        return {
            **self._header_state(),
            "rng": self._rng.bit_generator.state,  # type: ignore[attr-defined]
            **own,
            "history": [encode_summary(h) for h in self._history],
            **self._batch_state(),
        }

    def _load_saved_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_saved_state` wrote, except the searcher's own variables."""
        self._load_header_state(state)
        self._rng = np.random.Generator(np.random.PCG64())
        self._rng.bit_generator.state = state["rng"]
        self._history = [decode_summary(h) for h in state["history"]]
        self._load_batch_state(state)

    def _check_state(self, state: dict[str, Any]) -> None:
        """Refuse a state written by another searcher or for another number of units."""
        if state.get("searcher") != self.name:
            raise LayerswarmError(
                f"cannot resume: the saved state is from searcher {state.get('searcher')!r}, "
                f"not {self.name!r}; resume with the same searcher or start a new search"
            )
        if int(state.get("num_units", -1)) != self.num_units:
            raise LayerswarmError(
                f"cannot resume: the saved state has {state.get('num_units')} units but this "
                f"model has {self.num_units}; resume with the same model and unit grouping"
            )
        saved = state.get("space", MaskSpace().to_dict())
        if saved != self.space.to_dict():
            raise LayerswarmError(
                f"cannot resume: the saved search is over space {saved['space']} (ladder "
                f"{saved['ladder']}), not {self.space.name} (ladder {list(self.space.ladder)}); "
                "resume with the same --space and --ladder"
            )


_SUMMARY_FLOATS = ("best_fitness", "mean_fitness", "max_fitness")


def batch_summary(
    generation: int, fitnesses: list[float], best_so_far: float, inertia: float | None = None
) -> dict[str, Any]:
    """One history row for a told batch.

    ``mean_fitness`` is over the finite fitnesses (-inf if none) so that one failed
    evaluation does not hide the batch's mean; ``failed`` counts the non-finite ones.
    """
    finite = [f for f in fitnesses if math.isfinite(f)]
    row: dict[str, Any] = {
        "generation": generation,
        "best_fitness": float(best_so_far),
        "mean_fitness": math.fsum(finite) / len(finite) if finite else -math.inf,
        "max_fitness": float(max(fitnesses)),
        "failed": len(fitnesses) - len(finite),
    }
    if inertia is not None:
        row["inertia"] = float(inertia)
    return row


def encode_summary(row: dict[str, Any]) -> dict[str, Any]:
    """A history row with non-finite floats encoded as by :func:`encode_float`."""
    return {k: encode_float(v) if k in _SUMMARY_FLOATS else v for k, v in row.items()}


def decode_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {k: decode_float(v) if k in _SUMMARY_FLOATS else v for k, v in row.items()}
