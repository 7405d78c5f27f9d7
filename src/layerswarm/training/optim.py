"""What the recipe decides besides the loop: optimizer, per-step schedule, parameter groups, and
the BatchNorm re-estimation of frozen units."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn

from ..errors import LayerswarmError
from .config import OPTIMIZERS, SCHEDULES, TrainConfig


def make_optimizer(params: Iterable, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optim.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.optim.lr, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay
        )
    if cfg.optim.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    raise LayerswarmError(f"unknown optimizer '{cfg.optim.optimizer}': use {' or '.join(OPTIMIZERS)}")


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``n`` images (:meth:`ImageBatches.train_epoch` drops a last batch of one)."""
    steps = math.ceil(n / batch_size)
    return steps - 1 if n >= 2 and n % batch_size == 1 else max(steps, 1)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, step_count: int):
    """A per-step schedule: linear warm-up over ``warmup_epochs``, then step decay (by epoch),
    cosine (over the run's steps) or constant. Per step, so that a warm-up of one epoch of eight
    steps is eight increments, not one."""
    if cfg.optim.schedule not in SCHEDULES:
        raise LayerswarmError(f"unknown schedule '{cfg.optim.schedule}': use {', '.join(SCHEDULES)}")
    total, warmup = max(cfg.epochs * step_count, 1), cfg.optim.warmup_epochs * step_count

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        if cfg.optim.schedule == "step":
            return warm * cfg.optim.gamma ** ((step // step_count) // cfg.optim.step_size)
        if cfg.optim.schedule == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        return warm

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def trainable_param_groups(model: nn.Module) -> list[dict]:
    """One group with every parameter that requires grad: frozen ones never reach the optimizer."""
    return [{"params": [p for p in model.parameters() if p.requires_grad]}]


def plan_param_groups(model: nn.Module, units: Sequence, multipliers: Sequence[float], lr: float) -> list[dict]:
    """The optimizer groups of a learning-rate plan: the parameters of each unit whose multiplier
    m is neither 0 nor 1 in a group at ``lr x m`` (one group per multiplier, rising;
    ``lr_multiplier`` records m), every other trainable parameter (units at m = 1, the new head,
    loose parameters) in the first group, without an lr of its own, so that the recipe gives the
    head its rate (:func:`recipe_param_groups`). A frozen unit (m = 0) is no group's:
    :func:`~layerswarm.units.apply_mask` has turned its gradients off. With multipliers of 0 and
    1 only (a mask), this is :func:`trainable_param_groups`."""
    params = dict(model.named_parameters())
    scaled: dict[float, list] = {}
    for unit, m in zip(units, multipliers, strict=True):
        if m not in (0, 1):
            scaled.setdefault(float(m), []).extend(params[name] for name in unit.params)
    taken = {id(p) for ps in scaled.values() for p in ps}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
    own = [{"params": ps, "lr": lr * m, "lr_multiplier": m} for m, ps in sorted(scaled.items())]
    return [{"params": rest}, *own]


def recipe_param_groups(groups: list[dict], model: nn.Module, head: Iterable[str], cfg: TrainConfig) -> list[dict]:
    """``groups`` split the way the recipe asks: the new head's parameters at ``lr x head_lr_mult``
    (groups that set their own lr, as discriminative rates do, keep it), and normalisation weights
    and biases (every 1-d parameter, timm's rule) without weight decay unless ``decay_norm_bias``."""
    head_ids = {id(p) for name in head for p in model.get_submodule(name).parameters()} if head else set()
    out = []
    for group in groups:
        own_lr = "lr" in group
        parts: dict[tuple[bool, bool], list] = {}
        for p in group["params"]:
            is_head = not own_lr and id(p) in head_ids and cfg.optim.head_lr_mult != 1.0
            no_decay = not cfg.optim.decay_norm_bias and p.ndim <= 1
            parts.setdefault((is_head, no_decay), []).append(p)
        for (is_head, no_decay), params in parts.items():
            extra = {"lr": cfg.optim.lr * cfg.optim.head_lr_mult} if is_head else {}
            out.append({**group, "params": params, **extra, **({"weight_decay": 0.0} if no_decay else {})})
    return out


def recalibrate_frozen_bn(model: nn.Module, frozen: list[str], batches: Iterator[torch.Tensor]) -> int:
    """Re-estimate the running statistics of frozen BatchNorm layers that sit behind a trained
    parameter (their inputs changed; the ones before it see what they always saw): one no-grad
    pass over ``batches`` in train mode with a cumulative average. Returns how many were reset.
    Their weights, and every frozen parameter, stay as they are."""
    frozen_mods = {id(m) for name in frozen for m in model.get_submodule(name).modules()}
    seen_trained, targets = False, []
    for module in model.modules():
        if any(p.requires_grad for p in module.parameters(recurse=False)):
            seen_trained = True
        elif seen_trained and id(module) in frozen_mods and isinstance(module, nn.modules.batchnorm._BatchNorm):
            targets.append(module)
    if targets:
        reestimate_bn(model, targets, batches)
    return len(targets)


def reestimate_bn(model: nn.Module, targets: list[nn.Module], batches: Iterator[torch.Tensor]) -> None:
    """Reset the running statistics of the BatchNorm layers ``targets`` and re-estimate them in one
    no-grad pass over ``batches`` (the rest of ``model`` in eval mode), as a cumulative average;
    every module's mode and momentum are restored afterwards."""
    modes = {id(m): m.training for m in model.modules()}
    momenta = [m.momentum for m in targets]
    model.eval()
    for m in targets:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
        m.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    for m, momentum in zip(targets, momenta, strict=True):
        m.momentum = momentum
    for m in model.modules():
        m.train(modes[id(m)])
