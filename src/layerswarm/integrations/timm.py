"""A plan as parameter groups for timm's ``create_optimizer_v2`` (and its training script).

``create_optimizer_v2(param_groups(model, trial, weight_decay=0.05), opt="adamw", lr=1e-3)``:
the frozen units are left out; weight decay is split as timm splits it (none on biases, norms
and the model's ``no_weight_decay()``); each group carries ``lr_scale``, the plan's multiplier,
which timm's schedulers multiply into the learning rate, as for its layer-wise decay.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import LayerswarmError
from ..study import Plan

try:
    from timm.optim import param_groups_weight_decay
except ImportError as err:  # pragma: no cover - timm is a dependency; an old timm lacks this
    raise LayerswarmError("the timm integration needs timm >= 1.0: pip install -U timm") from err

__all__ = ["param_groups"]


def param_groups(
    model: nn.Module, plan: Plan, weight_decay: float = 0.0, lr: float | None = None
) -> list[dict[str, Any]]:
    """``plan`` applied to ``model``; its trained parameters in groups by multiplier and weight
    decay, each with ``lr_scale`` (and ``lr`` times it when ``lr`` is given, for training
    without a timm scheduler)."""
    groups = plan.apply(model, base_lr=lr)
    no_decay_names: set[str] = getattr(model, "no_weight_decay", lambda: set())()
    decays = {
        id(p): g["weight_decay"]
        for g in param_groups_weight_decay(model, weight_decay, no_weight_decay_list=no_decay_names)
        for p in g["params"]
    }
    out = []
    for group in groups:
        for decay in sorted({decays[id(p)] for p in group["params"]}):
            params = [p for p in group["params"] if decays[id(p)] == decay]
            out.append(
                {
                    **group,
                    "params": params,
                    "weight_decay": decay,
                    "lr_scale": group["lr_multiplier"],
                }
            )
    return out
