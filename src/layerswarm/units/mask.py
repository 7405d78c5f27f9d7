"""Freeze masks: validation, files, and applying a mask to a model.

Freezing is real: a frozen unit's parameters get ``requires_grad=False`` (so they are left
out of the optimizer: no weight decay, no momentum) and its modules run in eval mode
(BatchNorm running statistics unchanged, no dropout or drop-path noise).
"""

from __future__ import annotations

import json
import math
import numbers
import weakref
from collections.abc import Sequence
from pathlib import Path

from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import LayerswarmError
from ..io import atomic_write_json
from .units import Unit


def validate_mask(mask: Sequence, num_units: int, source: str = "mask") -> list[int]:
    """Return ``mask`` as a list of 0/1 ints or raise a one-line error."""
    values = list(mask)
    if len(values) != num_units:
        raise LayerswarmError(
            f"{source} has {len(values)} entries but the model has {num_units} units: "
            "list them with 'layerswarm layers --model M' and give one 0/1 per unit"
        )
    bad = [v for v in values if v not in (0, 1) or isinstance(v, float) and not float(v).is_integer()]
    if bad:
        raise LayerswarmError(f"{source} holds {bad[0]!r}: every entry must be 0 (frozen) or 1 (fine-tuned)")
    return [int(v) for v in values]


def load_mask(path: str | Path, units: list[Unit]) -> list[int]:
    """Read ``{"mask": [...]}`` (e.g. best_mask.json) or a bare JSON list, or a 0/1 string."""
    path = Path(path)
    if not path.is_file():
        raise LayerswarmError(
            f"mask file '{path}' does not exist: pass a best_mask.json written by 'layerswarm search'"
        )
    text = path.read_text().strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [int(c) if c in "01" else c for c in text.replace(",", "").replace(" ", "")]
    if isinstance(data, dict):
        if "mask" not in data:
            raise LayerswarmError(f"mask file '{path}' has no 'mask' key: expected {{\"mask\": [0/1 per unit]}}")
        data = data["mask"]
    if not isinstance(data, list):
        raise LayerswarmError(f"mask file '{path}' holds no list: expected {{\"mask\": [0/1 per unit]}}")
    return validate_mask(data, len(units), source=f"mask file '{path}'")


def validate_lr_multipliers(values: Sequence, num_units: int, source: str = "lr_multipliers") -> list[float]:
    """``values`` as one learning-rate multiplier per unit (a number >= 0; 0: frozen), or a
    one-line error."""
    values = list(values)
    if len(values) != num_units:
        raise LayerswarmError(
            f"{source} has {len(values)} entries but the model has {num_units} "
            "units: give one multiplier per unit (0: frozen)"
        )
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= float(v) < math.inf]
    if bad:
        raise LayerswarmError(f"{source} holds {bad[0]!r}: every multiplier must be a number >= 0 (0: frozen)")
    return [float(v) for v in values]


def load_lr_multipliers(path: str | Path, units: list[Unit]) -> list[float] | None:
    """The ``lr_multipliers`` of a mask file (a ``best_mask.json`` of ``--space lr``), None if it
    has none."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None  # load_mask has read (or refused) the file: a bare list or 0/1 string has none
    if not isinstance(data, dict) or data.get("lr_multipliers") is None:
        return None
    return validate_lr_multipliers(data["lr_multipliers"], len(units), source=f"mask file '{path}'")


def save_mask(path: str | Path, mask: list[int], units: list[Unit], **extra) -> None:
    atomic_write_json(path, {"mask": list(mask), "units": [u.name for u in units], **extra})


def frozen_modules(units: list[Unit], mask: Sequence[int]) -> list[str]:
    return [m for u, bit in zip(units, mask, strict=True) if not bit for m in u.modules]


def apply_mask(model: nn.Module, units: list[Unit], mask: Sequence[int]) -> list[str]:
    """Set ``requires_grad`` per unit (head and unmasked params stay trainable).

    Returns the module paths to keep in eval mode during training (see :func:`train_mode`).
    """
    mask = validate_mask(mask, len(units))
    params = dict(model.named_parameters())
    for p in params.values():
        p.requires_grad_(True)
    for unit, bit in zip(units, mask, strict=True):
        for name in unit.params:
            params[name].requires_grad_(bool(bit))
    return frozen_modules(units, mask)


def train_mode(model: nn.Module, frozen: list[str]) -> None:
    """``model.train()``, but frozen units stay in eval mode (running stats kept)."""
    model.train()
    for path in frozen:
        model.get_submodule(path).eval()


# model -> the hooks keep_eval put on it, so that a new plan replaces the previous one's
_EVAL_HOOKS: weakref.WeakKeyDictionary[nn.Module, list[RemovableHandle]] = weakref.WeakKeyDictionary()


def keep_eval(model: nn.Module, frozen: Sequence[str]) -> None:
    """Keep the modules at ``frozen`` (paths in ``model``) in eval mode whatever ``model.train()``
    says: training code of any kind (a Hugging Face ``Trainer``, Lightning, a plain loop) calls
    ``model.train()``, and a frozen BatchNorm would then move its running statistics.

    Every module inside a frozen one gets a forward pre-hook that switches it to eval mode, so
    the modules a container such as ``nn.ModuleList`` holds (never called itself) are covered
    too. The hooks an earlier call put on ``model`` are removed first.
    """
    for handle in _EVAL_HOOKS.pop(model, []):
        handle.remove()
    handles: list[RemovableHandle] = []
    for path in frozen:
        root = model.get_submodule(path)
        root.eval()
        handles.extend(module.register_forward_pre_hook(_stay_eval) for module in root.modules())
    _EVAL_HOOKS[model] = handles


def _stay_eval(module: nn.Module, _inputs) -> None:
    if module.training:
        module.train(False)
