"""Training from scratch: the same architecture, randomly initialised, every unit trained."""

from __future__ import annotations

from .base import Strategy
from .registry import register_strategy


@register_strategy
class Scratch(Strategy):
    """Train from scratch: random initialisation (no pretrained weights), everything trained."""

    name = "scratch"
    weights = "none"  # the bundle is built with random weights
