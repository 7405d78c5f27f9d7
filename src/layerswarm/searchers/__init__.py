"""Searchers over freeze masks, and a registry to create them by name.

Use ``create_searcher("pso", num_units, {"particles": 10}, seed=0)``; add your own with
``@register_searcher("name")`` on a :class:`Searcher` subclass whose constructor is
``(num_units, config=None, seed=0)`` and whose ``config_class`` dataclass has
``from_dict`` (or, for a searcher without options, constructor ``(num_units, seed=0)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from layerswarm.errors import LayerswarmError
from layerswarm.searchers.base import BatchSearcher, Searcher, Trial
from layerswarm.searchers.exhaustive import ExhaustiveConfig, ExhaustiveSearcher
from layerswarm.searchers.ga import GAConfig, GASearcher
from layerswarm.searchers.greedy import GreedyConfig, GreedySearcher
from layerswarm.searchers.pso import PSOConfig, PSOSearcher
from layerswarm.searchers.random import RandomConfig, RandomSearcher
from layerswarm.searchers.tpe import TPEConfig, TPESearcher

__all__ = [
    "SEARCHERS",
    "BatchSearcher",
    "ExhaustiveConfig",
    "ExhaustiveSearcher",
    "GAConfig",
    "GASearcher",
    "GreedyConfig",
    "GreedySearcher",
    "PSOConfig",
    "PSOSearcher",
    "RandomConfig",
    "RandomSearcher",
    "Searcher",
    "TPEConfig",
    "TPESearcher",
    "Trial",
    "config_for_budget",
    "create_searcher",
    "register_searcher",
]

SEARCHERS: dict[str, type[Searcher]] = {
    "pso": PSOSearcher,
    "random": RandomSearcher,
    "tpe": TPESearcher,
    "ga": GASearcher,
    "greedy": GreedySearcher,
    "exhaustive": ExhaustiveSearcher,
}


def register_searcher(name: str) -> Callable[[type[Searcher]], type[Searcher]]:
    """Class decorator: make a searcher available to :func:`create_searcher` as ``name``."""

    def decorate(cls: type[Searcher]) -> type[Searcher]:
        existing = SEARCHERS.get(name)
        if existing is not None and existing is not cls:
            raise LayerswarmError(
                f"searcher name {name!r} is already taken by {existing.__qualname__}; "
                "register yours under another name"
            )
        cls.name = name
        SEARCHERS[name] = cls
        return cls

    return decorate


def create_searcher(
    name: str,
    num_units: int,
    config: dict[str, Any] | Any | None = None,
    seed: int = 0,
) -> Searcher:
    """A new searcher ``name`` over masks of ``num_units``.

    ``config`` is the searcher's config dataclass, a dict of its fields (unknown keys are
    refused by name), or ``None`` for the defaults.
    """
    cls = SEARCHERS.get(name)
    if cls is None:
        raise LayerswarmError(
            f"unknown searcher {name!r}; known searchers: {', '.join(sorted(SEARCHERS))}"
        )
    config_class = getattr(cls, "config_class", None)
    if config_class is None:
        if config:
            raise LayerswarmError(f"searcher {name!r} takes no config; pass none")
        return cls(num_units, seed=seed)  # type: ignore[call-arg]
    if isinstance(config, dict):
        config = config_class.from_dict(config)
    elif config is not None and not isinstance(config, config_class):
        raise LayerswarmError(
            f"searcher {name!r} needs a {config_class.__name__} or a dict, "
            f"not a {type(config).__name__}"
        )
    return cls(num_units, config=config, seed=seed)  # type: ignore[call-arg]


def config_for_budget(name: str, evaluations: int, batch_size: int | None = None) -> dict[str, Any]:
    """Options of searcher ``name`` for a budget of ``evaluations`` fitness evaluations.

    ``batch_size`` (masks per ask, e.g. PSO's swarm size) is used where the searcher batches.
    PSO spends its budget as ``particles x generations`` (generations rounded up); a config
    class with ``from_budget(evaluations, batch_size)`` decides for itself; exhaustive search
    always spends 2^L.
    """
    if evaluations < 1:
        raise LayerswarmError(f"budget={evaluations} must be at least 1 fitness evaluation")
    cls = SEARCHERS.get(name)
    if cls is None:
        raise LayerswarmError(
            f"unknown searcher {name!r}; known searchers: {', '.join(sorted(SEARCHERS))}"
        )
    if cls is PSOSearcher:
        particles = min(batch_size or 10, evaluations)
        return {"particles": particles, "generations": -(-evaluations // particles)}
    if cls is RandomSearcher:
        return {"trials": evaluations, "batch_size": batch_size or 10}
    config_class = getattr(cls, "config_class", None)
    from_budget = getattr(config_class, "from_budget", None)
    if from_budget is None:
        return {}
    return from_budget(evaluations, batch_size).to_dict()
