"""Baselines in every search (``--baselines linear,full,last-k``): the strategies a user would
pick by hand, fine-tuned with the search's final recipe, split and seed, next to the searched mask.

Each baseline's fine-tune writes ``DIR/baselines/NAME/final/metrics.json`` (and a ``run.json``
naming it for the report), resumably: a finished one is read back, an interrupted one continues
from its checkpoint. :func:`compare` sets the searched mask's test accuracy next to theirs, with
the chance level (1 / classes) and each accuracy's binomial standard error over the test images,
and says whether the search won, tied within noise or lost against the best baseline
(:mod:`layerswarm.noise`); it is saved as ``DIR/baselines/summary.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .data.config import dataset_label
from .errors import LayerswarmError
from .io import atomic_write_json, read_json
from .noise import binomial_se, verdict

log = logging.getLogger(__name__)

BASELINES_DIR = "baselines"
SUMMARY_FILE = "summary.json"
DEFAULT_K = 4  # last-k's k unless given (last-k:K); the best k of the benchmark so far


def parse_baselines(spec: str | None, num_units: int | None = None) -> list[tuple[str, str, dict]]:
    """``"linear,full,last-k"`` -> (name, strategy, options) each; ``last-k:K``/``first-k:K`` set k
    (last-k alone: k = 4, at most units - 1); ``none`` or empty: no baseline."""
    from .strategies import STRATEGIES  # the training stack: only where a baseline is named

    out = []
    for item in (spec or "").replace(" ", "").split(","):
        if item in ("", "none"):
            continue
        strategy, _, k = item.partition(":")
        if strategy not in STRATEGIES:
            raise LayerswarmError(f"unknown baseline '{item}': use strategies such as linear, full, last-k, last-k:K, "
                                  "l2sp (layerswarm strategies), or none")
        options = {}
        if strategy in ("last-k", "first-k"):
            try:
                options["k"] = int(k) if k else DEFAULT_K if num_units is None else max(1, min(DEFAULT_K, num_units - 1))
            except ValueError as err:
                raise LayerswarmError(f"baseline '{item}': K must be a whole number (last-k:4)") from err
        elif k:
            raise LayerswarmError(f"baseline '{item}': only last-k and first-k take a :K")
        name = f"{strategy}-{options['k']}".replace("-k-", "-") if "k" in options else strategy
        out.append((name, strategy, options))
    return out


def run_baselines(cfg: Any, bundle: Any, data: Any, out: str | Path) -> dict[str, dict]:
    """Fine-tune every baseline of ``cfg.search.baselines`` like the final (resumably); name -> metrics."""
    from .finetune import run_finetune
    from .strategies import create_strategy

    results = {}
    for name, strategy, options in parse_baselines(cfg.search.baselines, len(bundle.units)):
        folder = Path(out) / BASELINES_DIR / name
        metrics_path = folder / "final" / "metrics.json"
        if metrics_path.is_file():
            results[name] = read_json(metrics_path)
            continue
        log.info("baseline %s: %d-epoch fine-tune", name, cfg.final.epochs)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "run.json", {"strategy": name, "dataset": dataset_label(cfg.data.data)})
        results[name] = run_finetune(bundle, data, create_strategy(strategy, options), cfg.final, folder / "final",
                                     seed=cfg.seed, checkpoint=folder / "final" / "checkpoint.pt")
    return results


def compare(search_accuracy: float, baselines: dict[str, dict], num_classes: int, test_images: int) -> dict:
    """The searched mask's test accuracy next to the baselines', with chance, noise and a verdict."""
    rows = {"search": {"test_accuracy": search_accuracy, "se": binomial_se(search_accuracy, test_images)}}
    for name, metrics in baselines.items():
        acc = metrics["test_accuracy"]
        rows[name] = {"test_accuracy": acc, "se": binomial_se(acc, test_images)}
    summary = {"test_images": test_images, "chance": 1.0 / num_classes, "accuracies": rows}
    if baselines:
        best = max(baselines, key=lambda n: rows[n]["test_accuracy"])
        ours, theirs = rows["search"], rows[best]
        summary.update(best_baseline=best, verdict=verdict(ours["test_accuracy"], ours["se"], theirs["test_accuracy"], theirs["se"]))
    return summary


def describe(summary: dict) -> list[str]:
    """The printout: one line per accuracy, then the verdict in one line."""
    n, rows = summary["test_images"], summary["accuracies"]
    lines = [f"test accuracy (± 1 se over {n} test images; chance {summary['chance']:.4f}):"]
    lines += [f"  {name:<10} {r['test_accuracy']:.4f} ± {r['se']:.4f}" for name, r in rows.items()]
    if "verdict" in summary:
        best, ours = summary["best_baseline"], rows["search"]["test_accuracy"]
        gap = ours - rows[best]["test_accuracy"]
        said = {"won": "won", "tied": "tied within noise", "lost": "lost"}[summary["verdict"]]
        lines.append(f"the search {said} against the best baseline, {best} ({gap:+.4f}; noise: 2 x combined se)")
    return lines


def compare_run(cfg: Any, bundle: Any, data: Any, out: str | Path, search_accuracy: float) -> dict | None:
    """Run the baselines of ``cfg`` and save and return the comparison; ``None`` without baselines."""
    baselines = run_baselines(cfg, bundle, data, out)
    if not baselines:
        return None
    summary = compare(search_accuracy, baselines, data.num_classes, len(data.test))
    atomic_write_json(Path(out) / BASELINES_DIR / SUMMARY_FILE, summary)
    return summary
