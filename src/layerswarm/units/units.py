"""Split a model into ordered layer units: one bit of the freeze mask each.

``block`` (default) uses timm's fine ``group_matcher`` where the model has one, ``stage``
its coarse one; ``module`` makes each conv/linear (with the norm that follows it) a unit.
Models without a ``group_matcher`` (torchvision) fall back to walking plain containers.
The new classifier head is never a unit: it is always trained.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from timm.models import group_parameters
from torch import nn

from ..errors import LayerswarmError

GRANULARITIES = ("block", "stage", "module")
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass
class Unit:
    """One mask bit: the parameters it holds and the modules wholly inside it."""

    index: int
    name: str
    params: list[str]
    modules: list[str] = field(default_factory=list)  # maximal modules whose params are all here
    num_params: int = 0

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "num_params": self.num_params, "params": self.params}


def _unit_name(unit: Unit) -> str:
    """The unit's maximal modules, plus parameters held directly by a parent (class tokens)."""
    loose = [p for p in unit.params if not any(p.startswith(f"{m}.") for m in unit.modules)]
    return "+".join(list(OrderedDict.fromkeys(unit.modules + loose)))


def _groups_from_matcher(model: nn.Module, coarse: bool) -> list[list[str]]:
    matcher = model.group_matcher(coarse=coarse)
    groups = group_parameters(model, matcher)
    return [list(v) for _, v in sorted(groups.items(), key=lambda kv: kv[0])]


def _container_walk(module: nn.Module, prefix: str, depth: int | None) -> list[tuple[str, nn.Module]]:
    """Ordered children, expanding plain containers (up to ``depth`` levels if given)."""
    out = []
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if type(child) in _CONTAINERS and (depth is None or depth > 0):
            out.extend(_container_walk(child, f"{path}.", None if depth is None else depth - 1))
        else:
            out.append((path, child))
    return out


def _groups_fallback(model: nn.Module, granularity: str) -> list[list[str]]:
    depth = 0 if granularity == "stage" else None
    groups = _with_norms_joined(
        (child, [f"{path}.{n}" for n, _ in child.named_parameters()])
        for path, child in _container_walk(model, "", depth)
    )
    # Parameters owned directly by the root (e.g. a class token) go first.
    direct = [n for n, _ in model.named_parameters(recurse=False)]
    if direct:
        groups.insert(0, direct)
    return groups


def _groups_by_module(model: nn.Module) -> list[list[str]]:
    return _with_norms_joined(
        (module, [f"{path}.{n}" if path else n for n, _ in module.named_parameters(recurse=False)])
        for path, module in model.named_modules()
    )


def _with_norms_joined(modules: Iterable[tuple[nn.Module, list[str]]]) -> list[list[str]]:
    """One group per module with parameters, except that a norm on its own belongs with the
    conv/linear before it (torchvision's conv1 + bn1)."""
    groups: list[list[str]] = []
    for module, params in modules:
        if not params:
            continue
        if isinstance(module, _NORMS) and groups:
            groups[-1].extend(params)
        else:
            groups.append(params)
    return groups


def _module_ownership(model: nn.Module, units: list[Unit]) -> None:
    """Fill ``unit.modules`` with the maximal modules whose parameters all lie in one unit."""
    unit_of = {p: u.index for u in units for p in u.params}
    owners: dict[str, set[int]] = {}
    for path, module in model.named_modules():
        owners[path] = {unit_of.get(f"{path}.{n}" if path else n, -1) for n, _ in module.named_parameters()}
    for path in owners:
        ids = owners[path]
        if len(ids) != 1 or -1 in ids or not path:
            continue
        parent = path.rpartition(".")[0]
        if parent and owners.get(parent) == ids:
            continue  # the parent is already wholly in this unit
        units[next(iter(ids))].modules.append(path)


def split_units(model: nn.Module, head: list[str], granularity: str = "block") -> list[Unit]:
    """Ordered units of ``model``, input side first, the classifier ``head`` excluded."""
    if granularity not in GRANULARITIES:
        raise LayerswarmError(f"unknown granularity '{granularity}': use one of {', '.join(GRANULARITIES)}")
    if granularity == "module":
        groups = _groups_by_module(model)
    elif hasattr(model, "group_matcher"):
        groups = _groups_from_matcher(model, coarse=granularity == "stage")
    else:
        groups = _groups_fallback(model, granularity)
    return units_from_groups(model, groups, head)


def units_from_groups(model: nn.Module, groups: list[list[str]], head: list[str]) -> list[Unit]:
    """Units from ordered groups of parameter names (the ``head``'s parameters left out);
    every parameter outside the head must lie in a group."""
    head_prefixes = tuple(f"{h}." for h in head)
    sizes = dict((n, p.numel()) for n, p in model.named_parameters())
    units: list[Unit] = []
    for params in groups:
        params = [p for p in params if not p.startswith(head_prefixes) and p in sizes]
        if params:
            units.append(Unit(len(units), "", params, num_params=sum(sizes[p] for p in params)))
    covered = {p for u in units for p in u.params}
    missing = [p for p in sizes if p not in covered and not p.startswith(head_prefixes)]
    if missing:  # never leave a parameter outside every unit: it would train silently
        raise LayerswarmError(f"layer units miss parameters (e.g. {missing[0]}): try --granularity module")
    if not units:
        raise LayerswarmError("model has no parameters outside its classifier: nothing to mask")
    _module_ownership(model, units)
    for unit in units:
        unit.name = _unit_name(unit)
    return units
