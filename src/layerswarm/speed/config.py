"""Switches of the search speed-ups: exact ones default on, approximate ones off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..config_utils import JsonConfig, help_field
from ..errors import LayerswarmError

FIDELITIES = ("full", "halving")


@dataclass
class SpeedConfig(JsonConfig):
    """How fitness evaluations are computed. ``memo``, ``prefix_cache`` and ``val_curve=False`` give the same
    masks and fitnesses as plain training (tested, and measured by ``layerswarm bench``);
    every other field trades accuracy of the fitness for time and is off by default."""

    memo: bool = help_field(True, "exact: never train a mask twice; a repeated (mask, epochs) reuses its fitness")
    prefix_cache: bool = help_field(True, "exact: compute the frozen prefix's activations once and reuse them")
    cache_mb: int = help_field(2048, "memory for cached prefix activations (MB, on the training device)")
    val_curve: bool = help_field(
        False,
        "validate after every epoch of a fitness evaluation (curves in reports and "
        "TensorBoard); off: only after the last, which is all the fitness needs. "
        "Early stopping turns it on",
    )
    fidelity: str = help_field(
        "full",
        "approximate: 'halving' trains every particle halving_epochs first, "
        "only the best halving_keep fraction gets the full epochs",
    )
    halving_epochs: int = help_field(1, "epochs of the first (low-fidelity) rung of successive halving")
    halving_keep: float = help_field(0.34, "fraction of a generation promoted to the full epochs")
    pause_mb: int = help_field(
        1024,
        "halving: host memory (MB) for the low-rung runs that promoted masks "
        "continue from (exact under a step or constant lr schedule); 0: promoted "
        "masks train from the pretrained weights again",
    )
    early_stop: float | None = help_field(
        None,
        "approximate: stop an evaluation whose validation accuracy after "
        "an epoch is this far below the best fitness so far (e.g. 0.05)",
    )
    fitness_train_fraction: float = help_field(
        1.0, "approximate: fitness trains on this stratified fraction of the train split"
    )
    fitness_val_fraction: float = help_field(1.0, "approximate: fitness is measured on this stratified fraction of val")

    # named train_fraction and val_fraction before: the latter read as DataConfig's validation share
    moved: ClassVar[dict[str, str]] = {
        "train_fraction": "fitness_train_fraction",
        "val_fraction": "fitness_val_fraction",
    }

    def __post_init__(self) -> None:
        if self.fidelity not in FIDELITIES:
            raise LayerswarmError(f"unknown fidelity '{self.fidelity}': use {' or '.join(FIDELITIES)}")
        if self.halving_epochs < 1 or not 0.0 < self.halving_keep <= 1.0:
            raise LayerswarmError(
                "halving needs halving_epochs >= 1 and 0 < halving_keep <= 1: fix --halving-epochs/--halving-keep"
            )
        for name in ("fitness_train_fraction", "fitness_val_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                flag = "--" + name.replace("_", "-")
                raise LayerswarmError(f"{name}={getattr(self, name)} is outside (0, 1]: pass {flag} F, e.g. 0.5")
        if self.early_stop is not None and self.early_stop < 0:
            raise LayerswarmError(f"early_stop={self.early_stop} is negative: pass a margin such as 0.05")
        for name in ("cache_mb", "pause_mb"):
            if getattr(self, name) < 0:
                raise LayerswarmError(f"{name}={getattr(self, name)} is negative: pass 0 to disable, or a size in MB")

    @property
    def approximate(self) -> bool:
        """True when any switch that can change fitnesses is on."""
        return (
            self.fidelity != "full"
            or self.early_stop is not None
            or self.fitness_train_fraction < 1.0
            or self.fitness_val_fraction < 1.0
        )

    @property
    def validates_every_epoch(self) -> bool:
        """Early stopping reads each epoch's accuracy. Halving does not need the curve: every
        promoted mask's low-rung fitness is already remembered under its own budget."""
        return self.val_curve or self.early_stop is not None

    @classmethod
    def exact(cls) -> SpeedConfig:
        return cls()

    @classmethod
    def off(cls) -> SpeedConfig:
        """No speed-up at all: plain training for every evaluation."""
        return cls(memo=False, prefix_cache=False, val_curve=True)
