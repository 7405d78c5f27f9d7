"""The searcher race: every searcher, the same budget in fitness-epochs, best fitness vs spent.

Two ways to pay for fitness:

* real: :class:`MemoFitness` around :class:`~layerswarm.fitness.MaskFitness`, so that a mask
  asked again (PSO re-visits masks often) costs nothing, as it would with a result cache;
* a lookup table: :func:`build_table` evaluates *every* mask once with the real fitness
  (affordable for ``--granularity stage``: 8 units, 256 masks) and :func:`table_fitness`
  answers from it. The race then replays each searcher many times at no training cost, and
  since the table holds the real fitness, a searcher sees exactly what it would see live.

Budget accounting: a *new* mask costs ``fitness_epochs``; a repeated one costs nothing. A
searcher is stopped when its next new mask would exceed the budget, or when it is done.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config_utils import JsonConfig, help_field, with_defaults
from .errors import LayerswarmError
from .io import append_jsonl, atomic_write_json, read_jsonl

log = logging.getLogger(__name__)

__all__ = [
    "BudgetSpent",
    "FitnessTable",
    "MemoFitness",
    "RaceConfig",
    "RaceRun",
    "all_masks",
    "build_table",
    "final_tests",
    "full_mask",
    "pin_frozen",
    "race_real",
    "load_table",
    "mask_key",
    "plot_race",
    "parse_entry",
    "race_command",
    "race_once",
    "race_table",
    "run_race",
    "searcher_config",
    "summarise",
    "table_fitness",
]


def mask_key(mask: Sequence[int]) -> str:
    """A mask as a bit string, unit 0 first: ``[1, 0, 1] -> "101"``."""
    return "".join(str(int(b)) for b in mask)


def all_masks(num_units: int) -> list[list[int]]:
    """All 2^L masks in a fixed order (binary counting, unit 0 the most significant bit)."""
    return [list(bits) for bits in itertools.product((0, 1), repeat=num_units)]


# --- fitness with a budget ---


class BudgetSpent(Exception):
    """Raised by :class:`MemoFitness` when a new mask would exceed the budget."""


class MemoFitness:
    """Memoised fitness with an epoch budget: only new masks are paid for.

    ``fitness(mask) -> float`` is any function (a :class:`MaskFitness` call, a table lookup).
    ``trace`` holds ``(epochs spent, best fitness so far)`` after every paid evaluation.
    """

    def __init__(
        self,
        fitness: Callable[[list[int]], float],
        epochs_per_eval: int = 1,
        budget_epochs: float = math.inf,
    ) -> None:
        self.fitness = fitness
        self.epochs_per_eval = epochs_per_eval
        self.budget_epochs = budget_epochs
        self.cache: dict[str, float] = {}
        self.spent = 0
        self.best = -math.inf
        self.best_mask: list[int] | None = None
        self.trace: list[tuple[int, float]] = []

    def __call__(self, mask: Sequence[int]) -> float:
        key = mask_key(mask)
        if key in self.cache:
            return self.cache[key]
        if self.spent + self.epochs_per_eval > self.budget_epochs:
            raise BudgetSpent(key)
        value = float(self.fitness(list(mask)))
        self.cache[key] = value
        self.spent += self.epochs_per_eval
        if value > self.best:
            self.best, self.best_mask = value, [int(b) for b in mask]
        self.trace.append((self.spent, self.best))
        return value


# --- the real-fitness table ---


# What a fitness value depends on; search, speed and final settings do not change it.
_FITNESS_KEYS = ("model", "data", "fitness", "seed")


def _table_header(run_cfg: Any, units: list[str]) -> dict[str, Any]:
    config = run_cfg.to_dict()
    return {"kind": "header", "config": {k: config[k] for k in _FITNESS_KEYS}, "units": units}


def _fitness_part(header: dict[str, Any]) -> dict[str, Any]:
    """A stored header reduced to what fitness depends on (older files stored the whole config)."""
    from .bundle import ModelConfig
    from .data import DataConfig
    from .training import TrainConfig

    config = with_defaults(header.get("config", {}), {"model": ModelConfig, "data": DataConfig, "fitness": TrainConfig})
    return {**header, "config": {k: config.get(k) for k in _FITNESS_KEYS}}


class FitnessTable:
    """The real fitness of masks, each trained once and kept in the JSONL file ``path``.

    ``run_cfg`` is a :class:`~layerswarm.search.RunConfig` (model, data, fitness epochs,
    seed); data and model are loaded once. One line per mask, appended as it finishes, so
    an interrupted build resumes where it stopped; a file built with another configuration
    is refused.
    """

    def __init__(self, run_cfg: Any, path: str | Path) -> None:
        from .bundle import build_bundle
        from .data import load_dataset
        from .fitness import MaskFitness

        self.path = Path(path)
        rows = read_jsonl(self.path)
        data = load_dataset(run_cfg.data)
        bundle = build_bundle(run_cfg.model, data.num_classes, run_cfg.fitness, seed=run_cfg.seed)
        self.units = [u.name for u in bundle.units]
        header = _table_header(run_cfg, self.units)
        if rows and _fitness_part(rows[0]) != _fitness_part(header):
            raise LayerswarmError(
                f"'{self.path}' holds a fitness table for another configuration; "
                "pass another --table path or delete that file"
            )
        if not rows:
            append_jsonl(self.path, header)
        self.table: dict[str, float] = {r["mask"]: r["fitness"] for r in rows[1:]}
        self.evaluator = MaskFitness(bundle, data.for_search(), run_cfg.fitness)
        self.on_entry: Callable[[dict], None] | None = None

    def __call__(self, mask: Sequence[int]) -> float:
        key = mask_key(mask)
        if key not in self.table:
            ev = self.evaluator([int(b) for b in mask])
            row = {"kind": "entry", "mask": key, "fitness": ev.fitness, "seconds": round(ev.seconds, 3)}
            append_jsonl(self.path, row)
            self.table[key] = ev.fitness
            if self.on_entry is not None:
                self.on_entry(row)
        return self.table[key]


def build_table(
    run_cfg: Any,
    path: str | Path,
    masks: Sequence[Sequence[int]] | None = None,
    on_entry: Callable[[dict], None] | None = None,
) -> dict[str, float]:
    """Evaluate the real fitness of ``masks`` (default: all 2^L, in binary counting order,
    so that a partial table is complete over the last units) into the JSONL file ``path``."""
    table = FitnessTable(run_cfg, path)
    table.on_entry = on_entry
    for mask in masks if masks is not None else all_masks(len(table.units)):
        table(mask)
    return dict(table.table)


def load_table(path: str | Path) -> tuple[dict[str, Any], dict[str, float]]:
    """The header (configuration, unit names) and ``{mask bits: fitness}`` of a table file."""
    rows = read_jsonl(path)
    if not rows or rows[0].get("kind") != "header":
        raise LayerswarmError(f"'{path}' is not a fitness table; build one with layerswarm race --build-table")
    return rows[0], {r["mask"]: float(r["fitness"]) for r in rows[1:] if r.get("kind") == "entry"}


def table_fitness(table: dict[str, float]) -> Callable[[list[int]], float]:
    """A fitness function answered from ``table``; a missing mask is a clear error."""

    def fitness(mask: list[int]) -> float:
        key = mask_key(mask)
        if key not in table:
            raise LayerswarmError(
                f"mask {key} is not in the fitness table; finish building it (layerswarm race --build-table)"
            )
        return table[key]

    return fitness


# --- racing searchers ---


@dataclass
class RaceConfig(JsonConfig):
    """What races: the searchers, the budget in fitness evaluations, the seeds."""

    searchers: list = help_field(
        None, "searchers to race", default_factory=lambda: ["pso", "random", "tpe", "ga", "greedy", "exhaustive"]
    )
    budget: int = help_field(120, "fitness evaluations per searcher run (PSO's n x G = 120)")
    fitness_epochs: int = help_field(1, "epochs of one fitness evaluation (the budget unit)")
    batch_size: int = help_field(10, "masks per ask where a searcher batches (PSO's swarm size)")
    seeds: int = help_field(20, "runs per searcher, seeds 0..seeds-1")
    reference: str = help_field("pso", "the searcher whose best fitness the others must reach")
    frozen_units: list = help_field(
        None, "units pinned to frozen and not searched (race a sub-space)", default_factory=list
    )


@dataclass
class RaceRun:
    """One searcher run: its best-so-far after every paid evaluation."""

    searcher: str
    seed: int
    trace: list = field(default_factory=list)  # [[epochs spent, best fitness so far], ...]
    best_mask: list = field(default_factory=list)
    best_fitness: float = -math.inf
    spent: int = 0  # fitness-epochs paid (new masks only)
    asked: int = 0  # masks told, repeats included

    def best_at(self, epochs: float) -> float:
        """Best fitness after at most ``epochs`` fitness-epochs (-inf before the first)."""
        best = -math.inf
        for spent, value in self.trace:
            if spent > epochs:
                break
            best = value
        return best

    def epochs_to_reach(self, target: float) -> float:
        """Fitness-epochs spent when the best first reached ``target`` (inf: never)."""
        for spent, value in self.trace:
            if value >= target:
                return float(spent)
        return math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"searcher": self.searcher, "seed": self.seed, "trace": self.trace,
                "best_mask": self.best_mask, "best_fitness": self.best_fitness,
                "spent": self.spent, "asked": self.asked}


def searcher_config(name: str, budget: int, batch_size: int | None = None) -> dict[str, Any]:
    """The options ``layerswarm search --searcher NAME --budget B`` uses (see searchers)."""
    from .searchers import config_for_budget

    return config_for_budget(name, budget, batch_size)


def parse_entry(entry: str) -> tuple[str, dict[str, Any]]:
    """``"greedy:start=random/kick=3"`` -> ``("greedy", {"start": "random", "kick": 3})``:
    a searcher raced with options on top of its budget config (values read as JSON if they can be)."""
    import json

    name, _, rest = entry.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split("/")):
        key, eq, value = item.partition("=")
        if not eq:
            raise LayerswarmError(f"race entry {entry!r}: write options as NAME:key=value/key=value")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value.strip()
    return name.strip(), options


def race_once(
    name: str,
    num_units: int,
    fitness: Callable[[list[int]], float],
    budget: int,
    seed: int,
    fitness_epochs: int = 1,
    batch_size: int | None = 10,
) -> RaceRun:
    """Run searcher ``name`` (configured from ``budget``) until done or the budget is spent."""
    from .searchers import create_searcher

    base, options = parse_entry(name)
    config = {**searcher_config(base, budget, batch_size), **options}
    searcher = create_searcher(base, num_units, config, seed=seed)
    memo = MemoFitness(fitness, fitness_epochs, budget * fitness_epochs)
    asked = 0
    try:
        while not searcher.is_done():
            for trial in searcher.ask():
                searcher.tell(trial.number, memo(trial.mask))
                asked += 1
    except BudgetSpent:
        pass  # the next new mask would exceed the budget: the run ends here
    return RaceRun(name, seed, [list(t) for t in memo.trace], memo.best_mask or [],
                   memo.best, memo.spent, asked)


def run_race(
    cfg: RaceConfig,
    num_units: int,
    fitness: Callable[[list[int]], float],
    on_run: Callable[[RaceRun], None] | None = None,
) -> list[RaceRun]:
    """Every searcher of ``cfg`` on ``fitness`` with seeds ``0..cfg.seeds-1``."""
    runs = []
    for name in cfg.searchers:
        for seed in range(cfg.seeds):
            run = race_once(name, num_units, fitness, cfg.budget, seed, cfg.fitness_epochs, cfg.batch_size)
            runs.append(run)
            if on_run is not None:
                on_run(run)
    return runs


def summarise(runs: list[RaceRun], cfg: RaceConfig, optimum: float | None = None) -> dict[str, Any]:
    """Per searcher: mean best-so-far curve, final best, and the budget it needs to match
    the reference searcher's mean final best (the race's target)."""
    budget = cfg.budget * cfg.fitness_epochs
    grid = list(range(cfg.fitness_epochs, budget + 1, cfg.fitness_epochs))
    by_name: dict[str, list[RaceRun]] = {}
    for run in runs:
        by_name.setdefault(run.searcher, []).append(run)
    curves = {
        name: [float(np.mean([_floor(r.best_at(b)) for r in rs])) for b in grid]
        for name, rs in by_name.items()
    }
    ref_runs = by_name.get(cfg.reference, [])
    target = float(np.mean([r.best_fitness for r in ref_runs])) if ref_runs else None
    ref_final = {r.seed: r.best_fitness for r in ref_runs}
    quarter = budget / 4
    rows = {}
    for name, rs in by_name.items():
        curve = curves[name]
        match = next((b for b, v in zip(grid, curve, strict=True) if target is not None and v >= target), None)
        paired = [r for r in rs if r.seed in ref_final]
        rows[name] = {
            "runs": len(rs),
            "mean_best": float(np.mean([r.best_fitness for r in rs])),
            "std_best": float(np.std([r.best_fitness for r in rs])),
            "mean_best_at_quarter": float(np.mean([_floor(r.best_at(quarter)) for r in rs])),
            "mean_spent": float(np.mean([r.spent for r in rs])),
            "mean_asked": float(np.mean([r.asked for r in rs])),
            "epochs_to_match_reference_mean": match,
            # paired by seed: did this run reach that seed's reference best within a quarter?
            "reached_reference_within_quarter": (
                float(np.mean([r.epochs_to_reach(ref_final[r.seed]) <= quarter for r in paired]))
                if paired else None
            ),
            "found_optimum": (
                float(np.mean([r.best_fitness >= optimum for r in rs])) if optimum is not None else None
            ),
        }
    return {"budget_epochs": budget, "grid": grid, "curves": curves, "target": target,
            "optimum": optimum, "searchers": rows}


def _floor(value: float) -> float:
    # Before its first evaluation a run has no best; count it as 0 accuracy, not -inf.
    return value if math.isfinite(value) else 0.0


def plot_race(summary: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Mean best fitness against fitness-epochs spent, one line per searcher (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, curve in summary["curves"].items():
        ax.plot(summary["grid"], curve, label=name, lw=2 if name == "pso" else 1.4)
    if summary["target"] is not None:
        ax.axhline(summary["target"], color="grey", ls="--", lw=0.8, label="reference mean best")
        ax.axvline(summary["budget_epochs"] / 4, color="grey", ls=":", lw=0.8, label="quarter budget")
    if summary.get("optimum") is not None:
        ax.axhline(summary["optimum"], color="black", ls="-.", lw=0.8, label="global optimum")
    ax.set_xlabel("fitness-epochs spent (new masks only)")
    ax.set_ylabel("best fitness so far (val accuracy), mean over seeds")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pin_frozen(table: dict[str, float], num_units: int, frozen: Sequence[int]) -> dict[str, float]:
    """The sub-table over the units not in ``frozen``, those pinned to 0 (keys: free bits)."""
    bad = [u for u in frozen if not 0 <= u < num_units]
    if bad:
        raise LayerswarmError(f"frozen units {bad} are not unit indices 0..{num_units - 1}")
    free = [u for u in range(num_units) if u not in set(frozen)]
    sub = {}
    for key, value in table.items():
        if all(key[u] == "0" for u in frozen):
            sub["".join(key[u] for u in free)] = value
    return sub


def race_table(table_path: str | Path, cfg: RaceConfig, out_dir: str | Path,
               on_run: Callable[[RaceRun], None] | None = None) -> dict[str, Any]:
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
    summary["table"] = {"path": str(table_path), "config": header["config"], "units": header["units"],
                        "masks": len(table),
                        "optimum_masks": sorted(k for k, v in table.items() if v == max(table.values()))}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "runs.json", [r.to_dict() for r in runs])
    atomic_write_json(out / "summary.json", summary)
    title = f"{free} units searched, budget {cfg.budget} fitness evaluations, {cfg.seeds} seeds"
    plot_race(summary, out / "race.png", title=title)
    return summary


def full_mask(sub_mask: Sequence[int], num_units: int, frozen: Sequence[int]) -> list[int]:
    """A searched sub-mask with the pinned-frozen units put back as 0."""
    bits = iter(sub_mask)
    return [0 if u in set(frozen) else int(next(bits)) for u in range(num_units)]


def final_tests(
    run_cfg: Any,
    masks: Sequence[Sequence[int]],
    cache_path: str | Path,
    on_result: Callable[[dict], None] | None = None,
) -> dict[str, dict]:
    """Final fine-tune (``run_cfg.final``) and test accuracy of each distinct mask, cached.

    Results are appended to the JSONL ``cache_path`` keyed by mask bits, so a mask found by
    several searchers or seeds is trained once, and an interrupted run resumes.
    """
    from .bundle import build_bundle
    from .data import load_dataset
    from .finetune import run_finetune
    from .strategies import create_strategy

    done = {r["mask"]: r for r in read_jsonl(cache_path)}
    todo = sorted({mask_key(m) for m in masks} - set(done))
    if todo:
        data = load_dataset(run_cfg.data)
        bundle = build_bundle(run_cfg.model, data.num_classes, run_cfg.final, seed=run_cfg.seed)
        final = run_cfg.final.replace(test_every=run_cfg.final.epochs)  # test once, at the end
        for key in todo:
            metrics = run_finetune(bundle, data, create_strategy("mask", {"mask": [int(b) for b in key]}),
                                   final, seed=run_cfg.seed)
            row = {"mask": key, "test_accuracy": metrics["test_accuracy"],
                   "val_accuracy": metrics["val_accuracy"], "epochs": run_cfg.final.epochs,
                   "seconds": round(metrics["seconds"], 1)}
            append_jsonl(cache_path, row)
            done[key] = row
            if on_result is not None:
                on_result(row)
    return {mask_key(m): done[mask_key(m)] for m in masks}


def race_real(
    run_cfg: Any,
    cfg: RaceConfig,
    out_dir: str | Path,
    on_run: Callable[[RaceRun], None] | None = None,
    on_entry: Callable[[dict], None] | None = None,
    table_path: str | Path | None = None,
) -> dict[str, Any]:
    """The race on the real fitness (:class:`MaskFitness`, one short fine-tune per new mask).

    Trained masks are shared across searchers and seeds through ``table_path`` (default
    ``out_dir/fitness.jsonl``; a mask is trained the first time any run meets it), yet each
    run is charged for every new mask it asks, as it would be alone. Interrupted, it resumes
    from that file: the runs replay the masks already trained. Expensive: see docs/searchers.md.
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


# --- the `layerswarm race` command's logic ---


def best_masks_by_searcher(runs: list[RaceRun], seeds: int, num_units: int,
                           frozen: Sequence[int]) -> dict[str, list[list[int]]]:
    """Full best masks of seeds ``0..seeds-1`` per searcher (the masks to fine-tune and test)."""
    out: dict[str, list[list[int]]] = {}
    for run in runs:
        if run.seed < seeds and run.best_mask:
            out.setdefault(run.searcher, []).append(full_mask(run.best_mask, num_units, frozen))
    return out


def add_final_tests(summary: dict[str, Any], runs: list[RaceRun], run_cfg: Any, seeds: int,
                    cache_path: str | Path, on_result: Callable[[dict], None] | None = None) -> None:
    """Fine-tune the best mask of seeds ``0..seeds-1`` of every searcher (each distinct mask
    once) and add the mean test accuracy per searcher to ``summary``."""
    num_units = len(summary["table"]["units"]) if "table" in summary else None
    if num_units is None:
        raise LayerswarmError("final tests need the unit names of the race's table")
    frozen = summary["race"]["frozen_units"]
    masks = best_masks_by_searcher(runs, seeds, num_units, frozen)
    results = final_tests(run_cfg, [m for ms in masks.values() for m in ms], cache_path, on_result)
    for name, ms in masks.items():
        accs = [results[mask_key(m)]["test_accuracy"] for m in ms]
        summary["searchers"][name]["final_masks"] = [mask_key(m) for m in ms]
        summary["searchers"][name]["final_test_accuracy"] = float(np.mean(accs))
        summary["searchers"][name]["final_test_accuracies"] = accs
    summary["final"] = {"epochs": run_cfg.final.epochs, "seeds": seeds, "max_test": run_cfg.data.max_test}


def format_summary(summary: dict[str, Any]) -> str:
    """The race as a Markdown table (what docs/searchers.md shows)."""
    budget, ref = summary["budget_epochs"], summary["race"]["reference"]
    target = (f"{ref}'s mean best {summary['target']:.4f}" if summary["target"] is not None
              else f"none ({ref} did not race)")
    lines = [
        f"budget {budget} fitness-epochs; target = {target}" + (f"; global optimum {summary['optimum']:.4f}" if summary.get("optimum") else ""),
        "",
        "| searcher | mean best (± std) | best at budget/4 | epochs to reach target (mean curve) "
        "| runs reaching paired target by budget/4 | found optimum | epochs paid | final test acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in summary["searchers"].items():
        match = "never" if r["epochs_to_match_reference_mean"] is None else str(r["epochs_to_match_reference_mean"])
        reach = "" if r["reached_reference_within_quarter"] is None else f"{r['reached_reference_within_quarter']:.0%}"
        opt = "" if r["found_optimum"] is None else f"{r['found_optimum']:.0%}"
        final = "" if "final_test_accuracy" not in r else f"{r['final_test_accuracy']:.4f}"
        lines.append(
            f"| {name} | {r['mean_best']:.4f} ± {r['std_best']:.4f} | {r['mean_best_at_quarter']:.4f} | {match} "
            f"| {reach} | {opt} | {r['mean_spent']:.1f} | {final} |"
        )
    return "\n".join(lines)


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
        summary = race_real(run_cfg, cfg, out_dir, on_run=runs.append, table_path=table_path,
                            on_entry=lambda r: echo(f"trained {r['mask']}: fitness {r['fitness']:.4f} ({r['seconds']:.1f}s)"))
        return _with_finals(summary, runs, run_cfg, final_seeds, out_dir, echo)
    if build:
        build_table(run_cfg, table_path,
                    on_entry=lambda r: echo(f"table: {r['mask']} fitness {r['fitness']:.4f} ({r['seconds']:.1f}s)"))
    header, _ = load_table(table_path)
    if header["config"]["model"] != run_cfg.model.to_dict():
        raise LayerswarmError(
            f"the table '{table_path}' is for model {header['config']['model']}; pass the same --model and --granularity"
        )
    summary = race_table(table_path, cfg, out_dir, on_run=runs.append)
    return _with_finals(summary, runs, run_cfg, final_seeds, out_dir, echo)


def _with_finals(summary: dict[str, Any], runs: list[RaceRun], run_cfg: Any, final_seeds: int,
                 out_dir: str | Path, echo: Callable[[str], None]) -> str:
    if final_seeds:
        add_final_tests(summary, runs, run_cfg, final_seeds, Path(out_dir) / "final_tests.jsonl",
                        on_result=lambda r: echo(f"final {r['mask']}: test accuracy {r['test_accuracy']:.4f}"))
        atomic_write_json(Path(out_dir) / "summary.json", summary)
    return format_summary(summary)
