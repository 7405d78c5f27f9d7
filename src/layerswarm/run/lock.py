"""One writer per run folder: a run holds an exclusive ``flock`` on ``DIR/.layerswarm.lock``.

The kernel releases the lock when its process ends, however it ends (SIGKILL included), so a
killed run never leaves a stale lock behind; the file stays, holding the last holder's pid.
A second process on the same folder (``--resume DIR`` twice, two jobs of a scheduler array)
is refused with one line naming the holder's process id.

:func:`one_writer` makes a function the scope of the locks it takes with
:func:`lock_run_folder`: they are released when it returns or raises, so that one process may
run one folder after another (a library caller, a test).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import LayerswarmError
from ..io import WriteFailed

log = logging.getLogger(__name__)

LOCK_FILE = ".layerswarm.lock"
PROBE_TRIES = 4

F = TypeVar("F", bound=Callable)

_held: dict[Path, int] = {}  # folder (resolved) -> file descriptor holding its lock
_scopes: list[list[Path]] = []  # per active one_writer call: the folders it locked


def _lock_path(out: Path) -> Path:
    return out / LOCK_FILE


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    pid = os.read(fd, 32).decode("ascii", "replace").strip()
    return f"process {pid}" if pid.isdigit() else "another process"


def _busy(out: Path, holder: str) -> LayerswarmError:
    return LayerswarmError(
        f"'{out}' is in use by another layerswarm run ({holder}): wait for it to end, or stop "
        f"it, then continue with: layerswarm search --resume {out}"
    )


def lock_run_folder(out: str | Path) -> None:
    """Take ``out``'s lock (``out`` exists), or raise :class:`LayerswarmError` naming its holder.
    Held until the enclosing :func:`one_writer` call ends (else until the process ends)."""
    out = Path(out)
    key = out.resolve()
    if key in _held:
        return
    try:
        fd = os.open(_lock_path(out), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise WriteFailed(_lock_path(out), err) from err
    for attempt in range(PROBE_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt + 1 == PROBE_TRIES:
                holder = _holder(fd)
                os.close(fd)
                raise _busy(out, holder) from None
            time.sleep(0.05)  # another process's refuse_if_locked holds it for a moment only
        except OSError as err:  # a file system without locks (some network mounts)
            log.warning("cannot lock '%s' (%s): make sure no other run writes this folder", out, err.strerror)
            break
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    _held[key] = fd
    if _scopes:
        _scopes[-1].append(key)


def refuse_if_locked(out: str | Path) -> None:
    """Raise when another process holds ``out``'s lock; takes nothing (a cheap early check)."""
    out = Path(out)
    if out.resolve() in _held or not _lock_path(out).is_file():
        return
    try:
        fd = os.open(_lock_path(out), os.O_RDONLY)
    except OSError:
        return  # unreadable: lock_run_folder will say what is wrong
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(out, _holder(fd)) from None
    except OSError:
        pass  # no locks on this file system: lock_run_folder says so
    finally:
        os.close(fd)  # closing releases the shared lock taken to test it


def _release(key: Path) -> None:
    fd = _held.pop(key, None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


def one_writer(func: F) -> F:
    """Decorator: the run folders ``func`` locks are released when it returns or raises."""

    @functools.wraps(func)
    def locked(*args, **kwargs):
        _scopes.append([])
        try:
            return func(*args, **kwargs)
        finally:
            for key in _scopes.pop():
                _release(key)

    return locked  # type: ignore[return-value]
