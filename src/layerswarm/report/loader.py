"""Read what runs left on disk: a search run folder, or a folder of many runs (a comparison).

Any folder below the root that holds ``final/metrics.json`` (or ``metrics.json`` with an
``epochs`` list) is a fine-tune run; one that holds ``evaluations.jsonl`` or
``best_mask.json`` is a search run. Nothing here assumes the layout of a comparison folder
beyond that, so the report reads whatever ``compare`` writes, and reads a single search run
or a folder of hand-run ``finetune`` outputs the same way.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.config import dataset_label
from ..errors import LayerswarmError
from ..io import read_jsonl

COMPARE_TABLE = "results.csv"
COMPARE_MARKDOWN = "results.md"  # the same table, formatted (mean ± std in %): shown when present
COMPARE_CONFIG = "compare.json"  # written by layerswarm.run.compare
SKIP_DIRS = {"tensorboard", "figures", "__pycache__"}


def _read_json(path: Path) -> Any:
    """JSON or ``None`` when absent or torn (a run still being written)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class RunRecord:
    """One run's files, parsed."""

    path: Path
    name: str  # path relative to the report root ('.' for the root itself)
    config: dict | None = None
    metrics: dict | None = None  # final/metrics.json
    evaluations: list[dict] = field(default_factory=list)  # the search's (evaluations.jsonl without a phase)
    selection: list[dict] = field(default_factory=list)  # the final selection's re-evaluations (phase "selection")
    baselines: dict | None = None  # baselines/summary.json: the searched mask's test accuracy next to the baselines'
    best_mask: dict | None = None
    state: dict | None = None  # search_state.json
    run_info: dict | None = None  # run.json of a comparison run (dataset label, strategy, repeat)

    @property
    def is_search(self) -> bool:
        return bool(self.evaluations) or self.best_mask is not None

    @property
    def strategy(self) -> str:
        """The comparison's name for the run, else 'pso' (or the searcher's name) for a search
        run, else the fine-tune strategy."""
        if (self.run_info or {}).get("strategy"):
            return str(self.run_info["strategy"])
        if self.is_search:
            search = (self.config or {}).get("search") or {}
            # the searcher's name: search.method.name, or search.searcher in a run of the flat layout
            name = (search.get("method") or {}).get("name") or search.get("searcher")
            return str(name or (self.best_mask or {}).get("searcher") or "pso")
        return str((self.metrics or {}).get("strategy") or "run")

    @property
    def dataset(self) -> str:
        if (self.run_info or {}).get("dataset"):
            return str(self.run_info["dataset"])
        return dataset_label(((self.config or {}).get("data") or {}).get("data") or (self.metrics or {}).get("dataset"))

    @property
    def units(self) -> list[str]:
        for source in (self.best_mask, self.metrics):
            if source and source.get("units"):
                return list(source["units"])
        if self.evaluations:
            return [str(i) for i in range(len(self.evaluations[0].get("mask") or []))]
        return []

    @property
    def mask(self) -> list[int] | None:
        """The searched mask (search runs) or the mask the fine-tune used, if any."""
        for source in (self.best_mask, self.metrics):
            if source and source.get("mask") is not None:
                return [int(b) for b in source["mask"]]
        return None

    @property
    def lr_multipliers(self) -> list[float] | None:
        """Each unit's learning-rate multiplier of a ``--space lr`` plan (0: frozen), else None."""
        for source in (self.best_mask, self.metrics):
            if source and source.get("lr_multipliers") is not None:
                return [float(r) for r in source["lr_multipliers"]]
        return None

    @property
    def history(self) -> list[dict]:
        """Per-generation summaries: the searcher's own, else rebuilt from the evaluations."""
        for source in (self.state, self.best_mask):
            rows = (source or {}).get("history")
            if rows:
                return [{k: _as_float(v) if k.endswith("fitness") else v for k, v in r.items()} for r in rows]
        return generation_summaries(self.evaluations)

    @property
    def test_curve(self) -> list[tuple[int, float]]:
        """(epoch, test accuracy) of the final fine-tune, where the test split was evaluated."""
        epochs = (self.metrics or {}).get("epochs") or []
        return [(int(e["epoch"]), float(e["test_accuracy"])) for e in epochs if e.get("test_accuracy") is not None]

    @property
    def test_accuracy(self) -> float | None:
        value = (self.metrics or {}).get("test_accuracy")
        return None if value is None else float(value)

    @property
    def seconds(self) -> float | None:
        """Wall time: the search's evaluations plus the final fine-tune."""
        if (self.metrics or {}).get("wall_seconds") is not None:  # set-up (a search) included
            return float(self.metrics["wall_seconds"])
        total = sum(float(e.get("seconds") or 0.0) for e in self.evaluations)
        total += float((self.metrics or {}).get("seconds") or 0.0)
        return total or None


def _as_float(value: Any) -> float:
    if value is None:
        return -math.inf
    return float(value)  # also parses the "-inf" strings of searcher checkpoints


def generation_summaries(evaluations: list[dict]) -> list[dict]:
    """Best-so-far and mean (finite) fitness per generation, from ``evaluations.jsonl``."""
    by_gen: dict[int, list[float]] = {}
    for e in evaluations:
        by_gen.setdefault(int(e.get("generation", 0)), []).append(_as_float(e.get("fitness")))
    rows, best = [], -math.inf
    for gen in sorted(by_gen):
        values = by_gen[gen]
        finite = [v for v in values if math.isfinite(v)]
        best = max([best, *values])
        rows.append(
            {
                "generation": gen,
                "best_fitness": best,
                "mean_fitness": statistics.fmean(finite) if finite else -math.inf,
                "max_fitness": max(values),
                "failed": len(values) - len(finite),
            }
        )
    return rows


def load_run(path: Path, root: Path) -> RunRecord:
    """Parse one run folder; every file is optional."""
    metrics = _read_json(path / "final" / "metrics.json")
    if metrics is None and (path / "metrics.json").is_file():
        metrics = _read_json(path / "metrics.json")
    rel = os.path.relpath(path, root)
    records = read_jsonl(path / "evaluations.jsonl")
    return RunRecord(
        path=path,
        name=rel,
        config=_read_json(path / "config.json"),
        metrics=metrics if isinstance(metrics, dict) else None,
        evaluations=[r for r in records if not r.get("phase")],
        selection=[r for r in records if r.get("phase") == "selection"],
        baselines=_read_json(path / "baselines" / "summary.json"),
        best_mask=_read_json(path / "best_mask.json"),
        state=_read_json(path / "search_state.json"),
        run_info=_read_json(path / "run.json"),
    )


def _is_run_dir(path: Path) -> bool:
    if (path / "evaluations.jsonl").is_file() or (path / "best_mask.json").is_file():
        return True
    if (path / "final" / "metrics.json").is_file():
        return True
    metrics = path / "metrics.json"
    if path.name != "final" and metrics.is_file():
        data = _read_json(metrics)
        return isinstance(data, dict) and "epochs" in data
    return False


def find_runs(root: Path) -> list[Path]:
    """Run folders at or below ``root``, in sorted path order."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        path = Path(dirpath)
        if _is_run_dir(path):
            found.append(path)
            dirnames[:] = [d for d in dirnames if d != "final"]
    return found


@dataclass
class ReportData:
    """Everything the report shows."""

    root: Path
    runs: list[RunRecord]
    compare_table: list[dict[str, str]] | None = None  # rows of results.md / results.csv, when present
    compare_source: str | None = None  # which of the two
    compare_config: dict | None = None

    @property
    def search_runs(self) -> list[RunRecord]:
        return [r for r in self.runs if r.is_search]

    @property
    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.runs})

    def curves(self) -> dict[str, dict[str, list[list[tuple[int, float]]]]]:
        """dataset -> strategy -> test-accuracy curves (one per repeat), search runs first."""
        out: dict[str, dict[str, list[list[tuple[int, float]]]]] = {}
        for run in sorted(self.runs, key=lambda r: (not r.is_search, r.strategy)):
            if run.test_curve:
                out.setdefault(run.dataset, {}).setdefault(run.strategy, []).append(run.test_curve)
        return out

    def summary_table(self) -> list[dict[str, Any]]:
        """Per (dataset, strategy): repeats, mean/std test accuracy, accuracy at epoch 5, time."""
        groups: dict[tuple[str, str], list[RunRecord]] = {}
        for run in self.runs:
            if run.test_accuracy is not None:
                groups.setdefault((run.dataset, run.strategy), []).append(run)
        rows = []
        for (dataset, strategy), runs in sorted(
            groups.items(), key=lambda kv: (kv[0][0], -_mean([r.test_accuracy for r in kv[1]]))
        ):
            accs = [r.test_accuracy for r in runs]
            at5 = [dict(r.test_curve).get(5) for r in runs]
            at5 = [a for a in at5 if a is not None]
            secs = [r.seconds for r in runs if r.seconds]
            rows.append(
                {
                    "dataset": dataset,
                    "strategy": strategy,
                    "runs": len(runs),
                    "test accuracy": _mean(accs),
                    "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "test acc @5 ep": _mean(at5) if at5 else None,
                    "epochs": max((r.test_curve[-1][0] if r.test_curve else 0) for r in runs),
                    "seconds/run": _mean(secs) if secs else None,
                }
            )
        return rows


def _mean(values: list) -> float:
    return statistics.fmean(values) if values else float("nan")


def read_markdown_table(text: str) -> list[dict[str, str]] | None:
    """Rows of the first pipe table in ``text`` (header, separator, rows), or ``None``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
    if len(lines) < 2:
        return None

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    head = cells(lines[0])
    return [dict(zip(head, cells(ln), strict=False)) for ln in lines[2:]]


def read_compare_table(root: Path) -> tuple[list[dict[str, str]] | None, str | None]:
    """The comparison table and the file it came from: ``results.md``, else ``results.csv``."""
    md = root / COMPARE_MARKDOWN
    if md.is_file():
        rows = read_markdown_table(md.read_text(encoding="utf-8"))
        if rows:
            return rows, COMPARE_MARKDOWN
    path = root / COMPARE_TABLE
    if not path.is_file():
        return None, None
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh)), COMPARE_TABLE


def load_report_data(root: str | Path) -> ReportData:
    """Read every run at or below ``root``; raise a one-line error when there is none."""
    root = Path(root)
    if not root.is_dir():
        raise LayerswarmError(f"'{root}' is not a folder: pass the --out folder of a search or a comparison")
    runs = [load_run(p, root) for p in find_runs(root)]
    table, source = read_compare_table(root)
    if not runs and table is None:
        raise LayerswarmError(
            f"no runs in '{root}': expected config.json/evaluations.jsonl or final/metrics.json "
            "(pass the --out folder of 'layerswarm search' or 'layerswarm compare')"
        )
    compare_config = _read_json(root / COMPARE_CONFIG)
    return ReportData(root=root, runs=runs, compare_table=table, compare_source=source, compare_config=compare_config)
