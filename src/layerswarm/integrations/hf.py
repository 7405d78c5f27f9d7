"""A plan in a Hugging Face ``Trainer``: a callback, and an optimizer factory for plans with
learning-rate levels.

``Trainer`` calls ``model.train()`` at every step; the plan's frozen modules stay in eval mode
all the same (their dropout off, a BatchNorm's running statistics unchanged), through the
forward pre-hooks :meth:`~layerswarm.study.Plan.apply` puts on them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import LayerswarmError
from ..study import Plan

try:
    from transformers import Trainer, TrainerCallback
except ImportError as err:  # pragma: no cover - transformers is an optional extra
    raise LayerswarmError("the Trainer integration needs transformers: pip install 'layerswarm[text]'") from err

__all__ = ["PlanCallback", "plan_optimizer"]


class PlanCallback(TrainerCallback):
    """Apply ``plan`` to the ``Trainer``'s model when the ``Trainer`` is built (before it makes
    its optimizer, which then holds only the trained parameters) and again when training
    begins: ``Trainer(model, args, ..., callbacks=[PlanCallback(trial)])``."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def on_init_end(self, args, state, control, model: nn.Module | None = None, **kwargs: Any) -> None:
        if model is not None:
            self.plan.apply(model)

    def on_train_begin(self, args, state, control, model: nn.Module | None = None, **kwargs: Any) -> None:
        if model is not None:
            self.plan.apply(model)


def plan_optimizer(
    model: nn.Module,
    plan: Plan,
    args,
    optimizer_cls: type[torch.optim.Optimizer] = torch.optim.AdamW,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """``plan`` applied to ``model`` and an optimizer over its trained parameters, each unit at
    ``args.learning_rate`` times its multiplier, weight decay as ``Trainer`` sets it
    (``args.weight_decay``, none on biases and norms): pass it as
    ``Trainer(..., optimizers=(plan_optimizer(model, trial, args), None))``; the ``Trainer``'s
    schedule then scales every group alike."""
    groups = plan.apply(model, base_lr=args.learning_rate)
    # Trainer's own rule for which parameters decay (it does not read the instance)
    decay = set(Trainer.get_decay_parameter_names(None, model))  # type: ignore[arg-type]
    name_of = {id(p): n for n, p in model.named_parameters()}
    split = []
    for group in groups:
        for decays in (True, False):
            params = [p for p in group["params"] if (name_of[id(p)] in decay) == decays]
            if params:
                split.append(
                    {
                        **group,
                        "params": params,
                        "weight_decay": args.weight_decay if decays else 0.0,
                    }
                )
    return optimizer_cls(split, lr=args.learning_rate, **kwargs)
