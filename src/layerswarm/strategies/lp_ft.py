"""LP-FT: fit the new head on the frozen features first (linear probing), then fine-tune everything.

Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution"
(ICLR 2022). A random head's early gradients pull the pretrained features towards whatever
that head happens to need; starting fine-tuning from a head already fitted on the frozen
features leaves them less distorted. The LP step here is theirs: a logistic regression on the
frozen features, its L2 strength chosen on the validation split
(:mod:`layerswarm.training.linear_head`); the FT step is full fine-tuning under the run's recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config_utils import help_field
from ..errors import LayerswarmError
from ..training.linear_head import L2_GRID, fit_linear_head
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .registry import register_strategy


@dataclass
class LPFTConfig(StrategyConfig):
    l2_grid: list[float] = help_field(
        None,
        default_factory=lambda: list(L2_GRID),
        help="L2 strengths tried for the fitted head; the one with the "
        "best validation accuracy on frozen features is kept",
    )

    def __post_init__(self) -> None:
        if not self.l2_grid or any(not isinstance(v, (int, float)) or v < 0 for v in self.l2_grid):
            raise LayerswarmError(
                f"lp-ft.l2_grid={self.l2_grid!r}: give one or more L2 strengths >= 0, "
                "e.g. --option lp-ft.l2_grid=[0.001]"
            )


@register_strategy
class LPFT(Strategy):
    """LP-FT (Kumar et al. 2022): the head fitted on frozen features, then every unit fine-tuned."""

    name = "lp-ft"
    Config = LPFTConfig

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        bundle = ctx.bundle
        head = fit_linear_head(
            bundle.model,
            bundle.info.head,
            ctx.data.train,
            ctx.data.val,
            bundle.transform,
            ctx.train_cfg.evaluation.eval_batch_size,
            tuple(self.config.l2_grid),
        )
        head.load_into(bundle.model)
        plan = self.plan_mask(bundle.model, ctx, [1] * len(bundle.units))
        plan.info.update(head.info())
        return plan
