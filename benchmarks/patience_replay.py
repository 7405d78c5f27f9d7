"""What `--patience P` would have done to finished searches, read from their records.

    python benchmarks/patience_replay.py 'benchmarks/results/search/*-paper-s?' --patience 2,3,4

A run with patience is the first generations of the same run without it (tests/test_patience.py),
so a finished run's evaluations.jsonl says where it would have stopped, which mask it would
have fine-tuned, and what its search would have cost: the seconds of the evaluations up to the
stop, as a multiple of the run's final fine-tune (+ 1 for the final itself, as search_table.py
counts). The final fine-tune of a mask other than the run's own is not in the records: fine-tune
it (`layerswarm finetune --mask`) to know its test accuracy.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

from layerswarm.io import read_jsonl
from layerswarm.searchers.patience import batches_without_gain


def replay(run: Path, patience: int) -> dict:
    records = [r for r in read_jsonl(run / "evaluations.jsonl") if not r.get("phase")]
    final = json.loads((run / "final" / "metrics.json").read_text())
    generations = sorted({r["generation"] for r in records})
    history, best, stop = [], None, generations[-1]
    for g in generations:
        for r in (r for r in records if r["generation"] == g and r["fitness"] is not None):
            if best is None or r["fitness"] > best["fitness"]:  # strict >: the first of equals, as the searchers
                best = r
        if best is None:  # every evaluation so far failed: the searchers have no best either
            continue
        history.append({"best_fitness": best["fitness"]})
        if batches_without_gain(history) >= patience:
            stop = g
            break
    seconds = sum(float(r.get("seconds") or 0.0) for r in records if r["generation"] <= stop)
    everything = sum(float(r.get("seconds") or 0.0) for r in records)
    return {
        "run": run.name,
        "patience": patience,
        "stop": stop,
        "generations": len(generations),
        "mask": "".join(map(str, best["mask"])),
        "fitness": best["fitness"],
        "same_mask": best["mask"] == final["mask"],
        "multiple": 1 + seconds / final["seconds"],
        "without": 1 + everything / final["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patterns", nargs="+", help="globs of search run folders")
    parser.add_argument("--patience", default="2,3,4", help="comma-separated values of P")
    args = parser.parse_args()
    values = [int(p) for p in args.patience.split(",")]
    print(
        "| run | P | stops after generation | its best mask | fitness | = the run's mask | wall / final (without P) |"
    )
    print("|---|---|---|---|---|---|---|")
    for folder in sorted({p for pattern in args.patterns for p in glob.glob(pattern)}):
        if not (Path(folder) / "final" / "metrics.json").is_file():
            continue
        for p in values:
            r = replay(Path(folder), p)
            print(
                f"| {r['run']} | {p} | {r['stop']} of {r['generations'] - 1} | `{r['mask']}` | {r['fitness']:.3f} | "
                f"{'yes' if r['same_mask'] else 'no'} | {r['multiple']:.1f}x ({r['without']:.1f}x) |"
            )


if __name__ == "__main__":
    main()
