"""Strategy registry: ``create_strategy(name, config)``."""

from __future__ import annotations

from ..registry import Registry
from .base import Strategy

STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` available as ``cls.name`` (a taken name is refused)."""
    return STRATEGIES.add(cls.name, cls)


def create_strategy(name: str, config: dict | None = None) -> Strategy:
    return STRATEGIES.lookup(name)(config)
