"""The swarm's settings (:class:`PSOConfig`), apart from the swarm: numpy-free, so that the
command line builds its PSO options (``--generations``, ``--c1``, ...) from these fields
without importing numpy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from layerswarm.config_utils import JsonConfig, help_field, refuse_invalid

WALL_VELOCITIES = ("zero", "keep")


@dataclass
class PSOConfig(JsonConfig):
    """Hyper-parameters of the swarm; the defaults are the paper's."""

    particles: int = help_field(10, "swarm size n (paper: 10)")
    generations: int = help_field(12, "generations G (paper: 12)")
    c1: float = help_field(1.5, "cognitive learning factor (paper: 1.5)")
    c2: float = help_field(1.5, "social learning factor (paper: 1.5)")
    inertia_start: float = help_field(1.4, "inertia weight after the first generation (paper: 1.4)")
    inertia_end: float = help_field(0.7, "inertia weight after the last generation (paper: 0.7)")
    velocity_max: float | None = help_field(None, "bound |v| <= velocity_max per dimension; None: unbounded (paper)")
    init_velocity: float = help_field(0.5, "initial velocities are drawn from U(-v0, v0)")
    threshold: float = help_field(0.5, "a unit is fine-tuned when its position is > threshold (levels 1..K-1 above it)")
    wall_velocity: str = help_field(
        "keep",
        "velocity of a coordinate clamped at 0 or 1: 'zero' (absorbing wall) "
        "or 'keep' (it keeps pushing into the wall)",
    )

    def __post_init__(self) -> None:
        refuse_invalid(
            "PSO config",
            {
                "particles must be >= 1": self.particles < 1,
                "generations must be >= 1": self.generations < 1,
                "c1 and c2 must be >= 0": self.c1 < 0 or self.c2 < 0,
                "init_velocity must be >= 0": self.init_velocity < 0,
                "velocity_max must be > 0 or None": self.velocity_max is not None and not self.velocity_max > 0,
                "threshold must be in [0, 1)": not 0.0 <= self.threshold < 1.0,
                f"wall_velocity must be one of {', '.join(WALL_VELOCITIES)}": self.wall_velocity not in WALL_VELOCITIES,
            },
        )

    @property
    def budget(self) -> int:
        """Number of fitness evaluations, n * G."""
        return self.particles * self.generations

    budget_fields: ClassVar[tuple[str, ...]] = (
        "particles",
        "generations",
    )  # c1, c2, ... stay the caller's

    @classmethod
    def from_budget(cls, evaluations: int, batch_size: int | None = None) -> PSOConfig:
        """``batch_size`` particles (10 by default) and as many generations as the budget needs."""
        particles = min(batch_size or 10, evaluations)
        return cls(particles=particles, generations=-(-evaluations // particles))
