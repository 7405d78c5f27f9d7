"""Search spaces of a study: what the searcher's trials mean as plans.

``mask``: a bit per unit, the paper's space; a plan trains the unit at multiplier 1 or
freezes it (0). ``lr``: one level of a ladder of learning-rate multipliers per unit, level 0
frozen (:mod:`layerswarm.searchers.space`, as ``layerswarm search --space lr``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..searchers import Trial as SearcherTrial
from ..searchers.space import SPACES, LevelSpace, make_space

__all__ = ["SPACES", "check_space", "lr_multipliers"]


def check_space(space: str, ladder: Sequence[float] | None = None) -> LevelSpace:
    """The space named ``space`` (with ``ladder`` for 'lr'), or a one-line error."""
    return make_space(space, ladder)


def lr_multipliers(space: LevelSpace, asked: SearcherTrial) -> list[float]:
    """One learning-rate multiplier per unit for the searcher's trial ``asked`` (0: frozen)."""
    return space.multipliers(asked.unit_levels)
