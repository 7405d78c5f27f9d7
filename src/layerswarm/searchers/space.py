"""What a search chooses per unit: a level of an ordered ladder of learning-rate multipliers.

``--space mask`` is the paper's (:class:`MaskSpace`): two levels, 0 frozen and 1 fine-tuned at
the run's learning rate, so a plan's levels *are* its freeze mask. ``--space lr``
(:class:`LevelSpace`) gives each unit one of K levels; level 0 is frozen (for real: no
gradient, eval mode, exactly as in a mask) and level k > 0 trains the unit at
``lr x ladder[k]`` in its own optimizer parameter group. The ladder holds 1, so every mask is a
plan of the space (a bit 1 is the level whose multiplier is 1): the baselines of ``--init
baselines`` and full fine-tuning stay reachable.

Every searcher works on level indices 0..K-1 per unit and reads K from its space; with K = 2
each one draws exactly what it drew over bits, so a mask-space search is unchanged bit for bit.
This module imports neither numpy nor torch: the command line reads its names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import LayerswarmError

__all__ = [
    "DEFAULT_LADDER",
    "MAX_LEVELS",
    "SPACES",
    "LevelSpace",
    "MaskSpace",
    "make_space",
    "parse_ladder",
    "space_of",
]

SPACES = ("mask", "lr")
# The ladder of --space lr when none is given: frozen, a slowed unit, the run's rate, a faster one.
# Measured on digits (30 epochs, seeds 0-2), per-unit rates below the head's cost 4-11 points
# (layer-wise decay 0.8 and 0.65 against full), so one level below 1 is kept and one above added.
# One constant, to be re-measured: the default search may change it.
DEFAULT_LADDER: tuple[float, ...] = (0.0, 0.3, 1.0, 3.0)
MAX_LEVELS = 10  # a level is one digit in a searcher's record (``layerswarm.searchers.replay.mask_bits``)


def parse_ladder(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"0,0.1,1,3"`` (or a list of numbers) as a tuple of floats; a one-line error otherwise."""
    if isinstance(text, str):
        try:
            return tuple(float(x) for x in text.replace(" ", "").split(",") if x != "")
        except ValueError as err:
            raise LayerswarmError(f"ladder {text!r} is not a list of numbers: give it as e.g. 0,0.3,1,3") from err
    return tuple(float(x) for x in text)


@dataclass(frozen=True)
class LevelSpace:
    """One level of ``ladder`` per unit (learning-rate multipliers, rising, 0 first, 1 among)."""

    ladder: tuple[float, ...] = DEFAULT_LADDER
    name: ClassVar[str] = "lr"

    def __post_init__(self) -> None:
        ladder = parse_ladder(self.ladder)
        object.__setattr__(self, "ladder", ladder)
        problems = [
            message
            for message, holds in (
                (f"it needs 2 to {MAX_LEVELS} levels", not 2 <= len(ladder) <= MAX_LEVELS),
                ("its first level must be 0 (frozen)", not ladder or ladder[0] != 0.0),
                (
                    "its levels must rise strictly",
                    any(b <= a for a, b in zip(ladder, ladder[1:], strict=False)),
                ),
                (
                    "it must hold 1 (the run's learning rate, where every mask lies)",
                    1.0 not in ladder,
                ),
            )
            if holds
        ]
        if problems:
            shown = ",".join(f"{x:g}" for x in ladder)
            raise LayerswarmError(f"invalid ladder {shown}: {'; '.join(problems)} (e.g. --ladder 0,0.3,1,3)")

    @property
    def levels(self) -> int:
        """K, the number of levels per unit."""
        return len(self.ladder)

    @property
    def full_level(self) -> int:
        """The level that trains a unit at the run's learning rate (a mask's 1)."""
        return self.ladder.index(1.0)

    def size(self, num_units: int) -> int:
        """Plans in the space: K^L."""
        return self.levels**num_units

    def mask(self, levels: Sequence[int]) -> list[int]:
        """1 where a unit trains (level > 0), 0 where it is frozen."""
        return [int(level > 0) for level in levels]

    def multipliers(self, levels: Sequence[int]) -> list[float]:
        """Each unit's learning-rate multiplier (0 for a frozen unit)."""
        return [self.ladder[level] for level in levels]

    def levels_of_mask(self, mask: Sequence[int]) -> list[int]:
        """The plan of a mask: frozen units at level 0, trained ones at the run's rate."""
        return [self.full_level if bit else 0 for bit in mask]

    def level_of_position(self, x: float, threshold: float = 0.5) -> int:
        """A continuous coordinate in [0, 1] as a level (PSO's position, GA's gene): frozen at or
        below ``threshold``, and (threshold, 1] cut into K - 1 equal parts for levels 1..K-1 (with
        two levels: trained above the threshold, the paper's rule)."""
        if x <= threshold:
            return 0
        return 1 + min(self.levels - 2, int((x - threshold) / (1.0 - threshold) * (self.levels - 1)))

    def levels_of_position(self, x: Iterable[float], threshold: float = 0.5) -> list[int]:
        return [self.level_of_position(float(a), threshold) for a in x]

    def position_of_level(self, level: int, threshold: float = 0.5) -> float:
        """The middle of ``level``'s part of [0, 1] (with two levels: threshold / 2 and
        (1 + threshold) / 2, where a searcher places a mask's bits)."""
        if level == 0:
            return threshold / 2
        k = self.levels
        return ((2 * k - 2 * level - 1) * threshold + 2 * level - 1) / (2 * (k - 1))

    def trial_plan(self, levels: Sequence[int]) -> dict[str, Any]:
        """A :class:`~layerswarm.searchers.base.Trial`'s ``mask`` and ``levels`` for ``levels``
        (``levels`` None in the mask space, where the mask says it all)."""
        levels = [int(level) for level in levels]
        return {"mask": self.mask(levels), "levels": None if self.name == "mask" else levels}

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.name, "ladder": list(self.ladder)}


@dataclass(frozen=True)
class MaskSpace(LevelSpace):
    """The paper's space: a bit per unit (levels 0 frozen, 1 trained at the run's rate)."""

    ladder: tuple[float, ...] = field(default=(0.0, 1.0), init=False)
    name: ClassVar[str] = "mask"


def make_space(name: str = "mask", ladder: str | Sequence[float] | None = None) -> LevelSpace:
    """The space ``name`` ('mask' or 'lr', the latter with ``ladder`` or :data:`DEFAULT_LADDER`)."""
    if name == "mask":
        if ladder is not None:
            raise LayerswarmError("a ladder is for --space lr: drop --ladder, or add --space lr")
        return MaskSpace()
    if name == "lr":
        return LevelSpace(DEFAULT_LADDER if ladder is None else parse_ladder(ladder))
    raise LayerswarmError(f"unknown space '{name}': use {' or '.join(SPACES)}")


def space_of(search: Any) -> LevelSpace:
    """The space of a search configuration (its ``space`` and ``ladder``; none: the mask space)."""
    return make_space(getattr(search, "space", "mask"), getattr(search, "ladder", None))
