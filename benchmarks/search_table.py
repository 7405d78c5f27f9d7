"""The seed table: the default search, the paper preset and the baselines, over seeds.

    python benchmarks/search_table.py 'runs/fmnist-*'

Each argument is a glob of ``layerswarm search`` run folders named ``LABEL-sSEED`` (e.g.
``fmnist-default-s11``). One row per label (the searched mask's test accuracy) and, from the
runs' ``baselines/summary.json``, one per baseline (same final recipe, split and seed): the
accuracy per seed, mean ± std, the verdict per seed against the run's best baseline (won / tied
within noise / lost, layerswarm.fitness.noise), and the wall time of the whole run as a multiple of its
final fine-tune (search + final selection + final, from the evaluations' and the final's seconds).
The column "paired to NAME" is each row's difference to the best baseline row (the highest mean),
seed by seed over the seeds both rows have: mean ± std (count). A run with ``--answer validation``
adds a row ``LABEL answer``: the test accuracy of the model it answers with (the best by final
validation among the searched mask and the baselines), its verdict against the best baseline, and
its wall multiple counting the baselines' fine-tunes too.
``--ceiling`` adds ``LABEL ceiling``: the best test accuracy among the same candidates, what an
answer rule could reach at most (it reads the test split, so it is a bound, never a rule).
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import statistics
from pathlib import Path

from layerswarm.fitness.noise import binomial_se, verdict
from layerswarm.io import read_jsonl


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def collect(patterns: list[str], ceiling: bool = False) -> dict[str, dict[int, dict]]:
    """label -> seed -> {accuracy, verdict, multiple}; baselines as label 'baseline NAME'."""
    rows: dict[str, dict[int, dict]] = {}
    for folder in sorted({p for pattern in patterns for p in glob.glob(pattern)}):
        run = Path(folder)
        match = re.fullmatch(r"(.*)-s(\d+)", run.name)
        final = _read(run / "final" / "metrics.json")
        if match is None or final is None:
            continue
        label, seed = match.group(1), int(match.group(2))
        searched = (run / "evaluations.jsonl").is_file()  # else a `layerswarm finetune` folder: no search cost
        evaluations = (
            sum(float(r.get("seconds") or 0.0) for r in read_jsonl(run / "evaluations.jsonl")) if searched else 0.0
        )
        summary = _read(run / "baselines" / "summary.json") or {}
        rows.setdefault(label, {})[seed] = {
            "accuracy": final["test_accuracy"],
            "verdict": summary.get("verdict", ""),
            "multiple": (evaluations + final["wall_seconds"]) / final["seconds"] if searched else None,
        }
        if "answer" in summary:  # --answer validation: the model the run answers with
            rows.setdefault(f"{label} answer", {})[seed] = _answer_row(run, summary, evaluations, final)
            if ceiling:
                best = max(acc["test_accuracy"] for acc in summary["accuracies"].values())
                rows.setdefault(f"{label} ceiling", {})[seed] = {"accuracy": best, "verdict": "", "multiple": None}
        accuracies = summary.get("accuracies") or {  # baselines still running: the ones that finished
            metrics.parent.parent.name: _read(metrics) for metrics in sorted(run.glob("baselines/*/final/metrics.json"))
        }
        for name, acc in accuracies.items():
            if name != "search":
                rows.setdefault(f"baseline {name}", {})[seed] = {
                    "accuracy": acc["test_accuracy"],
                    "verdict": "",
                    "multiple": None,
                }
    return rows


def _answer_row(run: Path, summary: dict, evaluations: float, final: dict) -> dict:
    """The answer's accuracy, its verdict against the best baseline and its cost (baselines included)."""
    n, answer, best = summary["test_images"], summary["answer"]["test_accuracy"], summary["best_baseline"]
    theirs = summary["accuracies"][best]["test_accuracy"]
    baselines = sum(
        _read(run / "baselines" / name / "final" / "metrics.json")["wall_seconds"]
        for name in summary["accuracies"]
        if name != "search"
    )
    return {
        "accuracy": answer,
        "verdict": verdict(answer, binomial_se(answer, n), theirs, binomial_se(theirs, n)),
        "multiple": (evaluations + final["wall_seconds"] + baselines) / final["seconds"],
    }


def best_baseline(rows: dict[str, dict[int, dict]]) -> str | None:
    """The baseline row with the highest mean test accuracy over its seeds (None without baselines)."""
    means = {
        label: statistics.fmean(r["accuracy"] for r in per.values())
        for label, per in rows.items()
        if label.startswith("baseline ") and per
    }
    return max(means, key=lambda label: means[label]) if means else None


def paired(per: dict[int, dict], other: dict[int, dict]) -> str:
    """Mean ± std of the per-seed difference (points) over the seeds both rows have, and their count."""
    diffs = [100 * (per[s]["accuracy"] - other[s]["accuracy"]) for s in sorted(per) if s in other]
    if not diffs:
        return ""
    std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    return f"{statistics.fmean(diffs):+.2f} ± {std:.2f} ({len(diffs)})"


def table(rows: dict[str, dict[int, dict]]) -> str:
    """A markdown table: per-seed test %, mean ± std, verdicts, the paired difference to the best
    baseline (mean ± std over the seeds both have, their count in brackets) and the cost."""
    seeds = sorted({s for per in rows.values() for s in per})
    best = best_baseline(rows)
    versus = f"paired to {best.removeprefix('baseline ')}" if best else "paired to best baseline"
    head = ["strategy", *(f"seed {s}" for s in seeds), "mean ± std", "verdicts", versus, "wall / final"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, per in rows.items():
        accs = [100 * per[s]["accuracy"] for s in seeds if s in per]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        verdicts = ", ".join(per[s]["verdict"] for s in seeds if per.get(s, {}).get("verdict"))
        multiples = [per[s]["multiple"] for s in seeds if per.get(s, {}).get("multiple")]
        cells = [
            label,
            *(f"{100 * per[s]['accuracy']:.2f}" if s in per else "" for s in seeds),
            f"{statistics.fmean(accs):.2f} ± {std:.2f}",
            verdicts,
            paired(per, rows[best]) if best and label != best else "",
            f"{statistics.fmean(multiples):.1f}x" if multiples else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patterns", nargs="+", help="globs of run folders named LABEL-sSEED")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="add the best test accuracy among each answered run's candidates (a bound, not a rule)",
    )
    args = parser.parse_args()
    print(table(collect(args.patterns, ceiling=args.ceiling)))


if __name__ == "__main__":
    main()
