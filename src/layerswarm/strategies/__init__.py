"""Fine-tuning strategies, one module each, behind one registry."""

from . import (  # noqa: F401  (each module registers its strategies)
    auto_rgn,
    blocks,
    child_tuning,
    discriminative,
    gradual,
    l2sp,
    lp_ft,
    pso,
    random_mask,
    scratch,
    simple,
)
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .registry import STRATEGIES, create_strategy, register_strategy

__all__ = [
    "STRATEGIES",
    "Strategy",
    "StrategyConfig",
    "StrategyContext",
    "TrainPlan",
    "create_strategy",
    "register_strategy",
]
