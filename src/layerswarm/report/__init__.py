"""The report of a search or a comparison: figures (PNG) and a self-contained ``report.html``.

Needs matplotlib (``pip install layerswarm[report]``); imported lazily by the CLI and the search.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import LayerswarmError


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``DIR/report.html`` and ``DIR/figures/*.png``; return the HTML's path."""
    try:
        from .html import write_report as _write
    except ImportError as err:  # matplotlib lives in the optional 'report' extra
        raise LayerswarmError(
            f"the report needs matplotlib ({err.name} is missing): pip install 'layerswarm[report]'"
        ) from err
    return _write(run_dir, out)


def try_write_report(run_dir: str | Path) -> Path | None:
    """:func:`write_report` for the end of a search or comparison: a report that fails (no
    matplotlib, a plotting bug) is logged as a warning and never fails the finished run."""
    log = logging.getLogger(__name__)
    try:
        path = write_report(run_dir)
    except Exception as err:  # noqa: BLE001 - the run's results are already safe on disk
        log.warning("no report written for %s (%s); retry with: layerswarm report %s", run_dir, err, run_dir)
        return None
    log.info("report: %s", path)
    return path


__all__ = ["try_write_report", "write_report"]
