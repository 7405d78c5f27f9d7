"""A plan, or a schedule of plans (gradual unfreezing), as a Lightning ``BaseFinetuning`` callback.

``Trainer(callbacks=[PlanFinetuning(trial)])`` freezes the plan's frozen units before the
optimizer is made (so ``configure_optimizers`` may pass ``filter(lambda p: p.requires_grad,
...)`` or :meth:`PlanFinetuning.param_groups`); their modules stay in eval mode through
Lightning's ``train()`` calls. ``PlanFinetuning({0: plan_a, 3: plan_b})`` switches to
``plan_b`` at epoch 3: units it trains that were frozen join the optimizer as new parameter
groups (the learning rate of the optimizer's first group, divided by that group's
multiplier, times theirs); units it freezes keep their place in the optimizer but get no
gradient, so they do not move.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn
from torch.optim import Optimizer

from ..errors import LayerswarmError
from ..study import Plan

try:
    from lightning.pytorch.callbacks import BaseFinetuning
except ImportError as err:  # pragma: no cover - lightning is an optional extra
    raise LayerswarmError("the Lightning integration needs lightning: pip install 'layerswarm[lightning]'") from err

__all__ = ["PlanFinetuning"]


class PlanFinetuning(BaseFinetuning):
    """Apply ``plan`` (or, per epoch, the latest plan of a ``{first epoch: plan}`` schedule
    that starts at epoch 0) to ``pl_module`` or its submodule at ``module``, the model the
    plan's units were found on (``"net"`` for ``self.net``)."""

    def __init__(self, plan: Plan | Mapping[int, Plan], module: str = "") -> None:
        super().__init__()
        schedule = dict(plan) if isinstance(plan, Mapping) else {0: plan}
        if 0 not in schedule or any(epoch < 0 for epoch in schedule):
            raise LayerswarmError("a schedule of plans starts at epoch 0: pass {0: first_plan, epoch: plan, ...}")
        self.schedule = dict(sorted(schedule.items()))
        self.module = module
        self._applied: Plan | None = None

    def plan_at(self, epoch: int) -> Plan:
        """The plan in force during ``epoch``."""
        return [plan for start, plan in self.schedule.items() if start <= epoch][-1]

    def model(self, pl_module: nn.Module) -> nn.Module:
        return pl_module.get_submodule(self.module) if self.module else pl_module

    def param_groups(self, pl_module: nn.Module, base_lr: float | None = None) -> list[dict[str, Any]]:
        """The first plan's parameter groups, for ``configure_optimizers``."""
        return self.schedule[0].param_groups(self.model(pl_module), base_lr)

    def freeze_before_training(self, pl_module: nn.Module) -> None:
        self._apply(pl_module, self.schedule[0])

    def finetune_function(self, pl_module: nn.Module, epoch: int, optimizer: Optimizer) -> None:
        plan = self.plan_at(epoch)
        if plan is self._applied:
            return
        self._apply(pl_module, plan)
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        first = optimizer.param_groups[0]
        base_lr = first["lr"] / first.get("lr_multiplier", 1.0)
        for group in plan.param_groups(self.model(pl_module), base_lr):
            params = [p for p in group["params"] if id(p) not in held]
            if params:
                optimizer.add_param_group({**group, "params": params})

    def _apply(self, pl_module: nn.Module, plan: Plan) -> None:
        plan.apply(self.model(pl_module))
        self._applied = plan
