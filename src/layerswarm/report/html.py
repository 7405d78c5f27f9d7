"""``report.html``: one self-contained page (figures embedded as base64 PNG, inline CSS).

The same figures are written next to it as ``figures/*.png`` for slides and papers.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from collections import Counter
from collections.abc import Set
from pathlib import Path
from typing import Any

from ..config_utils import flatten
from ..io import atomic_write_bytes, atomic_write_text
from .figures import FigureSpec, build_figures, to_png
from .loader import ReportData, RunRecord, load_report_data

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: .9em; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .3em .7em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.search td { background: #fdf0f0; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #444; font-size: .92em; max-width: 60em; }
code.mask { font-size: 1.05em; letter-spacing: .08em; word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; min-width: 16em; }
.card b { font-size: 1.3em; }
details { margin: .5em 0; } summary { cursor: pointer; font-weight: 600; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def table_html(rows: list[dict[str, Any]], highlight: Set[str] = frozenset()) -> str:
    """A plain HTML table; rows whose 'strategy' (or 'method') is in ``highlight`` are tinted."""
    if not rows:
        return "<p>(empty)</p>"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for r in rows:
        name = str(r.get("strategy", r.get("method", "")))
        cls = ' class="search"' if name in highlight else ""
        cells = "".join(
            f'<td class="num">{_e(_fmt(r.get(c)))}</td>'
            if _is_number(_fmt(r.get(c)))
            else f"<td>{_e(_fmt(r.get(c)))}</td>"
            for c in columns
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _flatten(d: dict) -> dict[str, Any]:
    """Dotted keys (lists of dicts opened too, e.g. compare's datasets), other lists and None as JSON."""
    return {
        k: json.dumps(v) if isinstance(v, list | dict) or v is None else v for k, v in flatten(d, lists=True).items()
    }


def config_html(config: dict) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in _flatten(config).items())
    return f"<table>{rows}</table>"


def _summary_cards(run: RunRecord) -> str:
    cfg = run.config or {}
    mask = run.mask or []
    best = run.best_mask or {}
    fitness, se = best.get("fitness"), best.get("fitness_se")
    shown = (_fmt(float(fitness)) + (f" ± {_fmt(float(se))}" if se is not None else "")) if fitness is not None else ""
    cards = [
        ("model", (cfg.get("model") or {}).get("name", "")),
        ("dataset", run.dataset),
        ("fine-tuned units", f"{sum(mask)} / {len(mask)}" if mask else ""),
        ("search fitness (val, ± 1 se)", shown),
        ("masks within noise of it", str(len(best["within_noise"])) if "within_noise" in best else ""),
        ("final test accuracy", _fmt(run.test_accuracy)),
        ("evaluations", str(len(run.evaluations))),
        ("time", f"{run.seconds / 60:.1f} min" if run.seconds else ""),
    ]
    items = "".join(f'<div class="card">{_e(k)}<br><b>{_e(v)}</b></div>' for k, v in cards if v)
    mask_line = (
        f'<p>Best mask (1 = fine-tuned): <code class="mask">{"".join(map(str, mask))}</code></p>' if mask else ""
    )
    return f'<div class="cards">{items}</div>{mask_line}'


def _baselines_html(run: RunRecord) -> str:
    """The searched mask's test accuracy next to the baselines' (--baselines), chance and noise, the verdict."""
    summary = run.baselines
    if not summary:
        return ""
    from ..run.baselines import describe

    rows = [
        {"strategy": name, "test accuracy": r["test_accuracy"], "± 1 se": r["se"]}
        for name, r in summary["accuracies"].items()
    ]
    rows.append({"strategy": "chance (1 / classes)", "test accuracy": summary["chance"], "± 1 se": None})
    lines = describe(summary)
    verdict = next((line for line in lines if line.startswith("the search ")), "")
    answer = next((f"<p>{_e(line)}</p>" for line in lines if line.startswith("answer: ")), "")  # --answer validation
    return (
        f"<h2 id='baselines'>Search against the baselines</h2><p><b>{_e(verdict)}</b> "
        f"(same final recipe, split and seed; {_e(summary['test_images'])} test images)</p>{answer}"
        + table_html(rows, {"search"})
    )


def _selection_html(run: RunRecord) -> str:
    """The final selection (--final-select): each candidate's search and fresh-seed fitness."""
    selection = (run.best_mask or {}).get("selection")
    if not selection:
        return ""
    rows = [
        {
            "mask": "".join(map(str, c["mask"])) + (" (fine-tuned)" if c["mask"] == selection["mask"] else ""),
            "search fitness": c["search_fitness"],
            "fresh seeds": c["selection_fitness"],
            "score": c["mean"],
            "± 1 se": c["mean_se"],
        }
        for c in selection["candidates"]
    ]
    epochs = selection.get("select_epochs")
    return (
        f"<h2 id='selection'>Final selection</h2><p>The {len(rows)} best masks of the search, evaluated again "
        f"with {_e(selection.get('select_repeats', ''))} fresh seed(s)"
        + (f" for {_e(epochs)} epochs" if epochs else "")
        + "; the best score (the mean of all its evaluations, or the selection's alone when it ran another budget "
        "than the search's fitness) is fine-tuned.</p>" + table_html(rows)
    )


def _unscored_html(run: RunRecord) -> str:
    """Evaluations without a fitness: 'failed' (an exception), 'diverged' (a non-finite loss)."""
    rows = [
        {
            "evaluation": e.get("number"),
            "generation": e.get("generation"),
            "particle": e.get("particle"),
            "mask": "".join(map(str, e.get("mask") or [])),
            "status": e.get("status") or "failed",
            "error": e.get("error"),
        }
        for e in run.evaluations
        if e.get("error")
    ]
    if not rows:
        return ""
    counts = Counter(r["status"] for r in rows)
    said = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return (
        f"<h2 id='unscored'>Evaluations without a fitness</h2><p>{_e(said)}: each counts as "
        "the worst fitness of the search (a diverged one met a non-finite loss: a lower "
        "learning rate may train that mask).</p>" + table_html(rows)
    )


def _units_table(run: RunRecord) -> str:
    mask, rates = run.mask or [], run.lr_multipliers  # a --space lr plan's (a study's: 0/1 too)
    rates = rates if rates and set(rates) - {0.0, 1.0} else None

    def state(i: int) -> str:
        if i >= len(mask):
            return ""
        if not mask[i]:
            return "frozen"
        return f"fine-tuned at lr x {rates[i]:g}" if rates else "fine-tuned"

    rows = [{"index": i, "unit": u, "searched mask": state(i)} for i, u in enumerate(run.units)]
    return table_html(rows)


def render_html(data: ReportData, figures: list[FigureSpec], pngs: dict[str, bytes]) -> str:
    """The page as a string: figures inline, nothing fetched from anywhere."""
    title = f"layerswarm report: {data.root.resolve().name}"
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='meta'>{_e(data.root.resolve())} &middot; {len(data.runs)} run(s) &middot; "
        f"generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>",
    ]
    searches = data.search_runs
    for run in searches[:1] if len(searches) == 1 else []:
        parts.append(_summary_cards(run))
        parts.append(_selection_html(run))
        parts.append(_baselines_html(run))
        parts.append(_unscored_html(run))
    if data.compare_config:
        c = data.compare_config
        parts.append(
            f"<p>Comparison of <b>{_e(', '.join(c.get('strategies', [])))}</b> with "
            f"<b>{_e((c.get('model') or {}).get('name', ''))}</b> on <b>{_e(', '.join(data.datasets))}</b>, "
            f"{_e(c.get('repeats', ''))} repeat(s) of {_e((c.get('train') or {}).get('epochs', ''))} epochs.</p>"
        )

    parts.append("<h2>Figures</h2>")
    if not figures:
        parts.append("<p>No figure yet: the run has no finished evaluation.</p>")
    for spec in figures:
        b64 = base64.b64encode(pngs[spec.key]).decode("ascii")
        parts.append(
            f"<figure id='{spec.key}'><h3>{_e(spec.title)}</h3>"
            f"<img alt='{_e(spec.title)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{_e(spec.caption)} <a href='{FIGURES_DIR}/{spec.key}.png'>PNG</a></figcaption></figure>"
        )

    highlight = {r.strategy for r in searches}
    parts.append("<h2 id='comparison'>5. Comparison</h2>")
    if data.compare_table is not None:
        parts.append(f"<p>From <code>{_e(data.compare_source)}</code> written by <code>layerswarm compare</code>.</p>")
        parts.append(table_html(data.compare_table, highlight))
    summary = data.summary_table()
    if summary:
        label = (
            "Per strategy, from the runs' own metrics"
            if data.compare_table is not None
            else "Test accuracy per strategy (mean over runs; std over repeats; accuracy after 5 epochs where reached)"
        )
        parts.append(f"<p>{_e(label)}:</p>")
        parts.append(table_html(summary, highlight))
    elif data.compare_table is None:
        parts.append("<p>No finished fine-tune yet.</p>")

    parts.append("<h2 id='configuration'>Configuration</h2>")
    if data.compare_config:
        parts.append("<h3>Comparison</h3>" + config_html(data.compare_config))
    for run in searches[:1]:
        if run.config:
            parts.append(f"<h3>Search run <code>{_e(run.name)}</code></h3>" + config_html(run.config))
        if run.units:
            parts.append("<details><summary>Units and the searched mask</summary>" + _units_table(run) + "</details>")
    for run in searches[1:]:
        if run.config:
            parts.append(f"<details><summary>Search run {_e(run.name)}</summary>{config_html(run.config)}</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` (and ``figures/*.png``) for a run or comparison folder."""
    data = load_report_data(run_dir)
    out_path = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    figures = build_figures(data)
    pngs = {}
    for spec in figures:
        pngs[spec.key] = to_png(spec.figure)
        atomic_write_bytes(out_path.parent / FIGURES_DIR / f"{spec.key}.png", pngs[spec.key])
    atomic_write_text(out_path, render_html(data, figures, pngs))
    return out_path
