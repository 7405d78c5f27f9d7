"""One trial of a study: a plan the searcher asked for, and what the objective made of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .plan import Plan

RUNNING, COMPLETE, FAIL = "running", "complete", "fail"
DIRECTIONS = ("maximize", "minimize")


@dataclass
class Trial(Plan):
    """A plan with its number in the study and, once told, its result.

    ``value`` is what the objective returned; ``fitness`` what the searcher maximised (the
    value, or minus the value under ``direction="minimize"``; ``-inf`` for a failed trial);
    ``error`` the one-line error of a failed one. ``generation`` and ``particle`` place the
    trial in the searcher's batch (a PSO generation and particle).
    """

    number: int = 0
    generation: int = 0
    particle: int = 0
    position: list[float] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    state: str = RUNNING
    value: float | None = None
    fitness: float | None = None
    error: str | None = None
    seconds: float = 0.0


def fitness_of(value: float | None, direction: str) -> float:
    """What the searcher maximises for an objective's ``value``; ``-inf`` for a failed one."""
    if value is None or math.isnan(value):
        return -math.inf
    return value if direction == "maximize" else -value
