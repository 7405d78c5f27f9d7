"""Baselines in every search (``--baselines linear,full,last-k``): the strategies a user would
pick by hand, fine-tuned with the search's final recipe, split and seed, next to the searched mask.
Each starts from a fresh head, as published, whatever the search's ``--head-init``: a warm head is
part of the method a search is compared with (LP-FT is the hand pick that fits its head first), and
a warm ``full`` would be LP-FT under another name.

Each baseline's fine-tune writes ``DIR/baselines/NAME/final/metrics.json`` (and a ``run.json``
naming it for the report), resumably: a finished one is read back, an interrupted one continues
from its checkpoint. :func:`compare` sets the searched mask's test accuracy next to theirs, with
the chance level (1 / classes) and each accuracy's binomial standard error over the test images,
and says whether the search won, tied within noise or lost against the best baseline
(:mod:`layerswarm.fitness.noise`); it is saved as ``DIR/baselines/summary.json``.

``--answer validation`` makes the run answer with the best of the searched mask and the
baselines by final validation accuracy; :func:`compare_run` writes it to ``DIR/answer.json``
(:mod:`layerswarm.run.answer`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..data.config import dataset_label
from ..errors import LayerswarmError
from ..fitness.noise import binomial_se, verdict
from ..io import atomic_write_json, read_json
from .answer import ANSWER_FILE, SEARCHED, answer_record

log = logging.getLogger(__name__)

BASELINES_DIR = "baselines"
SUMMARY_FILE = "summary.json"
# last-k's k unless given (last-k:K): half the units, 8 of Lite0's 17, the best k of the 3-seed
# tables on both benchmarks (docs/concepts/defaults.md: last-8 above last-4 by 1.2 and 2.3 points)
DEFAULT_K = 8  # without the unit count (a spec checked before the model is built)


def parse_baselines(spec: str | None, num_units: int | None = None) -> list[tuple[str, str, dict]]:
    """``"linear,full,last-k"`` -> (name, strategy, options) each; ``NAME:VALUE`` sets the
    strategy's primary option (``last-k:K``, ``discriminative:0.65``, ``l2sp:0.1``; last-k alone:
    k = half the units); ``none`` or empty: no baseline."""
    from ..strategies import STRATEGIES  # the training stack: only where a baseline is named

    out = []
    for item in (spec or "").replace(" ", "").split(","):
        if item in ("", "none"):
            continue
        strategy, _, value = item.partition(":")
        if strategy not in STRATEGIES:
            raise LayerswarmError(
                f"unknown baseline '{item}': use strategies such as linear, full, last-k, last-k:K, "
                "l2sp, lp-ft (layerswarm strategies), or none"
            )
        option = STRATEGIES[strategy].primary_option
        options = {}
        if strategy in ("last-k", "first-k") and not value:
            value = str(DEFAULT_K if num_units is None else max(1, num_units // 2))
        if value:
            if option is None:
                raise LayerswarmError(f"baseline '{item}': {strategy} takes no :VALUE")
            kind = int if option == "k" else float
            try:
                options[option] = kind(value)
            except ValueError as err:
                raise LayerswarmError(
                    f"baseline '{item}': {option} must be a {kind.__name__} "
                    f"({strategy}:{'4' if kind is int else '0.5'})"
                ) from err
        if "k" in options:
            name = f"{strategy}-{options['k']}".replace("-k-", "-")
        else:
            name = f"{strategy}-{value}" if value else strategy
        out.append((name, strategy, options))
    return out


def run_baselines(cfg: Any, bundle: Any, data: Any, out: str | Path) -> dict[str, dict]:
    """Fine-tune every baseline of ``cfg.search.outcome.baselines`` like the final (resumably); name -> metrics."""
    from ..strategies import create_strategy
    from .finetune import run_finetune

    recipe = cfg.final.replace(optim=cfg.final.optim.replace(head_init="cold"))  # the hand picks as published
    results = {}
    for name, strategy, options in parse_baselines(cfg.search.outcome.baselines, len(bundle.units)):
        folder = Path(out) / BASELINES_DIR / name
        metrics_path = folder / "final" / "metrics.json"
        if metrics_path.is_file():
            results[name] = read_json(metrics_path)
            continue
        log.info("baseline %s: %d-epoch fine-tune", name, cfg.final.epochs)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "run.json", {"strategy": name, "dataset": dataset_label(cfg.data.data)})
        results[name] = run_finetune(
            bundle,
            data,
            create_strategy(strategy, options),
            recipe,
            folder / "final",
            seed=cfg.seed,
            checkpoint=folder / "final" / "checkpoint.pt",
        )
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
        summary.update(
            best_baseline=best,
            verdict=verdict(ours["test_accuracy"], ours["se"], theirs["test_accuracy"], theirs["se"]),
        )
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
    if "answer" in summary:  # --answer validation
        answer = summary["answer"]
        which = "the searched mask" if answer["answer"] == SEARCHED else f"the baseline {answer['answer']}"
        lines.append(
            f"answer: {which}, the best final validation accuracy ({answer['val_accuracy']:.4f}); "
            f"its test accuracy {answer['test_accuracy']:.4f}; model in {answer['model_dir']}/"
        )
    return lines


def compare_run(cfg: Any, bundle: Any, data: Any, out: str | Path, final: dict) -> dict | None:
    """Run the baselines of ``cfg`` and save and return the comparison (with ``--answer validation``,
    the answer too, also in ``DIR/answer.json``); ``None`` without baselines."""
    out = Path(out)
    baselines = run_baselines(cfg, bundle, data, out)
    answered = bool(baselines) and cfg.search.outcome.answer == "validation"
    if not answered and (out / ANSWER_FILE).is_file():  # resumed with --answer mask or no baselines
        (out / ANSWER_FILE).unlink()  # the searched mask answers again
    if not baselines:
        return None
    summary = compare(final["test_accuracy"], baselines, data.num_classes, len(data.test))
    if answered:
        summary["answer"] = answer_record(final, baselines, BASELINES_DIR)
        atomic_write_json(out / ANSWER_FILE, summary["answer"])
    atomic_write_json(out / BASELINES_DIR / SUMMARY_FILE, summary)
    return summary
