"""Config dataclasses round-trip to JSON (as peft's configs do) and carry help text."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from .errors import LayerswarmError

T = TypeVar("T")


class UnknownKeyError(LayerswarmError, ValueError):
    """A config given a key it does not have (a misspelt option): one line naming the valid ones."""


def help_field(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a default and help text (shown by the CLI and the docs)."""
    if "default_factory" in kwargs:
        return dataclasses.field(metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def with_defaults(config: dict[str, Any], parts: dict[str, Any]) -> dict[str, Any]:
    """``config`` with each part ``key`` (a saved dict) read through ``parts[key]``, a JsonConfig
    class: settings added since it was saved take their defaults, so old files still compare equal."""
    out = dict(config)
    for key, cls in parts.items():
        if isinstance(out.get(key), dict):
            out[key] = cls.from_dict(out[key]).to_dict()
    return out


class JsonConfig:
    """Mixin for dataclasses: ``to_dict`` / ``from_dict`` with unknown keys rejected."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            raise UnknownKeyError(f"unknown {cls.__name__} keys {sorted(unknown)}: use {', '.join(sorted(names)) or 'none'}")
        return cls(**data)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
