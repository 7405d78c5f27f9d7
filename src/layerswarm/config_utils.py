"""Config dataclasses round-trip to JSON (as peft's configs do) and carry help text.

Every configuration (run, search, data, model, training, speed, searcher and strategy
options) is a dataclass with :class:`JsonConfig`: fields declared with :func:`help_field`,
``to_dict`` / ``from_dict`` through JSON types, nested configs read back as their classes,
and unknown keys refused here, in one place, with one line naming the valid ones. A config made
of groups (``TrainConfig.optim``, ...) still reads the flat keys its earlier layout saved:
``moved`` maps each to its place, and :meth:`JsonConfig.current_key` does the same for a dotted
key (a preset's, an option's).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import typing
from typing import Any, ClassVar, TypeVar

from .errors import LayerswarmError

T = TypeVar("T")


class UnknownKeyError(LayerswarmError, ValueError):
    """A config given a key it does not have (a misspelt option), or lacking one it needs:
    one line naming the valid ones."""


def help_field(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a default and help text (shown by the CLI and the docs)."""
    if "default_factory" in kwargs:
        return dataclasses.field(metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def get_dotted(d: dict, key: str) -> Any:
    """``d["a"]["b"]`` for the key ``"a.b"`` (config.json's dotted keys, as the CLI names them)."""
    for part in key.split("."):
        d = d[part]
    return d


def has_dotted(d: dict, key: str) -> bool:
    """Whether ``d`` holds the dotted ``key``."""
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return False
        d = d[part]
    return True


def set_dotted(d: dict, key: str, value: Any) -> None:
    """Set the dotted ``key`` of ``d`` to ``value``, making the parents it lacks."""
    *parents, last = key.split(".")
    for part in parents:
        d = d.setdefault(part, {})
    d[last] = value


def refuse_invalid(what: str, problems: dict[str, bool]) -> None:
    """Raise one :class:`LayerswarmError` naming every problem (message -> whether it holds)."""
    found = [message for message, holds in problems.items() if holds]
    if found:
        raise LayerswarmError(f"invalid {what}: {'; '.join(found)}")


def refuse_first(problems: dict[str, bool]) -> None:
    """Raise :class:`LayerswarmError` with the first message whose problem holds (message ->
    whether it holds): one line naming the setting and how to fix it."""
    for message, holds in problems.items():
        if holds:
            raise LayerswarmError(message)


def flatten(d: dict[str, Any], prefix: str = "", lists: bool = False) -> dict[str, Any]:
    """``{"final": {"epochs": 3}}`` -> ``{"final.epochs": 3}``: non-empty dicts are opened,
    other values kept; with ``lists``, a list of dicts too (``data[0].seed``, compare's datasets)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + ".", lists))
        elif lists and isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            for i, x in enumerate(value):
                out.update(flatten(x, f"{name}[{i}].", lists))
        else:
            out[name] = value
    return out


def with_defaults(config: dict[str, Any], parts: dict[str, Any]) -> dict[str, Any]:
    """``config`` with each part ``key`` (a saved dict) read through ``parts[key]``, a JsonConfig
    class: settings added since it was saved take their defaults, so old files still compare equal."""
    out = dict(config)
    for key, cls in parts.items():
        if isinstance(out.get(key), dict):
            out[key] = cls.from_dict(out[key]).to_dict()
    return out


def merge_settings(cls: Any, defaults: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    """``saved`` (today's layout, keys left out) over ``defaults`` (every key of ``cls``): a
    group of settings is merged key by key, any other value (a dict of options too) replaced."""
    out = dict(defaults)
    nested = _nested(cls)
    for key, value in saved.items():
        group = nested.get(key)
        if group is not None and not group[1] and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_settings(group[0], out[key], value)
        else:
            out[key] = value
    return out


@functools.cache
def _nested(cls: Any) -> dict[str, tuple[Any, bool]]:
    """``{field: (JsonConfig class, is a list of them)}`` for the fields holding configs."""
    out = {}
    scope = vars(sys.modules[cls.__module__])
    for f in dataclasses.fields(cls):
        try:  # annotations are strings under ``from __future__ import annotations``
            hint = eval(f.type, scope) if isinstance(f.type, str) else f.type  # noqa: S307 - the class's own annotation
        except Exception:  # noqa: BLE001 - a name only imported for type checking: not a config
            continue
        name, inner, many = f.name, hint, typing.get_origin(hint) is list
        if many:
            inner = (typing.get_args(hint) or (None,))[0]
        if isinstance(inner, type) and issubclass(inner, JsonConfig):
            out[name] = (inner, many)
    return out


def leaf_fields(cls: Any) -> list[tuple[str, str, type, dataclasses.Field]]:
    """``(name, path, owner, field)`` of every setting of ``cls``, its groups opened: ``path`` is
    the dotted key (``optim.lr``), ``owner`` the class declaring ``field``, and ``name`` the key
    the setting had before the groups (``lr``), which the command line's options keep."""
    before = {new: old for old, new in getattr(cls, "moved", {}).items()}
    nested = _nested(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in nested and not nested[f.name][1]:
            for name, path, owner, leaf in leaf_fields(nested[f.name][0]):
                full = f"{f.name}.{path}"
                out.append((before.get(full, name), full, owner, leaf))
        else:
            out.append((before.get(f.name, f.name), f.name, cls, f))
    return out


class JsonConfig:
    """Mixin for dataclasses: ``to_dict`` / ``from_dict``, nested configs included.

    ``required`` names the keys a saved dict must have (the rest default), ``ignored`` the
    keys a saved file may hold beside the settings (a run's record); ``from_dict`` refuses any
    other key that is not a field, naming ``owner`` (e.g. "strategy 'l2sp'") and the valid keys.
    ``legacy`` maps a field (or a dotted key into a group) to the value a saved dict without it
    is read with, where that differs from today's default: what runs saved before the setting
    existed did. ``moved`` maps a key of an earlier, flat layout to its dotted place now
    (``"lr": "optim.lr"``): saved dicts of either layout read back the same.
    """

    required: ClassVar[tuple[str, ...]] = ()
    ignored: ClassVar[tuple[str, ...]] = ()
    legacy: ClassVar[dict[str, Any]] = {}
    moved: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def migrate(cls, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` (a saved dict of any layout) in today's layout, groups included: each key of
        the flat layout moved to its place. Nothing is filled in or checked; ``data`` is not changed."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
        for old, new in cls.moved.items():
            group = out.get(new.split(".")[0], {})
            if old in out and old not in names and isinstance(group, dict):  # else from_dict names the key
                set_dotted(out, new, out.pop(old))
        for name, (sub, many) in _nested(cls).items():  # type: ignore[arg-type]  # a class is hashable
            value = out.get(name)
            if many and isinstance(value, list):
                out[name] = [sub.migrate(v) if isinstance(v, dict) else v for v in value]
            elif isinstance(value, dict):
                out[name] = sub.migrate(value)
        return out

    @classmethod
    def current_key(cls, key: str) -> str:
        """A dotted key of this config in today's layout: an earlier key moves to its place
        (a run's ``fitness.lr`` -> ``fitness.optim.lr``), a current key comes back as it is."""
        head, dot, rest = key.partition(".")
        if head in cls.moved and head not in {f.name for f in dataclasses.fields(cls)}:  # type: ignore[arg-type]
            return cls.moved[head] + dot + rest
        nested = _nested(cls)  # type: ignore[arg-type]  # a class is hashable
        if rest and head in nested and not nested[head][1]:
            return f"{head}.{nested[head][0].current_key(rest)}"
        return key

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any], owner: str | None = None) -> T:
        data = cls.migrate(data)  # type: ignore[attr-defined]
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        what = owner or cls.__name__
        unknown = [k for k in data if k not in names and k not in cls.ignored]  # type: ignore[attr-defined]
        if unknown:
            keys = ", ".join(f"'{k}'" for k in unknown)
            raise UnknownKeyError(
                f"{what} has no option {keys} (unknown {cls.__name__} key): its options are "
                f"{', '.join(names) or 'none'}"
            )
        missing = [k for k in cls.required if k not in data]  # type: ignore[attr-defined]
        if missing:
            raise UnknownKeyError(f"{what} lacks {', '.join(map(repr, missing))}: not a saved {cls.__name__}")
        for key, value in cls.legacy.items():  # type: ignore[attr-defined]
            group = data.get(key.split(".")[0])
            if "." in key and group is not None and not isinstance(group, dict):
                continue  # a whole group given as its config: nothing of it is missing
            if not has_dotted(data, key):
                set_dotted(data, key, value)
        values = {k: v for k, v in data.items() if k in names}
        nested = _nested(cls)  # type: ignore[arg-type]  # a class is hashable
        for name, (sub, many) in nested.items():
            value = values.get(name)
            if many and isinstance(value, list):
                values[name] = [sub.from_dict(v) if isinstance(v, dict) else v for v in value]
            elif isinstance(value, dict):
                values[name] = sub.from_dict(value)
        return cls(**values)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
