"""Atomic file writes: a result on disk is either complete or absent, never half-written.

A write that fails (a full disk, a folder made read-only) raises :class:`WriteFailed`: one
line naming the file and the fix; what was written before stays as it was.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import RunFailed
from .run.failpoints import pass_point

FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


class WriteFailed(RunFailed):
    """A file of a run could not be written: which, why, and what to do."""

    def __init__(self, path: Path, err: OSError) -> None:
        why = err.strerror or str(err)
        name = errno.errorcode.get(err.errno or 0, "")
        if err.errno in FULL:
            fix = f"free space on the disk of '{path.parent}' (or give the run more quota)"
        elif err.errno in DENIED:
            fix = f"make '{path.parent}' writable for this user"
        else:
            fix = f"check the disk and the folder '{path.parent}'"
        super().__init__(f"cannot write '{path}': {why}{f' ({name})' if name else ''}: {fix}")
        self.path = path


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Count the write (the ``write`` failpoint, :mod:`layerswarm.run.failpoints`) and turn an
    ``OSError`` into :class:`WriteFailed`."""
    try:
        pass_point("write", str(path))
        yield
    except OSError as err:
        raise WriteFailed(path, err) from err


def _umask() -> int:
    """The process umask: from /proc where there is one (no window in which another thread
    would create files with a different umask), else by setting it and putting it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open()`` would give a new file: 0o666 less the umask. ``mkstemp``
    creates 0o600, so atomic writes set this explicitly (teammates can read the results)."""
    return 0o666 & ~_umask()


def atomic_write_with(path: str | Path, write: Callable[[str], object]) -> None:
    """``write(tmp)`` writes a temporary file beside ``path``, which then replaces ``path``
    (``os.replace``): readers see the old file or the new one, never a part."""
    path = Path(path)
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            write(tmp)
            os.chmod(tmp, file_mode())  # mkstemp (and safetensors) create 0o600
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one JSON line and fsync, so a crash loses at most the line being written."""
    path = Path(path)
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file, ignoring a torn last line left by a crash."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records
