"""Named failure points: faults injected on purpose, to see a run survive them (as the ``fail``
crate and FreeBSD's fail(9) do).

Off unless the environment variable ``LAYERSWARM_FAILPOINTS`` is set: each point then costs
one look-up of the environment where it is passed (once per evaluation, file write or
fine-tune, never per training step). Its value is a comma-separated list of
``POINT=ACTION[@N]``:

``evaluate=raise:ERROR``
    every fitness evaluation raises ERROR (``@N``: the N-th evaluation attempt only)
``write=raise:ERROR@N``
    the run's N-th file write raises ERROR (without ``@N``: every write)
``loss=nan@N``
    the loss becomes NaN at the N-th optimizer step of each fine-tune (without ``@N``: the first)

ERROR is a built-in exception (``TypeError``, ``MemoryError``, ``OSError``, ...) or an errno
name (``ENOSPC``, ``EACCES``, ``EIO``), which raises ``OSError`` with that errno. Counts are
per process: a resumed run counts from zero again. docs/guides/faults.md lists what each
fault shows the user and what a resume then gives.
"""

from __future__ import annotations

import builtins
import errno
import os
from collections import Counter
from dataclasses import dataclass

from ..errors import LayerswarmError

ENV = "LAYERSWARM_FAILPOINTS"
ACTIONS = {"evaluate": ("raise",), "write": ("raise",), "loss": ("nan",)}
USAGE = "use POINT=ACTION[@N], e.g. evaluate=raise:TypeError, write=raise:ENOSPC@3, loss=nan@5"


@dataclass(frozen=True)
class Failpoint:
    point: str
    action: str  # "raise" or "nan"
    error: str | None  # what "raise" raises: an exception or errno name
    nth: int | None  # only the N-th pass through the point; None: every pass
    spec: str  # as written, for the message of what it raises

    def exception(self, filename: str | None = None) -> Exception:
        """The exception this point raises (``filename``: the file a write was for)."""
        note = f"injected by {ENV} {self.spec}"
        code = getattr(errno, self.error, None) if self.error.startswith("E") else None
        if isinstance(code, int):
            return OSError(code, f"{os.strerror(code)} ({note})", filename)
        return getattr(builtins, self.error)(note)


_parsed: tuple[str, dict[str, Failpoint]] = ("", {})
_passes: Counter = Counter()


def parse(text: str) -> dict[str, Failpoint]:
    """``LAYERSWARM_FAILPOINTS``'s value as point -> :class:`Failpoint`; a malformed one raises
    :class:`LayerswarmError` naming what is wrong."""
    points = {}
    for spec in filter(None, (s.strip() for s in text.split(","))):
        point, _, rest = spec.partition("=")
        action, _, nth = rest.partition("@")
        action, _, error = action.partition(":")
        if point not in ACTIONS:
            raise LayerswarmError(
                f"{ENV}: unknown point '{point}' in '{spec}': the points are {', '.join(ACTIONS)}; {USAGE}"
            )
        if action not in ACTIONS[point]:
            raise LayerswarmError(f"{ENV}: '{spec}': point {point} takes {' or '.join(ACTIONS[point])}; {USAGE}")
        if action == "raise" and not _raisable(error):
            raise LayerswarmError(
                f"{ENV}: '{spec}': '{error}' is neither a built-in exception nor an errno name; {USAGE}"
            )
        if nth and not (nth.isdigit() and int(nth) >= 1):
            raise LayerswarmError(f"{ENV}: '{spec}': @{nth} must be a count from 1; {USAGE}")
        points[point] = Failpoint(point, action, error or None, int(nth) if nth else None, spec)
    return points


def _raisable(name: str) -> bool:
    if name.startswith("E") and isinstance(getattr(errno, name, None), int):
        return True
    cls = getattr(builtins, name, None)
    return isinstance(cls, type) and issubclass(cls, Exception)


def armed(point: str) -> Failpoint | None:
    """The failpoint set on ``point``, or None (always, when the variable is unset)."""
    global _parsed
    text = os.environ.get(ENV)
    if not text:
        return None
    if _parsed[0] != text:  # a new setting counts its passes from zero
        _parsed = (text, parse(text))
        _passes.clear()
    return _parsed[1].get(point)


def check_environment() -> None:
    """Refuse a malformed ``LAYERSWARM_FAILPOINTS`` before any work (one line)."""
    armed("evaluate")


def pass_point(point: str, filename: str | None = None) -> None:
    """Count one pass through ``point``; raise its exception on the pass it names."""
    failpoint = armed(point)
    if failpoint is None:
        return
    _passes[point] += 1
    if failpoint.nth is None or _passes[point] == failpoint.nth:
        raise failpoint.exception(filename)


def nan_loss_step() -> int | None:
    """The optimizer step (from 1) of every fine-tune whose loss becomes NaN; None: none."""
    failpoint = armed("loss")
    return None if failpoint is None else failpoint.nth or 1
