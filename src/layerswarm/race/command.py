"""The race on a table or live, and the ``layerswarm race`` command's logic."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import LayerswarmError
from ..io import atomic_write_json
from .finals import add_final_tests
from .runner import RaceConfig, RaceRun, run_race
from .stats import format_summary, plot_race, summarise
from .table import FitnessTable, build_table, full_mask, load_table, pin_frozen, table_fitness

log = logging.getLogger(__name__)


def race_table(
    table_path: str | Path, cfg: RaceConfig, out_dir: str | Path, on_run: Callable[[RaceRun], None] | None = None
) -> dict[str, Any]:
    """The race on a fitness table: ``runs.json``, ``summary.json`` and ``race.png`` in ``out_dir``."""
    header, table = load_table(table_path)
    num_units = len(header["units"])
    table = pin_frozen(table, num_units, cfg.frozen_units)
    free = num_units - len(set(cfg.frozen_units))
    if len(table) < 2**free:
        raise LayerswarmError(
            f"the fitness table '{table_path}' has {len(table)} of the {2**free} masks this race needs; "
            "finish it with layerswarm race --build-table first, or pin more --frozen-units"
        )
    out = Path(out_dir)
    runs = run_race(cfg, free, table_fitness(table), on_run)
    summary = summarise(runs, cfg, optimum=max(table.values()))
    summary["race"] = cfg.to_dict()
    summary["table"] = {
        "path": str(table_path),
        "config": header["config"],
        "units": header["units"],
        "masks": len(table),
        "optimum_masks": sorted(k for k, v in table.items() if v == max(table.values())),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "runs.json", [r.to_dict() for r in runs])
    atomic_write_json(out / "summary.json", summary)
    title = f"{free} units searched, budget {cfg.budget} fitness evaluations, {cfg.seeds} seeds"
    plot_race(summary, out / "race.png", title=title)
    return summary


def race_real(
    run_cfg: Any,
    cfg: RaceConfig,
    out_dir: str | Path,
    on_run: Callable[[RaceRun], None] | None = None,
    on_entry: Callable[[dict], None] | None = None,
    table_path: str | Path | None = None,
) -> dict[str, Any]:
    """The race on the real fitness (:class:`FitnessTable`, one short fine-tune per new mask).

    Trained masks are shared across searchers and seeds through ``table_path`` (default
    ``out_dir/fitness.jsonl``; a mask is trained the first time any run meets it), yet each
    run is charged for every new mask it asks, as it would be alone. Interrupted, it resumes
    from that file: the runs replay the masks already trained. Expensive: see
    docs/results/searcher-race.md.
    """
    out = Path(out_dir)
    table = FitnessTable(run_cfg, table_path or out / "fitness.jsonl")
    table.on_entry = on_entry
    num_units = len(table.units)
    free = num_units - len(set(cfg.frozen_units))

    def fitness(sub_mask: list[int]) -> float:
        return table(full_mask(sub_mask, num_units, cfg.frozen_units))

    runs = run_race(cfg, free, fitness, on_run)
    summary = summarise(runs, cfg)
    summary["race"] = cfg.to_dict()
    summary["table"] = {"path": str(table.path), "units": table.units, "masks": len(table.table)}
    atomic_write_json(out / "runs.json", [r.to_dict() for r in runs])
    atomic_write_json(out / "summary.json", summary)
    plot_race(summary, out / "race.png", title=f"real fitness, budget {cfg.budget} evaluations")
    return summary


def race_command(
    run_cfg: Any,
    cfg: RaceConfig,
    table_path: str | Path,
    out_dir: str | Path,
    build: bool = False,
    final_seeds: int = 0,
    echo: Callable[[str], None] = log.info,
    live: bool = False,
) -> str:
    """``layerswarm race``: optionally finish the table, race on it (``live``: train masks as
    the searchers meet them, into the table), optionally fine-tune and test the best masks;
    writes ``out_dir`` and returns the summary as Markdown."""
    runs: list[RaceRun] = []
    if live:
        summary = race_real(
            run_cfg,
            cfg,
            out_dir,
            on_run=runs.append,
            table_path=table_path,
            on_entry=lambda r: echo(f"trained {r['mask']}: fitness {r['fitness']:.4f} ({r['seconds']:.1f}s)"),
        )
        return _with_finals(summary, runs, run_cfg, final_seeds, out_dir, echo)
    if build:
        build_table(
            run_cfg,
            table_path,
            on_entry=lambda r: echo(f"table: {r['mask']} fitness {r['fitness']:.4f} ({r['seconds']:.1f}s)"),
        )
    header, _ = load_table(table_path)
    # settings added since the table was built take their defaults (a table from before --pooling)
    if type(run_cfg.model).from_dict(header["config"]["model"]).to_dict() != run_cfg.model.to_dict():
        raise LayerswarmError(
            f"the table '{table_path}' is for model {header['config']['model']}; pass the same --model and "
            "--granularity"
        )
    summary = race_table(table_path, cfg, out_dir, on_run=runs.append)
    return _with_finals(summary, runs, run_cfg, final_seeds, out_dir, echo)


def _with_finals(
    summary: dict[str, Any],
    runs: list[RaceRun],
    run_cfg: Any,
    final_seeds: int,
    out_dir: str | Path,
    echo: Callable[[str], None],
) -> str:
    if final_seeds:
        add_final_tests(
            summary,
            runs,
            run_cfg,
            final_seeds,
            Path(out_dir) / "final_tests.jsonl",
            on_result=lambda r: echo(f"final {r['mask']}: test accuracy {r['test_accuracy']:.4f}"),
        )
        atomic_write_json(Path(out_dir) / "summary.json", summary)
    return format_summary(summary)
