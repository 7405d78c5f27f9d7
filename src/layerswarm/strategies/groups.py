"""Helpers shared by strategies: which parameters are the head and which belong to each unit."""

from __future__ import annotations

from torch import nn

from ..models.bundle import ModelBundle
from ..training import TrainConfig


def head_param_names(bundle: ModelBundle) -> list[str]:
    """Names of the new classifier's parameters (always trained, never a unit)."""
    prefixes = tuple(f"{h}." for h in bundle.info.head)
    return [n for n, _ in bundle.model.named_parameters() if n.startswith(prefixes)]


def unit_params(model: nn.Module, bundle: ModelBundle) -> list[list[nn.Parameter]]:
    """The parameters of each unit, input side first."""
    params = dict(model.named_parameters())
    return [[params[n] for n in unit.params] for unit in bundle.units]


def head_params(model: nn.Module, bundle: ModelBundle) -> list[nn.Parameter]:
    params = dict(model.named_parameters())
    return [params[n] for n in head_param_names(bundle)]


def pretrained_named_params(model: nn.Module, bundle: ModelBundle) -> list[tuple[str, nn.Parameter]]:
    """Every parameter outside the new head, in model order (what came from the source task)."""
    head = set(head_param_names(bundle))
    return [(n, p) for n, p in model.named_parameters() if n not in head]


def default_head_lr(train_cfg: TrainConfig, head_lr: float | None) -> float:
    """The head's rate: ``head_lr`` where the strategy's options give it, else the recipe's rate for
    a new head in every strategy (``lr x head_lr_mult``: the paper's lr; 20x under ``bert``)."""
    return train_cfg.optim.lr * train_cfg.optim.head_lr_mult if head_lr is None else head_lr


def set_trainable(model: nn.Module, trainable: bool = True) -> None:
    for p in model.parameters():
        p.requires_grad_(trainable)
