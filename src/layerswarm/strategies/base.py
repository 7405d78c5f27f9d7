"""A fine-tuning strategy decides what trains and how: which units are frozen, the parameter
groups and learning rates, and any hooks into the loop (penalties, gradient masks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn

from ..config_utils import JsonConfig
from ..data.imageset import SearchSplits
from ..models.bundle import ModelBundle
from ..training import TrainConfig, TrainHooks
from ..training.trainer import trainable_param_groups
from ..units import apply_mask


@dataclass
class StrategyConfig(JsonConfig):
    """Base of every strategy's options (none by default)."""


@dataclass
class TrainPlan:
    """What :func:`layerswarm.training.fit` needs beyond the data and the config."""

    frozen: list[str]
    param_groups: list[dict] | None = None
    hooks: TrainHooks | None = None
    mask: list[int] | None = None  # the unit mask, when the strategy has one (for reports)
    model: nn.Module | None = None  # replaces the bundle's model (a probe wrapping it); None: train the bundle's
    head: list[str] | None = None  # module paths of the new head in ``model``; None: the bundle's
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class StrategyContext:
    """What a strategy may look at while setting up: never the test split."""

    bundle: ModelBundle
    data: SearchSplits
    train_cfg: TrainConfig
    seed: int = 0
    out_dir: str | None = None


class Strategy:
    """Base class. Subclasses set ``name``, ``Config`` and override :meth:`plan`."""

    name: ClassVar[str] = "base"
    Config: ClassVar[type[StrategyConfig]] = StrategyConfig
    weights: ClassVar[str | None] = None  # force "none" for training from scratch
    # the option a baseline spec NAME:VALUE sets (--baselines last-k:4,discriminative:0.65)
    primary_option: ClassVar[str | None] = None
    config: Any  # an instance of the subclass's own ``Config``

    def __init__(self, config: StrategyConfig | dict | None = None) -> None:
        if isinstance(config, dict):
            config = self.Config.from_dict(config, owner=f"strategy '{self.name}'")
        self.config = config or self.Config()

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        """Prepare ``ctx.bundle.model`` (already reset to its starting weights)."""
        return self.plan_mask(ctx.bundle.model, ctx, [1] * len(ctx.bundle.units))

    @staticmethod
    def plan_mask(model: nn.Module, ctx: StrategyContext, mask: list[int]) -> TrainPlan:
        frozen = apply_mask(model, ctx.bundle.units, mask)
        return TrainPlan(frozen=frozen, param_groups=trainable_param_groups(model), mask=list(mask))
