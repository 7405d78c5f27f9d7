"""The layer units of any ``nn.Module``: one entry of a plan each.

Found in this order: units given as name patterns; a Hugging Face ``transformers`` model's
layers (the embeddings, each layer of its stack, then what follows it, such as a pooler or a
final norm); timm's ``group_matcher``; else the model's children, plain containers opened
(:func:`layerswarm.units.split_units`). The head (timm's ``get_classifier``, the modules of a
Hugging Face task model outside its base model, or ``head=``) is never a unit: it always trains.
A wrapper (no parameter of its own, one child holding them all) is split as its child is.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from torch import nn

from ..errors import LayerswarmError
from ..units import GRANULARITIES, Unit, split_units, units_from_groups

UnitPatterns = Sequence[str | Sequence[str]]


def find_units(
    model: nn.Module,
    units: UnitPatterns | None = None,
    head: Sequence[str] | None = None,
    granularity: str = "block",
) -> tuple[list[Unit], list[str]]:
    """``(units, head)`` of ``model``, input side first.

    ``units``: one entry per unit, each a pattern or a list of patterns over parameter names
    (shell-style, :func:`fnmatch.fnmatchcase`; a module path also matches its parameters, so
    ``"encoder.layer.0"`` is a unit). ``head``: module paths that always train (default: found
    as the module docstring says). ``granularity``: ``block`` (default), ``stage`` (coarser:
    timm's coarse groups, a Hugging Face model's embeddings, all layers, the rest) or
    ``module`` (each module with parameters).
    """
    if granularity not in GRANULARITIES:
        raise LayerswarmError(f"unknown granularity '{granularity}': use one of {', '.join(GRANULARITIES)}")
    if units is None and head is None and (inner := _wrapped(model)) is not None:
        path, child = inner  # a wrapper (a LightningModule's self.net): the units of what it wraps
        found, found_head = find_units(child, granularity=granularity)
        return [_prefixed(u, path) for u in found], [f"{path}.{h}" for h in found_head]
    head = list(default_head(model) if head is None else head)
    modules = dict(model.named_modules())
    for path in head:
        if path not in modules:
            raise LayerswarmError(
                f"head '{path}' is no module of the model: pass module paths, "
                "e.g. 'classifier' (see model.named_modules())"
            )
    if units is not None:
        groups = pattern_groups(model, units, head)
    elif granularity != "module" and (layers := _hf_layer_groups(model, coarse=granularity == "stage")):
        groups = layers
    else:
        return split_units(model, head, granularity), head
    return units_from_groups(model, groups, head), head


def default_head(model: nn.Module) -> list[str]:
    """timm's ``get_classifier``; a Hugging Face task model's children outside its base model
    that hold parameters; else none (every parameter belongs to a unit)."""
    paths = {id(m): n for n, m in model.named_modules()}
    if hasattr(model, "get_classifier"):
        found = paths.get(id(model.get_classifier()))
        return [found] if found else []
    base = _hf_base(model)
    if base is not None and base is not model:
        return [n for n, child in model.named_children() if child is not base and any(True for _ in child.parameters())]
    return []


def pattern_groups(model: nn.Module, units: UnitPatterns, head: Sequence[str]) -> list[list[str]]:
    """One group of parameter names per entry of ``units``; every parameter outside the head
    must match exactly one entry."""
    names = [n for n, _ in model.named_parameters()]
    head_prefixes = tuple(f"{h}." for h in head)
    owner: dict[str, int] = {}
    groups: list[list[str]] = []
    for index, entry in enumerate(units):
        patterns = [entry] if isinstance(entry, str) else list(entry)
        group = [
            n for n in names if any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n, f"{p}.*") for p in patterns)
        ]
        if not group:
            raise LayerswarmError(
                f"unit pattern {entry!r} matches no parameter: use names from model.named_parameters() or module paths"
            )
        for name in group:
            if name in owner:
                raise LayerswarmError(
                    f"parameter '{name}' matches unit {owner[name]} and unit {index} "
                    f"({entry!r}): make the patterns disjoint"
                )
            owner[name] = index
        groups.append(group)
    loose = [n for n in names if n not in owner and not n.startswith(head_prefixes)]
    if loose:
        raise LayerswarmError(
            f"parameter '{loose[0]}' is in no unit: add a pattern for it, or name its "
            "module in head= to train it always"
        )
    return groups


def _wrapped(model: nn.Module) -> tuple[str, nn.Module] | None:
    """``(path, child)`` when ``model`` holds no parameter itself and one child holds them all."""
    if any(True for _ in model.parameters(recurse=False)):
        return None
    holders = [(n, c) for n, c in model.named_children() if any(True for _ in c.parameters())]
    return holders[0] if len(holders) == 1 else None


def _prefixed(unit: Unit, path: str) -> Unit:
    return Unit(
        unit.index,
        "+".join(f"{path}.{part}" for part in unit.name.split("+")),
        [f"{path}.{p}" for p in unit.params],
        [f"{path}.{m}" for m in unit.modules],
        unit.num_params,
    )


def _hf_base(model: nn.Module) -> nn.Module | None:
    """The base model of a Hugging Face ``transformers`` model (itself for a bare encoder)."""
    if not (hasattr(model, "base_model_prefix") and hasattr(model, "config")):
        return None
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else None


def _hf_layer_groups(model: nn.Module, coarse: bool) -> list[list[str]] | None:
    """Parameter groups of a Hugging Face model: what precedes its layer stack (the
    embeddings), each layer (all of them for ``coarse``), what follows; ``None`` when the model
    is no Hugging Face model or has no stack."""
    base = _hf_base(model)
    if base is None:
        return None
    prefix = next(n for n, m in model.named_modules() if m is base)
    prefix = f"{prefix}." if prefix else ""
    stacks = [(n, m) for n, m in base.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 1]
    if not stacks:
        return None
    path, stack = max(stacks, key=lambda s: len(s[1]))  # the longest stack: BERT's encoder.layer
    layer_of = {f"{prefix}{path}.{i}.{n}": i for i, layer in enumerate(stack) for n, _ in layer.named_parameters()}
    before: list[str] = []
    layers: list[list[str]] = [[] for _ in stack]
    after: list[str] = []
    for name, _ in base.named_parameters():
        full = f"{prefix}{name}"
        if full in layer_of:
            layers[layer_of[full]].append(full)
        else:
            (after if any(layers) else before).append(full)
    if coarse:
        layers = [[n for layer in layers for n in layer]]
    return [before, *layers, after]
