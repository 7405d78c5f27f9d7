"""The one training loop: every fitness evaluation and every final fine-tune runs here."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..data.imageset import ImageSet
from ..errors import LayerswarmError
from ..units.mask import train_mode
from .augment import BatchTransform
from .config import TrainConfig
from .hooks import TrainHooks


class NonFiniteLossError(RuntimeError):
    """Training diverged (NaN or inf loss)."""


@dataclass
class History:
    """Per-epoch metrics of one training run."""

    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_seen: int = 0

    @property
    def final_val_accuracy(self) -> float:
        return self.epochs[-1]["val_accuracy"] if self.epochs else float("nan")

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "seconds": self.seconds, "images_seen": self.images_seen}


def resolve_device(name: str) -> torch.device:
    """``torch.device`` for ``name``, or a one-line error if it is not available here."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise LayerswarmError(f"unknown device '{name}': use cpu, cuda, cuda:N or mps") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LayerswarmError(f"device '{name}' is not available (no CUDA GPU found): use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LayerswarmError(
                f"device '{name}' is not available ({torch.cuda.device_count()} GPUs): use cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise LayerswarmError(f"device '{name}' is not available (no MPS): use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise LayerswarmError(f"unsupported device '{name}': use cpu, cuda, cuda:N or mps")
    return device


def make_optimizer(params: Iterable, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise LayerswarmError(f"unknown optimizer '{cfg.optimizer}': use sgd or adamw")


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1))
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    raise LayerswarmError(f"unknown schedule '{cfg.schedule}': use step, cosine or constant")


def trainable_param_groups(model: nn.Module) -> list[dict]:
    """One group with every parameter that requires grad: frozen ones never reach the optimizer."""
    return [{"params": [p for p in model.parameters() if p.requires_grad]}]


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSet, transform: BatchTransform, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``data`` (eval mode; restores the previous mode)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(data), batch_size):
        images = data.images[start : start + batch_size].to(device, non_blocking=True)
        labels = data.labels[start : start + batch_size].to(device, non_blocking=True)
        logits = model(transform(images, train=False))
        correct += (logits.argmax(1) == labels).sum().item()
    model.train(was_training)
    return correct / max(len(data), 1)


def fit(
    model: nn.Module,
    train: ImageSet,
    val: ImageSet,
    cfg: TrainConfig,
    transform: BatchTransform,
    frozen: list[str] | None = None,
    param_groups: list[dict] | None = None,
    test: ImageSet | None = None,
    hooks: TrainHooks | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> History:
    """Train ``model`` in place for ``cfg.epochs`` epochs and return per-epoch metrics.

    Only parameters with ``requires_grad`` are optimised (``param_groups`` may set per-group
    learning rates); modules in ``frozen`` stay in eval mode. ``test`` is evaluated only
    when given, which the search never does.
    """
    frozen = list(frozen or [])
    hooks = hooks or TrainHooks()
    device = next(model.parameters()).device
    groups = param_groups if param_groups is not None else trainable_param_groups(model)
    optimizer = make_optimizer(groups, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    generator = torch.Generator(device=device.type if device.type != "mps" else "cpu").manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # dropout / drop-path draws
    train = train.to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda")
    memory_format = torch.channels_last if cfg.channels_last and device.type == "cuda" else torch.contiguous_format
    if memory_format is torch.channels_last:
        model.to(memory_format=memory_format)

    history = History()
    best_acc, best_state = -math.inf, None
    start = time.perf_counter()
    n = len(train)
    for epoch in range(cfg.epochs):
        hooks.on_epoch_start(epoch, model, optimizer)
        train_mode(model, frozen + hooks.frozen_modules())
        order = torch.randperm(n, generator=generator, device=device)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            if len(idx) < 2 and n >= 2:
                continue  # a batch of one breaks BatchNorm in training mode
            x = transform(train.images[idx], train=True, generator=generator).contiguous(memory_format=memory_format)
            y = train.labels[idx]
            with autocast:
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
            penalty = hooks.penalty(model)
            total = loss if penalty is None else loss + penalty
            if not torch.isfinite(total):
                raise NonFiniteLossError(f"non-finite loss {total.item()} at epoch {epoch + 1}")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            hooks.after_backward(model)
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(idx)
        scheduler.step()
        record = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
            "val_accuracy": evaluate(model, val, transform, cfg.eval_batch_size),
        }
        if test is not None and ((epoch + 1) % cfg.test_every == 0 or epoch + 1 == cfg.epochs):
            record["test_accuracy"] = evaluate(model, test, transform, cfg.eval_batch_size)
        record["seconds"] = time.perf_counter() - start
        history.epochs.append(record)
        history.images_seen += seen
        if cfg.keep_best and record["val_accuracy"] > best_acc:
            best_acc, best_state = record["val_accuracy"], copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch(record)
    if cfg.keep_best and best_state is not None:
        model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - start
    return history
