"""Hooks through which strategies change training without copying the loop."""

from __future__ import annotations

import torch
from torch import nn


class TrainHooks:
    """No-op base. Strategies (gradual unfreezing, L2-SP, Child-Tuning) override what they need."""

    def on_epoch_start(self, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Called before each epoch (0-based)."""

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """An extra term added to the loss (e.g. L2-SP), or None."""
        return None

    def after_backward(self, model: nn.Module) -> None:
        """Called between ``backward()`` and ``optimizer.step()`` (e.g. gradient masks)."""

    def after_step(self, model: nn.Module) -> None:
        """Called after ``optimizer.step()`` (e.g. undo the update of weights a mask keeps still)."""

    def frozen_modules(self) -> list[str]:
        """Module paths to keep in eval mode this epoch (strategies that freeze over time)."""
        return []
