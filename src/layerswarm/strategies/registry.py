"""Strategy registry: ``create_strategy(name, config)``."""

from __future__ import annotations

import difflib

from ..errors import LayerswarmError
from .base import Strategy

STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def create_strategy(name: str, config: dict | None = None) -> Strategy:
    if name not in STRATEGIES:
        close = difflib.get_close_matches(name, STRATEGIES, n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise LayerswarmError(f"unknown strategy '{name}'{hint}: choose from {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name](config)
