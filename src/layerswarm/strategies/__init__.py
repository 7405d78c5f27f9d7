"""Fine-tuning strategies, one module each, behind one registry."""

from . import simple  # noqa: F401  (registers full, linear, mask)
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .registry import STRATEGIES, create_strategy, register_strategy

__all__ = [
    "STRATEGIES", "Strategy", "StrategyConfig", "StrategyContext", "TrainPlan",
    "create_strategy", "register_strategy",
]
