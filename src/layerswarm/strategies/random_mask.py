"""The paper's random baseline: each unit fine-tuned when a U(0,1) draw is >= 0.5."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config_utils import help_field
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .registry import register_strategy


@dataclass
class RandomMaskConfig(StrategyConfig):
    threshold: float = help_field(0.5, "a unit is fine-tuned when its U(0,1) draw is >= threshold")
    seed: int | None = help_field(None, "seed of the draws (default: the run's seed, so each repeat draws anew)")


def random_mask(num_units: int, seed: int, threshold: float = 0.5) -> list[int]:
    draws = np.random.default_rng(seed).random(num_units)
    return [int(d >= threshold) for d in draws]


@register_strategy
class RandomMask(Strategy):
    """Random layer mask (the paper's baseline): unit j fine-tuned iff U(0,1) >= 0.5."""

    name = "random-mask"
    Config = RandomMaskConfig

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        seed = ctx.seed if self.config.seed is None else self.config.seed
        mask = random_mask(len(ctx.bundle.units), seed, self.config.threshold)
        plan = self.plan_mask(ctx.bundle.model, ctx, mask)
        plan.info["mask_seed"] = seed
        return plan
