"""Auto-RGN: every tensor's learning rate scaled by its relative gradient norm, step by step.

Lee et al., "Surgical Fine-Tuning Improves Adaptation to Distribution Shifts" (ICLR 2023),
section 5: instead of choosing which layers to tune by hand, give each parameter tensor the rate
``lr x RGN / max RGN`` at every step, where ``RGN = ||grad|| / ||weight||`` is its relative
gradient norm. Tensors whose gradients are large next to their weights (typically the ones the
new task needs to move) learn at close to the full rate; the rest barely move. No search: the
rates are found during the one fine-tune.
"""

from __future__ import annotations

import torch
from torch import nn

from ..training import TrainHooks
from .base import Strategy, StrategyContext, TrainPlan
from .groups import set_trainable
from .registry import register_strategy


class AutoRGNHooks(TrainHooks):
    """Between ``backward`` and the optimizer step, scale each group's rate (one tensor a group)
    by its RGN over the largest; the schedule sets the rates afresh at every step, so the
    scaling never compounds. A tensor with a zero norm (a bias still at zero) keeps the full
    rate: its relative gradient is unbounded."""

    def __init__(self) -> None:
        self.optimizer: torch.optim.Optimizer | None = None
        self.last_ratios: list[float] = []  # the scaling of the last step, group by group

    def on_epoch_start(self, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    @torch.no_grad()
    def after_backward(self, model: nn.Module) -> None:
        assert self.optimizer is not None, "on_epoch_start gives the optimizer before the first step"
        rgns: list[float | None] = []
        for group in self.optimizer.param_groups:
            grads = [p.grad for p in group["params"] if p.grad is not None]
            if not grads:
                rgns.append(0.0)
                continue
            g = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in grads]))
            w = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p) for p in group["params"]]))
            rgns.append(None if w.item() == 0 else (g / w).item())
        finite = [r for r in rgns if r is not None]
        top = max(finite, default=0.0)
        self.last_ratios = [1.0 if r is None else (r / top if top > 0 else 0.0) for r in rgns]
        for group, ratio in zip(self.optimizer.param_groups, self.last_ratios, strict=True):
            group["lr"] *= ratio


@register_strategy
class AutoRGN(Strategy):
    """Auto-RGN (Lee et al. 2023): every tensor trained, at lr x its relative gradient norm over the largest."""

    name = "auto-rgn"

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        model = ctx.bundle.model
        set_trainable(model)
        groups = [{"params": [p]} for p in model.parameters()]  # one tensor a group: its own rate
        return TrainPlan(frozen=[], param_groups=groups, hooks=AutoRGNHooks(), mask=[1] * len(ctx.bundle.units))
