"""Take a found mask out of layerswarm: into your own timm, PyTorch or Hugging Face code.

``layerswarm export DIR`` writes ``DIR/mask_export.json``: the mask as parameter-name
patterns (``frozen_patterns``, shell-style, matched with :func:`fnmatch.fnmatchcase`), as an
exact ``requires_grad`` map of every parameter, and the module paths to keep in eval mode
(``frozen_modules``: their BatchNorm statistics stay as pretrained, as layerswarm trains them).
:func:`apply_mask` applies that file, a ``best_mask.json`` or a run folder to a model.

A ``--space lr`` plan (or a study's) also trains its units at different rates: the export adds
``lr_multipliers`` (one per unit, 0 frozen) and ``param_groups`` (each multiplier with the
patterns of the parameters it applies to; the new head at 1), and :func:`param_groups` turns any
of those sources into optimizer parameter groups at ``lr x multiplier``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import LayerswarmError

EXPORT_FILE = "mask_export.json"
EXPORT_FORMAT = "layerswarm-mask/1"
GRANULARITIES = ("block", "stage", "module")


def _escape(name: str) -> str:
    """A parameter name as an fnmatch pattern matching only itself."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _unit_patterns(unit, all_params: Sequence[str]) -> list[str]:
    """Patterns matching exactly the unit's parameters: ``module.*`` per module it wholly holds,
    exact names for the rest (checked against every parameter of the model)."""
    own = set(unit.params)
    patterns, covered = [], set()
    for module in unit.modules:
        pattern = f"{_escape(module)}.*"
        matched = {p for p in all_params if fnmatch.fnmatchcase(p, pattern)}
        if matched and matched <= own:
            patterns.append(pattern)
            covered |= matched
    patterns.extend(_escape(p) for p in unit.params if p not in covered)
    return patterns


def mask_spec(
    names: Sequence[str],
    units,
    mask: Sequence[int],
    head: Sequence[str],
    lr_multipliers: Sequence[float] | None = None,
    **info: Any,
) -> dict:
    """The export of ``mask`` over ``units`` of a model whose parameters are ``names`` (see the
    module docstring); ``lr_multipliers``: the plan's rates (a ``--space lr`` search's, a
    study's); ``info``: keys recorded beside it (model name, granularity, ...)."""
    from ..units import validate_lr_multipliers, validate_mask

    mask = validate_mask(mask, len(units))
    frozen = [u for u, bit in zip(units, mask, strict=True) if not bit]
    frozen_params = {p for u in frozen for p in u.params}
    patterns = [pat for u in frozen for pat in _unit_patterns(u, names)]
    trainable = [pat for u, bit in zip(units, mask, strict=True) if bit for pat in _unit_patterns(u, names)]
    matched = {n for n in names if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)}
    if matched != frozen_params:  # never export patterns that say something else than the mask
        raise AssertionError(f"frozen patterns match {len(matched)} parameters, the mask freezes {len(frozen_params)}")
    spec = {
        "format": EXPORT_FORMAT,
        **info,
        "units": [u.name for u in units],
        "mask": list(mask),
        "head": list(head),
        "frozen_patterns": patterns,
        "trainable_patterns": trainable + [f"{_escape(h)}.*" for h in head],
        "frozen_modules": [m for u in frozen for m in u.modules],
        "requires_grad": {n: n not in frozen_params for n in names},
    }
    if lr_multipliers is not None:
        rates = validate_lr_multipliers(lr_multipliers, len(units))
        if [int(r > 0) for r in rates] != mask:
            raise LayerswarmError(
                "the run's lr_multipliers are not 0 exactly where its mask "
                "freezes: export a best_mask.json written by "
                "'layerswarm search --space lr'"
            )
        # the new head at the run's rate, each unit at its own
        groups: dict[float, list[str]] = {1.0: [f"{_escape(h)}.*" for h in head]}
        for unit, rate in zip(units, rates, strict=True):
            if rate > 0:
                groups.setdefault(rate, []).extend(_unit_patterns(unit, names))
        spec["lr_multipliers"] = rates
        spec["param_groups"] = [{"lr_multiplier": r, "patterns": groups[r]} for r in sorted(groups)]
    return spec


def _head_of(model) -> list[str]:
    """Module paths of a model's classifier: timm's ``get_classifier``, else the last Linear."""
    from torch import nn

    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        paths = [n for n, m in model.named_modules() if m is head and n]
        if paths:
            return paths
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


def _run_mask(run_dir: Path) -> tuple[dict, dict]:
    """(config.json, {"mask", "units", ...}) of a search or finetune folder."""
    from ..io import read_json
    from ..run.answer import ANSWER_FILE

    if not (run_dir / "config.json").is_file():
        raise LayerswarmError(
            f"'{run_dir}' holds no run (no config.json): pass a folder written by "
            "'layerswarm search' or 'layerswarm finetune --mask'"
        )
    config = read_json(run_dir / "config.json")
    # the run's answer (--answer validation: maybe a baseline), else the searched mask
    for source in (run_dir / ANSWER_FILE, run_dir / "best_mask.json", run_dir / "final" / "metrics.json"):
        if source.is_file():
            found = read_json(source)
            if found.get("mask") is not None:
                return config, found
    raise LayerswarmError(
        f"'{run_dir}' has no mask yet (no best_mask.json, no final/metrics.json with a mask): "
        "export a finished search, or a finetune run with --mask"
    )


def export_mask(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``run_dir/mask_export.json`` (or ``out``) for the run's mask; return its path."""
    from ..io import atomic_write_json
    from ..models import create_model
    from ..units import split_units

    run_dir = Path(run_dir)
    config, found = _run_mask(run_dir)
    model_cfg = config.get("model", {})
    name, granularity = model_cfg.get("name"), model_cfg.get("granularity", "block")
    if config.get("kind") == "study":  # the user's own model: the study recorded its units
        from ..study import load_units

        units, head, names = load_units(run_dir)
    else:
        # The architecture alone decides the parameter names: no weights are loaded.
        weights = "pretrained" if name.startswith("efficientnet_lite") else "none"
        model, info = create_model(name, num_classes=2, weights=weights)
        units, head = split_units(model, info.head, granularity), info.head
        names = [n for n, _ in model.named_parameters()]
    if found.get("units") and [u.name for u in units] != list(found["units"]):
        raise LayerswarmError(
            f"the units of '{name}' ({granularity}) here differ from the run's: export with the "
            "layerswarm and timm versions that made the run"
        )
    spec = mask_spec(
        names,
        units,
        found["mask"],
        head,
        found.get("lr_multipliers"),
        model=name,
        granularity=granularity,
        fitness=found.get("fitness"),
        source=str(run_dir),
    )
    path = Path(out) if out is not None else run_dir / EXPORT_FILE
    atomic_write_json(path, spec)
    return path


def _load(mask: str | Path | dict) -> tuple[dict, Path | None]:
    from ..io import read_json

    if isinstance(mask, dict):
        return mask, None
    path = Path(mask)
    if path.is_dir():
        for name in (EXPORT_FILE, "best_mask.json"):
            if (path / name).is_file():
                return read_json(path / name), path
        _, found = _run_mask(path)
        return found, path
    if not path.is_file():
        raise LayerswarmError(
            f"mask '{path}' does not exist: pass a mask_export.json, a best_mask.json or a run folder"
        )
    try:
        return read_json(path), path.parent
    except ValueError as err:
        raise LayerswarmError(f"mask '{path}' is not JSON: pass a mask_export.json or a best_mask.json") from err


def apply_mask(
    model, mask: str | Path | dict, granularity: str | None = None, keep_frozen_eval: bool = True
) -> list[str]:
    """Freeze ``model``'s parameters as ``mask`` says; return the frozen module paths.

    ``mask``: a ``mask_export.json`` (``layerswarm export``), a ``best_mask.json``, a run
    folder, or one of those read as a dict. Frozen parameters get ``requires_grad=False``; pass
    only ``[p for p in model.parameters() if p.requires_grad]`` to your optimizer (a Hugging
    Face ``Trainer`` does so itself). ``keep_frozen_eval``: frozen modules run in eval mode
    whatever ``model.train()`` says (a forward pre-hook), so their BatchNorm statistics stay
    pretrained, as in layerswarm's own training. A ``best_mask.json`` is mapped onto the
    model's layer units at ``granularity`` (default: the run's, else whichever matches its
    unit names). A plan that trains its units at different rates (``--space lr``, a study):
    give your optimizer :func:`param_groups` of the same ``mask``.
    """
    data, folder = _load(mask)
    if "requires_grad" in data:
        frozen = _apply_export(model, data)
    elif "mask" in data:
        frozen = _apply_units(model, data, granularity, folder)
    else:
        raise LayerswarmError(
            "the mask holds neither 'requires_grad' nor 'mask': pass a mask_export.json or best_mask.json"
        )
    if keep_frozen_eval:
        from ..units import keep_eval

        keep_eval(model, frozen)
    return frozen


def _apply_export(model, data: dict) -> list[str]:
    grads, patterns = data["requires_grad"], data.get("frozen_patterns", [])
    params = dict(model.named_parameters())
    heads = tuple(f"{h}." for h in data.get("head", []))
    missing = [n for n in grads if n not in params and not n.startswith(heads)]  # a new head may differ
    if missing:
        raise LayerswarmError(
            f"the mask does not fit this model: it names parameters the model lacks (e.g. {missing[0]}); "
            f"build the model it was exported for ({data.get('model')})"
        )
    for name, p in params.items():
        trainable = grads[name] if name in grads else not any(fnmatch.fnmatchcase(name, pat) for pat in patterns)
        p.requires_grad_(bool(trainable))
    return [m for m in data.get("frozen_modules", []) if _has_module(model, m)]


def _has_module(model, path: str) -> bool:
    try:
        model.get_submodule(path)
    except AttributeError:
        return False
    return True


def _apply_units(model, data: dict, granularity: str | None, folder: Path | None) -> list[str]:
    from ..units import apply_mask as apply_unit_mask

    return apply_unit_mask(model, _units_of(model, data, granularity, folder), data["mask"])


def _units_of(model, data: dict, granularity: str | None, folder: Path | None) -> list:
    """The units of ``model`` that a ``best_mask.json`` is over: a study's recorded ones, else
    the layer units at ``granularity`` (default: the run's, else whichever matches its names)."""
    from ..io import read_json
    from ..units import split_units

    if folder is not None and (folder / "units.json").is_file():  # a study: the units it recorded
        from ..study import Plan, load_units

        units, head, _ = load_units(folder)
        # refuses a model the study's units do not fit, in one line
        Plan.from_mask(units, data["mask"], head).param_groups(model)
        return units
    if granularity is None and folder is not None and (folder / "config.json").is_file():
        granularity = read_json(folder / "config.json").get("model", {}).get("granularity")
    head = _head_of(model)
    tried = [granularity] if granularity else list(GRANULARITIES)
    for g in tried:
        units = split_units(model, head, g)
        if not data.get("units") or [u.name for u in units] == list(data["units"]):
            return units
    raise LayerswarmError(
        f"the mask's units do not match this model's ({', '.join(tried)}): build the model "
        "the mask was searched on, or export it with 'layerswarm export DIR'"
    )


def param_groups(model, mask: str | Path | dict, lr: float, granularity: str | None = None) -> list[dict]:
    """Optimizer parameter groups of a plan: every parameter it trains, grouped by its unit's
    learning-rate multiplier m, at ``lr x m`` (``lr_multiplier`` records m; a plain mask's
    units, and parameters of no unit such as the new head, at 1); frozen parameters are in
    none. ``mask``: what :func:`apply_mask` takes. Use it beside :func:`apply_mask`, e.g.
    ``torch.optim.SGD(param_groups(model, "runs/x", lr=0.01), lr=0.01, momentum=0.9)``."""
    data, folder = _load(mask)
    if "requires_grad" in data:  # an export: its requires_grad map and its groups' patterns
        return _export_groups(model, data, lr)
    if "mask" not in data:
        raise LayerswarmError(
            "the mask holds neither 'requires_grad' nor 'mask': pass a mask_export.json or best_mask.json"
        )
    from ..study import Plan
    from ..units import validate_mask

    units = _units_of(model, data, granularity, folder)
    mask_rates = [float(b) for b in validate_mask(data["mask"], len(units))]
    rates = data.get("lr_multipliers") or mask_rates
    return Plan(units, rates).param_groups(model, lr)


def _export_groups(model, data: dict, lr: float) -> list[dict]:
    grads, groups = data["requires_grad"], data.get("param_groups") or []
    grouped: dict[float, list] = {}
    for name, param in model.named_parameters():
        if grads.get(name, True):  # a parameter the export does not name: a new head, trained
            rate = next(
                (
                    float(g["lr_multiplier"])
                    for g in groups
                    if any(fnmatch.fnmatchcase(name, pat) for pat in g["patterns"])
                ),
                1.0,
            )
            grouped.setdefault(rate, []).append(param)
    return [{"params": ps, "lr_multiplier": m, "lr": lr * m} for m, ps in grouped.items()]
