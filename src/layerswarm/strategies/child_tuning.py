"""Child-Tuning (Xu et al. 2021): update only a child network of the pretrained weights.

``child-f``: each step a fresh Bernoulli(p_F) mask on the gradients, scaled by 1/p_F.
``child-d``: a fixed child network, the top p_D fraction of pretrained parameters by Fisher
information (mean squared gradient over the training split), the other gradients zeroed.
The new head is always trained in full (it has no pretrained weights to protect).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config_utils import help_field
from ..data.imageset import ImageSet
from ..errors import LayerswarmError
from ..training import BatchTransform, TrainHooks
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .groups import pretrained_named_params, set_trainable
from .registry import register_strategy


def _check_fraction(name: str, value: float, option: str) -> None:
    if not 0 < value <= 1:
        raise LayerswarmError(f"{name}: {value} must be in (0, 1]: e.g. --option {option}=0.3")


class ChildUpdateMask(TrainHooks):
    """Keep the weights outside the child network still. Masking the gradient is not enough:
    weight decay and momentum would still move them, so the step's update is masked too (those
    entries are put back to their value before the step, bit for bit)."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        self.keep: list[torch.Tensor] = []
        self.before: list[torch.Tensor] = []

    def step_masks(self) -> list[torch.Tensor]:
        """This step's boolean masks, one per parameter: True where the weight may change."""
        raise NotImplementedError

    def after_backward(self, model: nn.Module) -> None:
        self.keep = self.step_masks()
        self.before = [p.detach().clone() for p in self.params]
        for prm, keep in zip(self.params, self.keep, strict=True):
            if prm.grad is not None:
                prm.grad.mul_(self.grad_scale(keep))

    def grad_scale(self, keep: torch.Tensor) -> torch.Tensor:
        return keep.to(torch.float32)

    def after_step(self, model: nn.Module) -> None:
        with torch.no_grad():
            for prm, keep, old in zip(self.params, self.keep, self.before, strict=True):
                prm.copy_(torch.where(keep, prm, old))
        self.before = []


class BernoulliGradMask(ChildUpdateMask):
    """Child-Tuning-F: multiply each gradient by Bernoulli(p)/p, drawn fresh every step.

    The draws come from ``generator`` re-seeded at every epoch from (``seed``, epoch): a fine-tune
    resumed at an epoch boundary draws what the uninterrupted one drew."""

    def __init__(self, params: list[nn.Parameter], p: float, generator: torch.Generator, seed: int) -> None:
        super().__init__(params)
        self.p, self.generator, self.seed = p, generator, seed

    def on_epoch_start(self, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.generator.manual_seed(self.seed + 1_000_003 * epoch)

    def step_masks(self) -> list[torch.Tensor]:
        return [torch.rand(prm.shape, generator=self.generator, device=prm.device) < self.p for prm in self.params]

    def grad_scale(self, keep: torch.Tensor) -> torch.Tensor:
        return keep.to(torch.float32) / self.p


class FixedGradMask(ChildUpdateMask):
    """Child-Tuning-D: only the entries of a fixed 0/1 mask per parameter change."""

    def __init__(self, params: list[nn.Parameter], masks: list[torch.Tensor]) -> None:
        super().__init__(params)
        self.masks = [m.bool() for m in masks]

    def step_masks(self) -> list[torch.Tensor]:
        return self.masks


@dataclass
class ChildFConfig(StrategyConfig):
    p_f: float = help_field(0.3, "probability that a gradient entry is kept at each step")


@register_strategy
class ChildTuningF(Strategy):
    """Child-Tuning-F: each step, a random Bernoulli(p_F) subset of pretrained weights is updated."""

    name = "child-f"
    primary_option = "p_f"
    Config = ChildFConfig

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        named = _all_trainable(ctx, "child-f.p_f", self.config.p_f)
        device = ctx.bundle.device
        gen = torch.Generator(device=device.type if device.type != "mps" else "cpu")
        return _child_plan(ctx, BernoulliGradMask([p for _, p in named], self.config.p_f, gen, ctx.seed + 7919))


def _all_trainable(ctx: StrategyContext, option: str, fraction: float) -> list[tuple[str, nn.Parameter]]:
    """Check the child's ``fraction``; every unit of the model trains (the child is chosen per
    entry): return its pretrained parameters."""
    _check_fraction(option.replace(".", " "), fraction, option)
    set_trainable(ctx.bundle.model)
    return pretrained_named_params(ctx.bundle.model, ctx.bundle)


def _child_plan(ctx: StrategyContext, hooks: ChildUpdateMask, **info) -> TrainPlan:
    return TrainPlan(
        frozen=[],
        hooks=hooks,
        param_groups=[{"params": list(ctx.bundle.model.parameters())}],
        mask=[1] * len(ctx.bundle.units),
        info=info,
    )


def fisher_information(
    model: nn.Module,
    named: list[tuple[str, nn.Parameter]],
    data: ImageSet,
    transform: BatchTransform,
    batch_size: int,
    max_images: int | None = None,
) -> list[torch.Tensor]:
    """Mean squared (batch) gradient of the loss per parameter entry, over ``data``.

    The model runs in eval mode so that BatchNorm statistics and dropout leave the starting
    weights exactly as they were.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = [torch.zeros_like(p) for _, p in named]
    n = len(data) if max_images is None else min(len(data), max_images)
    batches = 0
    for start in range(0, n, batch_size):
        x = transform(data.inputs[start : min(start + batch_size, n)].to(device), train=False)
        y = data.labels[start : min(start + batch_size, n)].to(device)
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        for s, (_, p) in zip(sums, named, strict=True):
            if p.grad is not None:
                s.add_(p.grad.detach() ** 2)
        batches += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return [s / max(batches, 1) for s in sums]


def top_fraction_masks(scores: list[torch.Tensor], fraction: float) -> list[torch.Tensor]:
    """0/1 masks keeping the top ``fraction`` of all entries (one global threshold)."""
    flat = torch.cat([s.flatten() for s in scores])
    k = max(1, int(round(fraction * flat.numel())))
    threshold = torch.topk(flat, k, sorted=True).values[-1]
    return [(s >= threshold).to(s.dtype) for s in scores]


@dataclass
class ChildDConfig(StrategyConfig):
    p_d: float = help_field(0.3, "fraction of pretrained weights in the child network (top Fisher information)")
    fisher_images: int | None = help_field(None, "cap on training images used to estimate the Fisher information")


@register_strategy
class ChildTuningD(Strategy):
    """Child-Tuning-D: only the top-p_D pretrained weights by Fisher information are updated."""

    name = "child-d"
    primary_option = "p_d"
    Config = ChildDConfig

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        named = _all_trainable(ctx, "child-d.p_d", self.config.p_d)
        fisher = fisher_information(
            ctx.bundle.model,
            named,
            ctx.data.train,
            ctx.bundle.transform,
            ctx.train_cfg.optim.batch_size,
            self.config.fisher_images,
        )
        masks = top_fraction_masks(fisher, self.config.p_d)
        kept = sum(int(m.sum().item()) for m in masks) / max(sum(m.numel() for m in masks), 1)
        return _child_plan(ctx, FixedGradMask([p for _, p in named], masks), child_fraction=kept)
