"""Gradual unfreezing (ULMFiT-style): the head first, then units from the top down, in stages.

Every parameter is in the optimizer from the start (head group at ``head_lr``, one group per
unit at ``head_lr * unit_lr_factor``); a unit is opened by switching ``requires_grad`` on.
While a unit is closed its gradient is ``None``, so SGD gives it no update, no weight decay
and no momentum, and its modules stay in eval mode (BatchNorm statistics kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config_utils import help_field
from ..errors import LayerswarmError
from ..training import TrainHooks
from ..units import frozen_modules
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .groups import default_head_lr, head_params, set_trainable, unit_params
from .registry import register_strategy


@dataclass
class GradualConfig(StrategyConfig):
    head_lr: float | None = help_field(None, "learning rate of the new head (default: the run's --lr x --head-lr-mult)")
    unit_lr_factor: float = help_field(0.1, "pretrained units train at head_lr x this factor")
    epochs_per_stage: int = help_field(1, "epochs between two unfreezing steps")
    units_per_stage: int | None = help_field(
        None, "units opened per stage (default: as many as needed to open all by the last epoch)"
    )


def open_units(epoch: int, num_units: int, epochs_per_stage: int, units_per_stage: int) -> list[int]:
    """0/1 per unit at ``epoch`` (0-based): stage 0 trains the head only, stage s the top s*k units."""
    stage = epoch // epochs_per_stage
    n_open = min(num_units, stage * units_per_stage)
    return [0] * (num_units - n_open) + [1] * n_open


class GradualHooks(TrainHooks):
    """Opens units at the start of each epoch and reports the closed ones as frozen."""

    def __init__(self, units, params: list[list[nn.Parameter]], schedule) -> None:
        self.units = units
        self.params = params
        self.schedule = schedule  # epoch -> 0/1 per unit
        self.mask = schedule(0)
        self.opened_at: list[int | None] = [None] * len(units)  # epoch each unit opened (for reports)

    def on_epoch_start(self, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.mask = self.schedule(epoch)
        for i, (bit, ps) in enumerate(zip(self.mask, self.params, strict=True)):
            for p in ps:
                p.requires_grad_(bool(bit))
            if bit and self.opened_at[i] is None:
                self.opened_at[i] = epoch

    def frozen_modules(self) -> list[str]:
        return frozen_modules(self.units, self.mask)


@register_strategy
class GradualUnfreezing(Strategy):
    """Gradual unfreezing: train the head, then open units from the top down, one stage per epoch."""

    name = "gradual"
    Config = GradualConfig

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        c = self.config
        model, units = ctx.bundle.model, ctx.bundle.units
        if c.epochs_per_stage < 1 or (c.units_per_stage is not None and c.units_per_stage < 1):
            raise LayerswarmError("gradual: epochs_per_stage and units_per_stage must be >= 1")
        stages_after_head = max(math.ceil(ctx.train_cfg.epochs / c.epochs_per_stage) - 1, 1)
        per_stage = c.units_per_stage or math.ceil(len(units) / stages_after_head)
        head_lr = default_head_lr(ctx.train_cfg, c.head_lr)
        set_trainable(model)
        params = unit_params(model, ctx.bundle)
        groups = [{"params": head_params(model, ctx.bundle), "lr": head_lr}]
        groups += [{"params": ps, "lr": head_lr * c.unit_lr_factor} for ps in params]
        hooks = GradualHooks(units, params, lambda e: open_units(e, len(units), c.epochs_per_stage, per_stage))
        hooks.on_epoch_start(0, model, None)  # type: ignore[arg-type]  # closed from the start
        return TrainPlan(
            frozen=[], param_groups=groups, hooks=hooks, info={"units_per_stage": per_stage, "head_lr": head_lr}
        )
