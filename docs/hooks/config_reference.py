"""MkDocs hook: the configuration reference, generated from the config dataclasses' help text.

A page holding the line ``<!-- config-reference -->`` gets, in its place, one table per
configuration: every key, its default and the help text its field carries (``help_field``
stores it in ``field.metadata["help"]``). Nothing names a module path: the classes are found at
build time from ``layerswarm``'s public names and by importing its subpackages, so the page
follows the code wherever the classes live.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import pkgutil
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- config-reference -->"
log = logging.getLogger("mkdocs.hooks.config_reference")


def _import_all(package: Any) -> list[Any]:
    """Every module of ``package`` that imports here (one behind a missing optional extra is
    left out); ``__main__`` modules are not imported, they would run the command line."""
    modules = [package]
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except Exception as err:  # noqa: BLE001 - an optional dependency (ray, optuna, ...) is missing
            log.info("config reference: skipped %s (%s)", info.name, err)
    return modules


def _is_config(cls: Any, base: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, base) and dataclasses.is_dataclass(cls)


def _config_base(layerswarm: Any) -> type:
    """The mixin every configuration dataclass derives from (the one defining ``from_dict``)."""
    for name in getattr(layerswarm, "__all__", []):
        cls = getattr(layerswarm, name)
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            for parent in cls.__mro__[1:]:
                if "from_dict" in vars(parent) and not dataclasses.is_dataclass(parent):
                    return parent
    raise RuntimeError("config reference: no public configuration dataclass in layerswarm")


def _subclasses(cls: type) -> list[type]:
    out: list[type] = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _show(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "*required*"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return f"`{text}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _summary(cls: type) -> str:
    """The first paragraph of the class's own docstring (not the dataclass signature)."""
    doc = vars(cls).get("__doc__") or ""
    if doc.startswith(cls.__name__ + "("):
        return ""
    return _cell(doc.strip().split("\n\n")[0])


def _rows(cls: type, base: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) of every field of ``cls``; nested configurations as dotted keys."""
    rows = []
    for field in dataclasses.fields(cls):
        default = _default(field)
        if _is_config(type(default), base):
            rows += _rows(type(default), base, f"{prefix}{field.name}.")
            continue
        rows.append((f"{prefix}{field.name}", _show(default), _cell(field.metadata.get("help", ""))))
    return rows


def _table(rows: list[tuple[str, str, str]]) -> list[str]:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{key}` | {default} | {text} |" for key, default, text in rows]
    return lines + [""]


def _registries(modules: list[Any]) -> dict[str, dict[str, Any]]:
    """The name -> implementation tables (kind -> {name: entry}) found in the modules."""
    found: dict[str, dict[str, Any]] = {}
    for module in modules:
        for value in vars(module).values():
            kind = getattr(value, "kind", None)
            if isinstance(value, dict) and isinstance(kind, str) and type(value).__name__ == "Registry":
                found.setdefault(kind, {}).update(value)
    return found


def _entry_config(entry: Any, base: type) -> type | None:
    for attr in ("Config", "config_class"):
        cls = getattr(entry, attr, None)
        if _is_config(cls, base):
            return cls
    return None


def generate() -> str:
    import layerswarm

    modules = _import_all(layerswarm)
    base = _config_base(layerswarm)
    every = [cls for cls in _subclasses(base) if dataclasses.is_dataclass(cls)]
    shown: set[type] = set()
    out: list[str] = []

    def reached(cls: type) -> None:
        shown.add(cls)
        for field in dataclasses.fields(cls):
            default = _default(field)
            if _is_config(type(default), base):
                reached(type(default))

    run = getattr(layerswarm, "RunConfig", None)
    if _is_config(run, base):
        out += [
            "## A run's configuration",
            "",
            "The keys of a run's `config.json` and of a `--config` file (YAML or JSON, nested "
            "as `config.json` is: `final: {epochs: 30}` is the key `final.epochs`). " + _summary(run),
            "",
        ]
        out += _table(_rows(run, base))
        reached(run)

    for kind, entries in sorted(_registries(modules).items()):
        section = []
        for name, entry in sorted(entries.items()):
            cls = _entry_config(entry, base)
            if cls is None:
                continue
            shown.add(cls)
            rows = _rows(cls, base)
            section += [f"### {kind} `{name}`", ""]
            summary = _summary(cls)
            section += [summary, ""] if summary else []
            section += _table(rows) if rows else ["No options.", ""]
        if section:
            out += [f"## Options of each {kind}", ""] + section

    rest = sorted((cls for cls in every if cls not in shown and dataclasses.fields(cls)), key=lambda c: c.__name__)
    if rest:
        out += ["## Other configurations", ""]
        for cls in rest:
            out += [f"### `{cls.__name__}`", ""]
            summary = _summary(cls)
            out += [summary, ""] if summary else []
            out += _table(_rows(cls, base))
    return "\n".join(out)


def on_config(config: Any) -> Any:
    src = str(Path(config["config_file_path"]).resolve().parent / "src")
    if src not in sys.path:
        sys.path.insert(0, src)  # this checkout's code, whether installed or not
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, generate())
