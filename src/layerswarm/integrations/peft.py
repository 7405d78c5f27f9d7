"""A plan as a LoRA configuration: its trained layers get adapters, its other trained units
and the head train fully, its frozen units stay as they are.

The plan's units that are layers of one stack (a Hugging Face encoder's ``layer.N``, a ViT's
``blocks.N``) become ``layers_to_transform`` (with ``layers_pattern``, the stack's name); the
other trained units (embeddings, a pooler) and the head become ``modules_to_save``. Only the
mask is read: LoRA has no per-layer learning rate.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from ..errors import LayerswarmError
from ..study import Plan

try:
    from peft import LoraConfig
except ImportError as err:  # pragma: no cover - peft is an optional extra
    raise LayerswarmError("the peft integration needs peft: pip install 'layerswarm[peft]'") from err

__all__ = ["lora_config", "lora_layers"]

_INDEXED = re.compile(r"(?P<stack>.+)\.(?P<index>\d+)")


def lora_layers(model: nn.Module, plan: Plan) -> dict[int, int]:
    """``{unit index: layer index}`` of the plan's units that are one layer of a stack (an
    ``nn.ModuleList``); refused when they lie in more than one stack."""
    layers, stacks = {}, set()
    for unit in plan.units:
        match = _INDEXED.fullmatch(unit.modules[0]) if len(unit.modules) == 1 else None
        if match and isinstance(model.get_submodule(match["stack"]), nn.ModuleList):
            layers[unit.index] = int(match["index"])
            stacks.add(match["stack"])
    if len(stacks) > 1:
        raise LayerswarmError(
            f"the plan's layers lie in {len(stacks)} stacks ({', '.join(sorted(stacks))}): "
            "LoRA's layers_to_transform takes layers of one stack"
        )
    return layers


def lora_config(model: nn.Module, plan: Plan, **lora_kwargs: Any) -> LoraConfig:
    """A ``LoraConfig`` for ``model`` (the model the plan's units were found on) that adapts
    the plan's trained layers and trains its other trained units and the head fully.

    ``lora_kwargs`` go to ``LoraConfig`` (``r``, ``lora_alpha``, ``target_modules``, ...; without
    ``target_modules`` peft picks the usual ones for a known Hugging Face architecture).
    """
    layers = lora_layers(model, plan)
    trained = [u for u, bit in zip(plan.units, plan.mask, strict=True) if bit]
    adapted = sorted(layers[u.index] for u in trained if u.index in layers)
    if not adapted:
        raise LayerswarmError(
            "the plan trains no layer of the model's stack: LoRA would have nothing to adapt "
            "(peft reads no layer as every layer); train such a plan without LoRA"
        )
    stack = next(_INDEXED.fullmatch(u.modules[0])["stack"] for u in plan.units if u.index in layers)
    saved = []
    for unit in trained:
        if unit.index in layers:
            continue
        loose = [p for p in unit.params if not any(p.startswith(f"{m}.") for m in unit.modules)]
        if loose:
            raise LayerswarmError(
                f"unit '{unit.name}' holds parameters outside any module it owns ({loose[0]}): "
                "modules_to_save takes whole modules; freeze it in the plan or choose other units"
            )
        saved.extend(unit.modules)
    return LoraConfig(
        layers_to_transform=adapted,
        layers_pattern=stack.rsplit(".", 1)[-1],
        modules_to_save=saved + list(plan.head),
        **lora_kwargs,
    )
