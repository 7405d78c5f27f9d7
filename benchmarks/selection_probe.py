"""Would a baseline's mask have won a run's final selection? Evaluates full and last-k masks the
way ``--final-select`` evaluated that run's candidates (same budget, fresh seeds, split and seed)
and prints them beside the candidates' selection fitnesses.

    OMP_NUM_THREADS=1 python benchmarks/selection_probe.py runs/digits-sel10-s0 runs/digits-sel10-s1 --last-k 8

On digits (docs/results/digits.md) full fine-tuning ends best on most seeds, yet its 10-epoch
fitness is below the selected mask's on all 6 seeds, so adding it to the candidates would not
have chosen it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from layerswarm.data import load_dataset
from layerswarm.models.bundle import build_bundle
from layerswarm.run.driver import make_executor
from layerswarm.run.search import RunConfig
from layerswarm.run.selection import selection_config
from layerswarm.searchers import Trial


def probe(run: Path, last_k: int) -> dict:
    cfg = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    selection = json.loads((run / "best_mask.json").read_text())["selection"]
    data = load_dataset(cfg.data)
    bundle = build_bundle(cfg.model, data.num_classes, cfg.fitness, seed=cfg.seed)
    n = len(bundle.units)
    executor = make_executor(
        selection_config(cfg),
        bundle,
        data,
        None,
        repeats=selection["select_repeats"],
        seed_offset=cfg.search.fitness.repeats,
    )
    masks = {"full": [1] * n, f"last-{last_k}": [0] * (n - last_k) + [1] * last_k}
    trials = [Trial(number=i, generation=-1, index=i, mask=m) for i, m in enumerate(masks.values())]
    try:
        fitness = {name: ev.fitness for name, (_, ev) in zip(masks, executor.run(trials), strict=True)}
    finally:
        executor.close()
    return {
        "run": run.name,
        **fitness,
        "candidates": [c["selection_fitness"] for c in selection["candidates"]],
        "chosen": max(c["mean"] for c in selection["candidates"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with a final selection")
    parser.add_argument("--last-k", type=int, default=8)
    args = parser.parse_args()
    for run in args.runs:
        print(json.dumps(probe(run, args.last_k)), flush=True)


if __name__ == "__main__":
    main()
