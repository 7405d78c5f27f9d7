"""Discriminative (layer-wise) learning rates: the head at --lr, each unit below it smaller."""

from __future__ import annotations

from dataclasses import dataclass

from ..config_utils import help_field
from ..errors import LayerswarmError
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .groups import default_head_lr, head_params, set_trainable, unit_params
from .registry import register_strategy


@dataclass
class DiscriminativeConfig(StrategyConfig):
    decay: float = help_field(0.8, "lr factor per unit from the head down: unit j (of L) gets lr x decay^(L-j)")
    head_lr: float | None = help_field(None, "learning rate of the head (default: the run's --lr x --head-lr-mult)")


def unit_lrs(head_lr: float, num_units: int, decay: float) -> list[float]:
    """Learning rate of each unit, input side first: the top unit gets head_lr x decay."""
    return [head_lr * decay ** (num_units - j) for j in range(num_units)]


@register_strategy
class Discriminative(Strategy):
    """Every unit trained, with learning rates shrinking by a factor per unit from head to input."""

    name = "discriminative"
    primary_option = "decay"
    Config = DiscriminativeConfig

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        if not 0 < self.config.decay <= 1:
            raise LayerswarmError(
                f"discriminative: decay={self.config.decay} must be in (0, 1]: e.g. --option discriminative.decay=0.8"
            )
        model = ctx.bundle.model
        set_trainable(model)
        head_lr = default_head_lr(ctx.train_cfg, self.config.head_lr)
        lrs = unit_lrs(head_lr, len(ctx.bundle.units), self.config.decay)
        groups = [{"params": head_params(model, ctx.bundle), "lr": head_lr}]
        groups += [{"params": ps, "lr": lr} for ps, lr in zip(unit_params(model, ctx.bundle), lrs, strict=True)]
        return TrainPlan(frozen=[], param_groups=groups, mask=[1] * len(lrs), info={"unit_lrs": lrs})
