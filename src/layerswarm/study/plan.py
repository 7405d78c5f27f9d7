"""A plan: which units train, and at what learning rate, applied to a model.

A plan holds one learning-rate multiplier per unit: 0 freezes the unit (``mask`` 0), any
other value trains it at ``base_lr`` times the multiplier. In the plain mask space the
multipliers are 1 for trained units and 0 for frozen ones. The head always trains at 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import LayerswarmError
from ..units import Unit, apply_mask, frozen_modules, keep_eval


@dataclass
class Plan:
    """``units`` and, per unit, its learning-rate multiplier (0: frozen)."""

    units: list[Unit] = field(repr=False)  # long: every parameter name
    lr_multipliers: list[float]
    head: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lr_multipliers = [float(m) for m in self.lr_multipliers]
        if len(self.lr_multipliers) != len(self.units):
            raise LayerswarmError(
                f"the plan has {len(self.lr_multipliers)} learning-rate multipliers for "
                f"{len(self.units)} units: give one per unit"
            )
        if any(m < 0 for m in self.lr_multipliers):
            raise LayerswarmError("a learning-rate multiplier is negative: use 0 (frozen) or more")

    @classmethod
    def from_mask(cls, units: list[Unit], mask: Sequence[int], head: Sequence[str] = ()) -> Plan:
        """The plan of a 0/1 mask: trained units at multiplier 1, frozen ones at 0."""
        from ..units import validate_mask

        return cls(units, [float(b) for b in validate_mask(mask, len(units))], list(head))

    @property
    def mask(self) -> list[int]:
        """1 for each unit that trains, 0 for each frozen one."""
        return [int(m > 0) for m in self.lr_multipliers]

    @property
    def frozen_modules(self) -> list[str]:
        """Module paths that stay in eval mode while the model trains."""
        return frozen_modules(self.units, self.mask)

    @property
    def trained_units(self) -> list[str]:
        return [u.name for u, bit in zip(self.units, self.mask, strict=True) if bit]

    def apply(self, model: nn.Module, base_lr: float | None = None) -> list[dict[str, Any]]:
        """Freeze ``model`` as the plan says and return the optimizer's parameter groups.

        Frozen units get ``requires_grad=False`` and their modules stay in eval mode through
        every later ``model.train()`` (:func:`layerswarm.units.keep_eval`); everything else
        trains. One group per distinct multiplier, in unit order, the head with the units at
        1: ``{"params", "lr_multiplier"}`` and ``"lr": base_lr * multiplier`` when ``base_lr``
        is given (else the optimizer's ``lr`` applies to every group). A plan applied earlier
        to the same model is replaced.
        """
        self._check_fits(model)
        frozen = apply_mask(model, self.units, self.mask)
        keep_eval(model, frozen)
        return self.param_groups(model, base_lr)

    def param_groups(self, model: nn.Module, base_lr: float | None = None) -> list[dict[str, Any]]:
        """The trainable parameters grouped by multiplier (see :meth:`apply`), without
        changing the model."""
        self._check_fits(model)
        multiplier_of = {p: m for u, m in zip(self.units, self.lr_multipliers, strict=True) for p in u.params}
        groups: dict[float, list[nn.Parameter]] = {}
        for name, param in model.named_parameters():
            multiplier = multiplier_of.get(name, 1.0)  # the head, and parameters of no unit
            if multiplier > 0:
                groups.setdefault(multiplier, []).append(param)
        out = []
        for multiplier, params in groups.items():
            group: dict[str, Any] = {"params": params, "lr_multiplier": multiplier}
            if base_lr is not None:
                group["lr"] = base_lr * multiplier
            out.append(group)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "units": [u.name for u in self.units],
            "mask": self.mask,
            "lr_multipliers": list(self.lr_multipliers),
            "head": list(self.head),
        }

    def _check_fits(self, model: nn.Module) -> None:
        names = {n for n, _ in model.named_parameters()}
        for unit in self.units:
            missing = [p for p in unit.params if p not in names]
            if missing:
                raise LayerswarmError(
                    f"the plan does not fit this model: unit '{unit.name}' holds "
                    f"'{missing[0]}', which the model lacks; apply it to the model "
                    "it was made for"
                )
