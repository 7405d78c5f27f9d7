"""Searchers over freeze masks, and a registry to create them by name.

Use ``create_searcher("pso", num_units, {"particles": 10}, seed=0)``; add your own with
``@register_searcher("name")`` on a :class:`Searcher` subclass whose constructor is
``(num_units, config=None, seed=0)`` and whose ``config_class`` is a
:class:`~layerswarm.config_utils.JsonConfig` dataclass (or, for a searcher without options,
constructor ``(num_units, seed=0)``). A config class with ``from_budget(evaluations,
batch_size)`` sizes itself for :func:`config_for_budget`. A searcher whose constructor also
takes ``space`` searches level spaces too (``--space lr``, :mod:`layerswarm.searchers.space`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from layerswarm.errors import LayerswarmError
from layerswarm.registry import Registry
from layerswarm.searchers.base import BatchSearcher, Searcher, Trial
from layerswarm.searchers.exhaustive import ExhaustiveConfig, ExhaustiveSearcher
from layerswarm.searchers.ga import GAConfig, GASearcher
from layerswarm.searchers.greedy import GreedyConfig, GreedySearcher
from layerswarm.searchers.patience import PatientSearcher, with_patience
from layerswarm.searchers.pso import PSOSearcher
from layerswarm.searchers.pso_config import PSOConfig
from layerswarm.searchers.random import RandomConfig, RandomSearcher
from layerswarm.searchers.seeded import INITS, SeededSearcher, baseline_masks, with_initial_masks
from layerswarm.searchers.space import SPACES, LevelSpace, MaskSpace, make_space
from layerswarm.searchers.tpe import TPEConfig, TPESearcher

__all__ = [
    "INITS",
    "SEARCHERS",
    "SPACES",
    "BatchSearcher",
    "ExhaustiveConfig",
    "ExhaustiveSearcher",
    "GAConfig",
    "GASearcher",
    "GreedyConfig",
    "GreedySearcher",
    "LevelSpace",
    "MaskSpace",
    "PSOConfig",
    "PSOSearcher",
    "PatientSearcher",
    "RandomConfig",
    "RandomSearcher",
    "SeededSearcher",
    "Searcher",
    "TPEConfig",
    "TPESearcher",
    "Trial",
    "baseline_masks",
    "config_for_budget",
    "create_searcher",
    "make_space",
    "register_searcher",
    "with_initial_masks",
    "with_patience",
]

SEARCHERS: Registry[type[Searcher]] = Registry("searcher")
for _cls in (PSOSearcher, RandomSearcher, TPESearcher, GASearcher, GreedySearcher, ExhaustiveSearcher):
    SEARCHERS.add(_cls.name, _cls)


def register_searcher(name: str) -> Callable[[type[Searcher]], type[Searcher]]:
    """Class decorator: make a searcher available to :func:`create_searcher` as ``name``."""

    def decorate(cls: type[Searcher]) -> type[Searcher]:
        SEARCHERS.add(name, cls)
        cls.name = name
        return cls

    return decorate


def create_searcher(
    name: str,
    num_units: int,
    config: dict[str, Any] | Any | None = None,
    seed: int = 0,
    init: str = "random",
    patience: int = 0,
    space: LevelSpace | None = None,
) -> Searcher:
    """A new searcher ``name`` over masks of ``num_units`` (or over the plans of ``space``).

    ``config`` is the searcher's config dataclass, a dict of its fields (unknown keys are
    refused by name), or ``None`` for the defaults. ``init="baselines"``: the masks of linear,
    full and last-k are among the first asked (:mod:`layerswarm.searchers.seeded`).
    ``patience=P``: done after P batches without a better fitness (:mod:`layerswarm.searchers.patience`).
    """
    searcher = _create(name, num_units, config, seed, space or MaskSpace())
    return with_patience(with_initial_masks(searcher, init), patience)


def _create(name: str, num_units: int, config: dict[str, Any] | Any | None, seed: int, space: LevelSpace) -> Searcher:
    cls = SEARCHERS.lookup(name)
    config_class = getattr(cls, "config_class", None)
    spaced: dict[str, Any] = {}
    if "space" in inspect.signature(cls).parameters:
        spaced["space"] = space
    elif space.name != "mask":
        raise LayerswarmError(f"searcher {name!r} searches masks only: use --space mask, or another searcher")
    if config_class is None:
        if config:
            raise LayerswarmError(f"searcher {name!r} takes no config; pass none")
        return cls(num_units, seed=seed, **spaced)  # type: ignore[call-arg]
    if isinstance(config, dict):
        config = config_class.from_dict(config, owner=f"searcher '{name}'")
    elif config is not None and not isinstance(config, config_class):
        raise LayerswarmError(
            f"searcher {name!r} needs a {config_class.__name__} or a dict, not a {type(config).__name__}"
        )
    return cls(num_units, config=config, seed=seed, **spaced)  # type: ignore[call-arg]


def config_for_budget(name: str, evaluations: int, batch_size: int | None = None) -> dict[str, Any]:
    """Options of searcher ``name`` for a budget of ``evaluations`` fitness evaluations.

    ``batch_size`` (masks per ask, e.g. PSO's swarm size) is used where the searcher batches.
    The searcher's config class decides with ``from_budget(evaluations, batch_size)`` (PSO:
    ``particles x generations``, generations rounded up; exhaustive search always spends
    2^L); its ``budget_fields``, when set, are the only options returned (the rest keep
    whatever the caller gives). A searcher without ``from_budget`` gets no options.
    """
    if evaluations < 1:
        raise LayerswarmError(f"budget={evaluations} must be at least 1 fitness evaluation")
    config_class = getattr(SEARCHERS.lookup(name), "config_class", None)
    from_budget = getattr(config_class, "from_budget", None)
    if from_budget is None:
        return {}
    options = from_budget(evaluations, batch_size).to_dict()
    fields = getattr(config_class, "budget_fields", None)
    return options if fields is None else {k: options[k] for k in fields}
