"""Search spaces of a study: what the searcher's trials mean as plans.

``mask``: a bit per unit, the paper's space; a plan trains the unit at multiplier 1 or
freezes it (0).
"""

from __future__ import annotations

from ..errors import LayerswarmError
from ..searchers import Trial as SearcherTrial

SPACES = ("mask",)


def check_space(space: str) -> str:
    if space not in SPACES:
        raise LayerswarmError(f"unknown space '{space}': use {' or '.join(SPACES)}")
    return space


def lr_multipliers(space: str, asked: SearcherTrial) -> list[float]:
    """One learning-rate multiplier per unit for the searcher's trial ``asked`` (0: frozen)."""
    check_space(space)
    return [float(bit) for bit in asked.mask]
