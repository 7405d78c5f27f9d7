"""What a race shows: per-searcher summary, the Markdown table and the plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .runner import RaceConfig, RaceRun


def summarise(runs: list[RaceRun], cfg: RaceConfig, optimum: float | None = None) -> dict[str, Any]:
    """Per searcher: mean best-so-far curve, final best, and the budget it needs to match
    the reference searcher's mean final best (the race's target)."""
    budget = cfg.budget * cfg.fitness_epochs
    grid = list(range(cfg.fitness_epochs, budget + 1, cfg.fitness_epochs))
    by_name: dict[str, list[RaceRun]] = {}
    for run in runs:
        by_name.setdefault(run.searcher, []).append(run)
    curves = {name: [float(np.mean([_floor(r.best_at(b)) for r in rs])) for b in grid] for name, rs in by_name.items()}
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
                float(np.mean([r.epochs_to_reach(ref_final[r.seed]) <= quarter for r in paired])) if paired else None
            ),
            "found_optimum": (float(np.mean([r.best_fitness >= optimum for r in rs])) if optimum is not None else None),
        }
    return {
        "budget_epochs": budget,
        "grid": grid,
        "curves": curves,
        "target": target,
        "optimum": optimum,
        "searchers": rows,
    }


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


def format_summary(summary: dict[str, Any]) -> str:
    """The race as a Markdown table (what docs/results/searcher-race.md shows)."""
    budget, ref = summary["budget_epochs"], summary["race"]["reference"]
    target = (
        f"{ref}'s mean best {summary['target']:.4f}" if summary["target"] is not None else f"none ({ref} did not race)"
    )
    lines = [
        f"budget {budget} fitness-epochs; target = {target}"
        + (f"; global optimum {summary['optimum']:.4f}" if summary.get("optimum") else ""),
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
