"""Human-readable list of the registered strategies and their options (``layerswarm strategies``)."""

from __future__ import annotations

import dataclasses

from .registry import STRATEGIES


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def describe_strategies() -> list[dict]:
    """One entry per strategy: name, one-line summary, and its options (default and help)."""
    out = []
    for name in sorted(STRATEGIES):
        cls = STRATEGIES[name]
        doc = (cls.__doc__ or "").strip().splitlines()
        options = [
            {"name": f.name, "default": _default(f), "help": f.metadata.get("help", "")}
            for f in dataclasses.fields(cls.Config)
        ]
        out.append(
            {"name": name, "summary": doc[0] if doc else "", "options": options, "weights": cls.weights or "pretrained"}
        )
    return out


def format_strategies() -> str:
    lines = []
    for s in describe_strategies():
        lines.append(f"{s['name']:<15} {s['summary']}")
        for o in s["options"]:
            lines.append(f"{'':<17}--option {s['name']}.{o['name']}={o['default']!s:<8} {o['help']}")
    return "\n".join(lines)
