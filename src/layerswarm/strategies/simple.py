"""Strategies that are a fixed unit mask: full fine-tuning, linear probe, a given mask file."""

from __future__ import annotations

from dataclasses import dataclass

from ..config_utils import help_field
from ..errors import LayerswarmError
from ..models.probe import build_probe
from ..training.optim import plan_param_groups
from ..training.trainer import trainable_param_groups
from ..units import load_lr_multipliers, load_mask, validate_lr_multipliers, validate_mask
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .registry import register_strategy


@register_strategy
class FullFineTuning(Strategy):
    """Standard fine-tuning: every unit trained."""

    name = "full"


@dataclass
class LinearConfig(StrategyConfig):
    unit: int | None = help_field(
        None,
        "take the features from the output of this unit (0-based; negative counts "
        "from the end, see 'layerswarm layers') instead of the final pooled features",
    )

    def __post_init__(self) -> None:
        if self.unit is not None and (isinstance(self.unit, bool) or not isinstance(self.unit, int)):
            raise LayerswarmError(f"linear.unit={self.unit!r} is not a unit index: pass an integer, e.g. unit=11")


@register_strategy
class LinearProbe(Strategy):
    """Feature extraction: the backbone frozen, only a new head trained (option unit: probe an intermediate unit).

    By default the model's own new classifier on its final features; with ``unit`` a new
    linear head on the pooled output of that unit (the layers after it never run).
    """

    name = "linear"
    Config = LinearConfig

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        model, units = ctx.bundle.model, ctx.bundle.units
        plan = self.plan_mask(model, ctx, [0] * len(units))
        k = self.config.unit
        if k is None:
            return plan
        if ctx.bundle.info.is_text:  # a layer's output is a sequence with a mask, not a feature map to pool
            raise LayerswarmError(
                "linear.unit is for image models: a text model's linear probe reads the "
                "pooled last layer (leave linear.unit unset)"
            )
        if not -len(units) <= k < len(units):
            raise LayerswarmError(
                f"linear.unit={k} is not a unit of this model ({len(units)} units): "
                f"pass 0..{len(units) - 1} or a negative index (see 'layerswarm layers')"
            )
        unit = units[k]
        if not unit.modules:
            raise LayerswarmError(
                f"unit {k} ({unit.name}) holds loose parameters, no module whose output a probe "
                "could read: pick another unit"
            )
        model.requires_grad_(False)  # the model's own head is never reached: nothing of it trains
        example = ctx.bundle.transform(ctx.data.val.inputs[:2].to(ctx.bundle.device), train=False)
        probe = build_probe(model, unit.modules[-1], ctx.data.num_classes, example, seed=ctx.seed)
        return TrainPlan(
            frozen=["backbone"],
            param_groups=trainable_param_groups(probe),
            mask=plan.mask,
            model=probe,
            head=["head"],
            info={"features_from": unit.name},
        )


@dataclass
class MaskConfig(StrategyConfig):
    mask_file: str | None = help_field(None, "a best_mask.json (or JSON list of 0/1 per unit)")
    mask: list[int] | None = help_field(None, "the mask itself, one 0/1 per unit")
    lr_multipliers: list[float] | None = help_field(
        None,
        "one learning-rate multiplier per unit (0: frozen), as a --space lr search finds "
        "them; default: the mask file's, else 1",
    )


@register_strategy
class GivenMask(Strategy):
    """Fine-tune the units a mask marks 1 (e.g. a search's best_mask.json), freeze the rest; with
    ``lr_multipliers`` (a ``--space lr`` search's, read from its best_mask.json too) each trained
    unit at ``lr x`` its multiplier, in its own optimizer parameter group."""

    name = "mask"
    Config = MaskConfig

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        units, model = ctx.bundle.units, ctx.bundle.model
        mask, rates = self.mask_for(units), self.multipliers_for(units)
        if rates is None:
            return self.plan_mask(model, ctx, mask)
        if [int(r > 0) for r in rates] != mask:
            raise LayerswarmError(
                "strategy 'mask': lr_multipliers must be 0 exactly where the "
                "mask freezes a unit (pass one of the two, or both from the "
                "same best_mask.json)"
            )
        plan = self.plan_mask(model, ctx, mask)
        plan.param_groups = plan_param_groups(model, units, rates, ctx.train_cfg.optim.lr)
        plan.info["lr_multipliers"] = rates
        return plan

    def multipliers_for(self, units: list) -> list[float] | None:
        """The configured learning-rate multipliers (given, or the mask file's), or None: the
        mask's rate."""
        if self.config.lr_multipliers is not None:
            return validate_lr_multipliers(self.config.lr_multipliers, len(units))
        if self.config.mask is None and self.config.mask_file is not None:
            return load_lr_multipliers(self.config.mask_file, units)
        return None

    def mask_for(self, units: list) -> list[int]:
        """The configured mask (given, or read from its file), checked against ``units``."""
        if self.config.mask is not None:
            return validate_mask(self.config.mask, len(units))
        if self.config.mask_file is not None:
            return load_mask(self.config.mask_file, units)
        if self.config.lr_multipliers is not None:  # the plan alone: trained where its rate is > 0
            rates = validate_lr_multipliers(self.config.lr_multipliers, len(units))
            return [int(r > 0) for r in rates]
        raise LayerswarmError("strategy 'mask' needs a mask: pass --mask FILE")
