"""Strategies that are a fixed unit mask: full fine-tuning, linear probe, a given mask file."""

from __future__ import annotations

from dataclasses import dataclass

from ..config_utils import help_field
from ..units import load_mask, validate_mask
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .registry import register_strategy


@register_strategy
class FullFineTuning(Strategy):
    """Standard fine-tuning: every unit trained."""

    name = "full"


@register_strategy
class LinearProbe(Strategy):
    """Feature extraction: the backbone frozen, only the new head trained."""

    name = "linear"

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        return self.plan_mask(ctx.bundle.model, ctx, [0] * len(ctx.bundle.units))


@dataclass
class MaskConfig(StrategyConfig):
    mask_file: str | None = help_field(None, "a best_mask.json (or JSON list of 0/1 per unit)")
    mask: list[int] | None = help_field(None, "the mask itself, one 0/1 per unit")


@register_strategy
class GivenMask(Strategy):
    """Fine-tune the units a mask marks 1 (e.g. a search's best_mask.json), freeze the rest."""

    name = "mask"
    Config = MaskConfig

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        units = ctx.bundle.units
        if self.config.mask is not None:
            mask = validate_mask(self.config.mask, len(units))
        elif self.config.mask_file is not None:
            mask = load_mask(self.config.mask_file, units)
        else:
            from ..errors import LayerswarmError

            raise LayerswarmError("strategy 'mask' needs a mask: pass --mask FILE")
        return self.plan_mask(ctx.bundle.model, ctx, mask)
