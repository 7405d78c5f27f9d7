"""Name -> implementation tables (searchers, strategies, executor backends), one helper for all.

A :class:`Registry` is a dict that refuses a second, different entry under a taken name and
answers an unknown name with one line naming the close matches and every known name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TypeVar

from .errors import LayerswarmError

T = TypeVar("T")


class Registry(dict[str, T]):
    """Entries of one ``kind`` ("searcher", "strategy", "backend") by name."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name``; the same entry again is a no-op, another one an error."""
        existing = self.get(name)
        if existing is not None and existing is not entry:
            owner = getattr(existing, "__qualname__", repr(existing))
            raise LayerswarmError(
                f"{self.kind} name {name!r} is already taken by {owner}; register yours under another name"
            )
        self[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda entry: self.add(name, entry)

    def lookup(self, name: str) -> T:
        """The entry ``name``, or one line with the close matches and every known name."""
        if name not in self:
            close = difflib.get_close_matches(name, self, n=2)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise LayerswarmError(f"unknown {self.kind} '{name}'{hint}: choose from {', '.join(sorted(self))}")
        return self[name]
