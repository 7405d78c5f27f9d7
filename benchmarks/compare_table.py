"""One table from several `layerswarm compare` folders: mean ± std over every run found.

Run one compare per seed (one process per core), then merge:

    layerswarm compare ... --seed 0 --repeats 1 --out runs/text-compare/s0   # and s1, s2
    python benchmarks/compare_table.py 'runs/text-compare/s*'

A strategy's row lists its test accuracy per seed, the mean ± std, and the mean wall time per
run (a speed figure only when the runs had the machine to themselves).
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
from pathlib import Path


def collect(patterns: list[str]) -> dict[tuple[str, str], dict[int, dict]]:
    """``{(dataset, strategy): {seed: run}}`` from every ``run.json`` with its final metrics."""
    runs: dict[tuple[str, str], dict[int, dict]] = {}
    for pattern in patterns:
        for folder in sorted(glob.glob(pattern)):
            for run_file in Path(folder).glob("*/*/repeat-*/run.json"):
                run = json.loads(run_file.read_text())
                metrics_file = run_file.parent / "final" / "metrics.json"
                if not metrics_file.is_file():
                    continue
                metrics = json.loads(metrics_file.read_text())
                runs.setdefault((run["dataset"], run["strategy"]), {})[int(run["seed"])] = {
                    "test": metrics["test_accuracy"],
                    "seconds": metrics.get("wall_seconds", metrics.get("seconds")),
                }
    return runs


def table(runs: dict[tuple[str, str], dict[int, dict]]) -> str:
    seeds = sorted({s for by_seed in runs.values() for s in by_seed})
    lines = [
        "| dataset | strategy | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std | s/run |",
        "|---" * (4 + len(seeds)) + "|",
    ]
    for (dataset, strategy), by_seed in runs.items():
        tests = [100 * r["test"] for r in by_seed.values()]
        spread = (
            f"{statistics.mean(tests):.2f} ± {statistics.stdev(tests):.2f}" if len(tests) > 1 else f"{tests[0]:.2f}"
        )
        cells = [f"{100 * by_seed[s]['test']:.2f}" if s in by_seed else "-" for s in seeds]
        secs = statistics.mean(r["seconds"] for r in by_seed.values() if r["seconds"] is not None)
        lines.append(f"| {dataset} | {strategy} | " + " | ".join(cells) + f" | {spread} | {secs:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="compare --out folders (shell patterns allowed)")
    args = ap.parse_args()
    print(table(collect(args.folders)), end="")


if __name__ == "__main__":
    main()
