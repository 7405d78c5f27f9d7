"""A contiguous block of units trained: the last k (next to the head) or the first k."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..config_utils import help_field
from ..errors import LayerswarmError
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .registry import register_strategy


@dataclass
class BlockConfig(StrategyConfig):
    k: int = help_field(1, "number of units trained (0 = linear probe, all = full fine-tuning)")


def block_mask(num_units: int, k: int, last: bool) -> list[int]:
    """``k`` ones at the top (``last``) or at the input end of a ``num_units`` mask."""
    if not 0 <= k <= num_units:
        raise LayerswarmError(
            f"k={k} is outside 0..{num_units} for a model of {num_units} units: pass --option "
            f"{'last' if last else 'first'}-k.k=N"
        )
    ones, zeros = [1] * k, [0] * (num_units - k)
    return zeros + ones if last else ones + zeros


class _Block(Strategy):
    """A contiguous block of ``k`` units trained, at the top (``last``) or the input end."""

    Config = BlockConfig
    last: ClassVar[bool] = True

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        return self.plan_mask(ctx.bundle.model, ctx, block_mask(len(ctx.bundle.units), self.config.k, last=self.last))


@register_strategy
class LastK(_Block):
    """Fine-tune the last k units (next to the head), freeze the rest."""

    name = "last-k"
    primary_option = "k"


@register_strategy
class FirstK(_Block):
    """Fine-tune the first k units (input side), freeze the rest; the head always trains."""

    name = "first-k"
    primary_option = "k"
    last = False
