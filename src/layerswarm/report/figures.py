"""The report's figures, one function each, drawn with matplotlib's Agg renderer.

Every function takes plain data and returns a ``matplotlib.figure.Figure`` built without
pyplot, so nothing touches global state or needs a display. Frozen units are grey and
fine-tuned units blue in every mask figure.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # headless: no display in CI or on a cluster node

from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .loader import ReportData  # noqa: E402

FROZEN, TUNED = "#d0d0d0", "#1f77b4"
MASK_CMAP = ListedColormap([FROZEN, TUNED])
SEARCH_COLOR = "#d62728"
MAX_NAMED_UNITS = 40  # above this, the x axis shows the layer index only


@dataclass
class FigureSpec:
    """A drawn figure with the file stem and caption the report uses."""

    key: str
    title: str
    caption: str
    figure: Figure


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _mask_legend(ax) -> None:
    ax.legend(
        handles=[Patch(color=TUNED, label="fine-tuned"), Patch(color=FROZEN, label="frozen")],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=8,
    )


def _unit_axis(ax, units: Sequence[str], num: int) -> None:
    ax.set_xlabel("layer unit (input \u2192 output)")
    if units and num <= MAX_NAMED_UNITS:
        ax.set_xticks(range(num))
        ax.set_xticklabels([f"{i} {u}" for i, u in enumerate(units)], rotation=90, fontsize=7)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _grid(ax, rows: int, cols: int) -> None:
    """White lines between cells so that neighbouring units stay distinct."""
    ax.set_xticks([c - 0.5 for c in range(1, cols)], minor=True)
    ax.set_yticks([r - 0.5 for r in range(1, rows)], minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)


def plot_masks(rows: Sequence[tuple[str, Sequence[float]]], units: Sequence[str] = ()) -> Figure:
    """Figure 1: frozen / fine-tuned per unit along the layer index, one row per run. A row may
    hold learning-rate multipliers (a ``--space lr`` plan: 0 frozen) instead of bits: then each
    level has its shade, darker for a faster rate, and is written in its cell."""
    num = max(len(m) for _, m in rows)
    width = min(18.0, max(6.0, 0.32 * num + 3.0))
    fig = Figure(figsize=(width, 0.42 * len(rows) + 1.4 + (1.6 if units and num <= MAX_NAMED_UNITS else 0)))
    ax = fig.add_subplot()
    rates = sorted({float(v) for _, m in rows for v in m} | {0.0})
    levels = rates != [0.0, 1.0] and rates != [0.0]  # a mask's bits are 0 and 1
    matrix = [[rates.index(float(v)) for v in m] + [math.nan] * (num - len(m)) for _, m in rows]
    shades = [0.35 + 0.6 * k / max(len(rates) - 2, 1) for k in range(len(rates) - 1)]
    cmap = ListedColormap([FROZEN, *matplotlib.colormaps["Blues"](shades)]) if levels else MASK_CMAP
    ax.imshow(matrix, cmap=cmap, vmin=0, vmax=len(rates) - 1 if levels else 1, aspect="auto", interpolation="nearest")
    if levels and num <= MAX_NAMED_UNITS:
        for r, (_, m) in enumerate(rows):
            for c, v in enumerate(m):
                if v:
                    ax.text(
                        c,
                        r,
                        f"{v:g}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if rates.index(float(v)) > len(rates) / 2 else "black",
                    )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{label}  ({sum(1 for v in m if v)}/{len(m)})" for label, m in rows], fontsize=8)
    _unit_axis(ax, units, num)
    _grid(ax, len(rows), num)
    if levels:
        ax.legend(
            handles=[Patch(color=cmap(k), label="frozen" if r == 0 else f"lr x {r:g}") for k, r in enumerate(rates)],
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize=8,
        )
    else:
        _mask_legend(ax)
    ax.set_title(
        "Searched plans: each unit's learning rate per run" if levels else "Searched masks: fine-tuned units per run"
    )
    fig.tight_layout()
    return fig


def _mean_curve(curves: list[list[tuple[int, float]]]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs, mean, min, max over repeats (each epoch over the repeats that reached it)."""
    by_epoch: dict[int, list[float]] = {}
    for curve in curves:
        for epoch, acc in curve:
            by_epoch.setdefault(epoch, []).append(acc)
    epochs = sorted(by_epoch)
    return (
        epochs,
        [statistics.fmean(by_epoch[e]) for e in epochs],
        [min(by_epoch[e]) for e in epochs],
        [max(by_epoch[e]) for e in epochs],
    )


def plot_accuracy_curves(
    curves: dict[str, dict[str, list[list[tuple[int, float]]]]], search_names: Sequence[str] = ("pso",)
) -> Figure:
    """Figure 2: test accuracy over the final fine-tune's epochs, one panel per dataset.

    ``curves``: dataset -> strategy -> one curve per repeat. The searched mask is drawn thick
    and red; the band is the min-max over repeats.
    """
    datasets = list(curves)
    cols = min(3, len(datasets))
    rows = math.ceil(len(datasets) / cols)
    fig = Figure(figsize=(5.2 * cols + 1.8, 3.8 * rows))
    for i, dataset in enumerate(datasets):
        ax = fig.add_subplot(rows, cols, i + 1)
        others = iter(f"C{k}" for k in range(10) if k != 3)
        for strategy, runs in curves[dataset].items():
            epochs, mean, low, high = _mean_curve(runs)
            searched = strategy in search_names
            color = SEARCH_COLOR if searched else next(others, "black")
            label = f"{strategy} (searched mask)" if searched else strategy
            if len(runs) > 1:
                label += f", mean of {len(runs)}"
            ax.plot(
                epochs,
                mean,
                color=color,
                linewidth=2.6 if searched else 1.4,
                label=label,
                marker="o" if len(epochs) <= 12 else None,
                markersize=3.5,
                zorder=3 if searched else 2,
            )
            if len(runs) > 1:
                ax.fill_between(epochs, low, high, color=color, alpha=0.15, linewidth=0)
        ax.set_xlabel("epoch of the final fine-tune")
        ax.set_ylabel("test accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(dataset or "test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_convergence(runs: Sequence[tuple[str, list[dict], list[dict]]]) -> Figure:
    """Figure 3: best-so-far and mean fitness per generation, with every evaluation as a dot.

    ``runs``: (label, history rows, evaluations) per search run.
    """
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    for k, (label, history, evaluations) in enumerate(runs):
        color = SEARCH_COLOR if len(runs) == 1 else f"C{k % 10}"
        suffix = "" if len(runs) == 1 else f" ({label})"
        dots = [
            (int(e["generation"]) + 1, e["fitness"], e.get("fitness_se") or 0.0)
            for e in evaluations
            if e.get("fitness") is not None and not e.get("phase")
        ]
        if dots:
            jitter = [(i % 7 - 3) * 0.03 for i in range(len(dots))]  # spread equal fitnesses
            xs = [g + j for (g, _, _), j in zip(dots, jitter, strict=True)]
            ax.scatter(
                xs,
                [f for _, f, _ in dots],
                s=18,
                color=color,
                alpha=0.45,
                linewidths=0,
                label="each evaluation (bar: 1 se)" if k == 0 else None,
            )
            if any(se for _, _, se in dots):  # the fitness's standard error (layerswarm.fitness.noise)
                ax.errorbar(
                    xs,
                    [f for _, f, _ in dots],
                    yerr=[se for _, _, se in dots],
                    fmt="none",
                    ecolor=color,
                    alpha=0.3,
                    linewidth=0.8,
                )
        gens = [int(h["generation"]) + 1 for h in history]
        best = [h["best_fitness"] if math.isfinite(h["best_fitness"]) else math.nan for h in history]
        mean = [h["mean_fitness"] if math.isfinite(h["mean_fitness"]) else math.nan for h in history]
        ax.plot(gens, best, color=color, linewidth=2.2, marker="o", markersize=4, label=f"best so far{suffix}")
        ax.plot(
            gens,
            mean,
            color=color,
            linewidth=1.4,
            linestyle="--",
            marker="s",
            markersize=3,
            label=f"generation mean{suffix}",
        )
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness (val accuracy, or its trend)")  # --fitness-score
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("Swarm convergence")
    fig.tight_layout()
    return fig


def plot_swarm(evaluations: list[dict], units: Sequence[str] = ()) -> Figure:
    """Figure 4: every particle's mask, generation after generation, with its fitness.

    Rows are evaluations in order (generation-major), separated per generation; the right
    strip is each row's fitness, the star marks each generation's best particle.
    """
    evaluations = sorted(evaluations, key=lambda e: (int(e.get("generation", 0)), int(e.get("particle", 0))))
    num = max(len(e["mask"]) for e in evaluations)
    matrix = [list(e["mask"]) + [math.nan] * (num - len(e["mask"])) for e in evaluations]
    fitness = [[math.nan if e.get("fitness") is None else e["fitness"]] for e in evaluations]
    gens = [int(e.get("generation", 0)) for e in evaluations]
    n = len(evaluations)
    width = min(18.0, max(6.5, 0.3 * num + 4.0))
    height = min(40.0, 0.16 * n + 2.4 + (1.6 if units and num <= MAX_NAMED_UNITS else 0))
    fig = Figure(figsize=(width, height))
    # mask | fitness strip | its colour bar; the top margin holds the title and the legend
    grid = fig.add_gridspec(
        1, 3, width_ratios=[max(num, 4), max(0.9, 0.1 * num), 0.25], wspace=0.06, top=1 - 0.75 / height
    )
    ax = fig.add_subplot(grid[0, 0])
    strip = fig.add_subplot(grid[0, 1], sharey=ax)
    ax.imshow(matrix, cmap=MASK_CMAP, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    image = strip.imshow(fitness, cmap="viridis", aspect="auto", interpolation="nearest")
    starts = [i for i in range(n) if i == 0 or gens[i] != gens[i - 1]]
    for axis in (ax, strip):
        for s in starts[1:]:
            axis.axhline(s - 0.5, color="black", linewidth=1.2)
    ends = [*starts[1:], n]
    ax.set_yticks([(s + e - 1) / 2 for s, e in zip(starts, ends, strict=True)])
    ax.set_yticklabels([f"gen {gens[s] + 1}" for s in starts], fontsize=8)
    for s, e in zip(starts, ends, strict=True):
        scores = [(fitness[i][0], i) for i in range(s, e) if not math.isnan(fitness[i][0])]
        if scores:
            best = max(scores, key=lambda t: (t[0], -t[1]))[1]  # first particle among equals
            strip.plot(0, best, marker="*", color="white", markersize=11, markeredgecolor="black")
    _unit_axis(ax, units, num)
    ax.set_ylabel("particles, by generation")
    strip.set_xticks([0])
    strip.set_xticklabels(["fitness"], fontsize=8)
    strip.tick_params(axis="y", left=False, labelleft=False)
    cbar = fig.colorbar(image, cax=fig.add_subplot(grid[0, 2]))
    cbar.ax.tick_params(labelsize=7)
    fig.suptitle("Every particle's mask by generation", y=1 - 0.12 / height, fontsize=12)
    fig.legend(
        handles=[
            Patch(color=TUNED, label="fine-tuned"),
            Patch(color=FROZEN, label="frozen"),
            Line2D(
                [],
                [],
                marker="*",
                color="white",
                markeredgecolor="black",
                markersize=11,
                linestyle="none",
                label="best of the generation",
            ),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.38 / height),
        ncols=3,
        frameon=False,
        fontsize=8,
    )
    return fig


def build_figures(data: ReportData) -> list[FigureSpec]:
    """The report's figures for what ``data`` holds; a figure without data is left out."""
    specs: list[FigureSpec] = []
    masked = [r for r in data.runs if r.is_search and r.mask]
    if masked:
        rows = [(_run_label(r, data), r.lr_multipliers or r.mask) for r in masked]
        leveled = any(r.lr_multipliers for r in masked)
        specs.append(
            FigureSpec(
                "fig1_masks",
                "1. Masks found",
                "Each row is the best mask of one search: a unit (block of layers, input on the left) is "
                "fine-tuned (blue) or frozen (grey); the count of fine-tuned units is in brackets "
                "(the paper's Figure 3)."
                + (
                    " A --space lr plan shows each unit's level: its learning rate as a multiple of "
                    "the run's, darker for faster."
                    if leveled
                    else ""
                ),
                plot_masks(rows, masked[0].units),
            )
        )
    curves = data.curves()
    if curves:
        names = sorted({r.strategy for r in data.search_runs}) or ["pso"]
        specs.append(
            FigureSpec(
                "fig2_accuracy",
                "2. Test accuracy over epochs",
                "Test accuracy after each epoch of the final fine-tune: the searched mask (red, thick) "
                "against the other strategies run on the same data (the paper's Figure 4). "
                "Bands span the repeats.",
                plot_accuracy_curves(curves, names),
            )
        )
    searches = [r for r in data.search_runs if r.history]
    if searches:
        specs.append(
            FigureSpec(
                "fig3_convergence",
                "3. Swarm convergence",
                "Best fitness found so far and mean fitness of each generation (validation accuracy "
                "after the short fitness fine-tune); dots are single evaluations.",
                plot_convergence([(_run_label(r, data), r.history, r.evaluations) for r in searches]),
            )
        )
    swarm = next((r for r in data.search_runs if r.evaluations), None)
    if swarm is not None:
        specs.append(
            FigureSpec(
                "fig4_swarm",
                "4. The swarm, generation by generation",
                f"Every particle's mask ({_run_label(swarm, data)}), one row per evaluation, generations "
                "top to bottom; the right strip is the fitness, the star the best particle of each "
                "generation. Rows growing alike show the swarm converging.",
                plot_swarm(swarm.evaluations, swarm.units),
            )
        )
    return specs


def _run_label(run, data: ReportData) -> str:
    if len(data.search_runs) == 1 and run.name == ".":
        return run.dataset or run.path.name
    name = run.path.name if run.name == "." else run.name
    return f"{run.dataset}: {name}" if run.dataset and run.dataset not in name else name
