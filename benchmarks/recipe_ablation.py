"""The recipe table of docs/results/fashion-mnist.md: linear, full and last-k on the vision
benchmark under the paper's optimiser, the new default, and each recipe option alone on top of
the paper's.

    python benchmarks/recipe_ablation.py --variants paper,default --seeds 0,1,2 --out benchmarks/results/recipe
    python benchmarks/recipe_ablation.py --table benchmarks/results/recipe   # the markdown table
    python benchmarks/recipe_ablation.py --benchmark text --variants paper,bert --epochs 10 \
        --out benchmarks/results/text-recipe                                # docs/results/text.md
    python benchmarks/recipe_ablation.py --benchmark text --jobs bert:linear,bert:full,bert:last-k \
        --epochs 10 --pooling cls --out benchmarks/results/text-pooling-cls # docs/results/text.md

One JSON file per (variant, strategy, seed) under --out, written when the run ends: rerunning
skips what is done, so the study resumes and can be split over processes (--shard i/n).
Benchmarks (--benchmark): vision, EfficientNet-Lite0 (offline ImageNet weights) -> Fashion-MNIST,
50 train + 50 validation images per class from the training files, 64 px, 2,000 test images;
text, all-MiniLM-L6-v2 -> WordNet noun definitions, 10 categories, 50 + 50 per class, 32 tokens,
2,000 test definitions. One --seed drives the split, the head, the batch order and the
augmentation draws.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from layerswarm.data import DataConfig, load_dataset
from layerswarm.io import atomic_write_json
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.finetune import run_finetune
from layerswarm.strategies import create_strategy
from layerswarm.training.config import recipe_config

# label -> (strategy, options). "middle": blocks 4-11 of Lite0's 17 trained, 12-16 frozen behind
# them: the kind of mask a search finds, and the one where BatchNorm re-estimation can act at all
# (it touches only frozen units behind a trained one: none in linear, full or last-k).
STRATEGIES = {
    "linear": ("linear", {}),
    "full": ("full", {}),
    "last-k": ("last-k", {"k": 4}),
    "middle": ("mask", {"mask": [0] * 4 + [1] * 8 + [0] * 5}),
}
# The practitioner's recipe measured against the paper's: SGD as the paper, plus every option
# below. Each option alone on top of the paper's recipe makes a row that reads as its effect.
CANDIDATE = {
    "head_lr_mult": 10.0,
    "warmup_epochs": 2.0,
    "schedule": "cosine",
    "decay_norm_bias": False,
    "label_smoothing": 0.1,
    "augment": "rrc",
}
VARIANTS: dict[str, tuple[str, dict]] = {
    "paper": ("paper", {}),
    "practitioner": ("paper", CANDIDATE),
    "+head-lr-10": ("paper", {"head_lr_mult": 10.0}),
    "+warmup-cosine": ("paper", {"warmup_epochs": 2.0, "schedule": "cosine"}),
    "+no-decay-norm-bias": ("paper", {"decay_norm_bias": False}),
    "+label-smoothing": ("paper", {"label_smoothing": 0.1}),
    "+rrc": ("paper", {"augment": "rrc"}),
    "+adamw": ("paper", {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05}),
    "+bn-recalibrate": ("paper", {"bn_recalibrate": True}),
    "bert": ("bert", {}),
}
BENCHMARKS = {
    "vision": ("efficientnet_lite0", {"data": "fashion-mnist", "image": {"size": 64}}),
    "text": ("all-minilm-l6-v2", {"data": "wordnet", "text": {"max_length": 32, "tokenizer": "all-minilm-l6-v2"}}),
}


def run_one(
    variant: str,
    strategy: str,
    seed: int,
    epochs: int,
    data_root: str | None,
    device: str,
    benchmark: str = "vision",
    pooling: str = "mean",
) -> dict:
    recipe, changes = VARIANTS[variant]
    cfg = recipe_config(recipe, **changes, epochs=epochs, seed=seed, test_every=epochs, val_every=epochs, device=device)
    model, data_spec = BENCHMARKS[benchmark]
    splits = {"train_per_class": 50, "val_per_class": 50, "max_test": 2000, "seed": seed}
    data = load_dataset(DataConfig.from_dict({**data_spec, "data_root": data_root, "splits": splits}))
    bundle = build_bundle(
        ModelConfig(name=model, **({"pooling": pooling} if benchmark == "text" else {})),
        data.num_classes,
        cfg,
        seed=seed,
    )
    # last-k: k=4 of Lite0's 17 units; on MiniLM the last 3 layers (k=3 of embeddings and 6 layers; with
    # cls pooling the pooler is a unit too: k=4)
    text_k = 3 if pooling == "mean" else 4
    name, options = ("last-k", {"k": text_k}) if (benchmark, strategy) == ("text", "last-k") else STRATEGIES[strategy]
    metrics = run_finetune(bundle, data, create_strategy(name, options), cfg, seed=seed)
    return {
        "variant": variant,
        "strategy": strategy,
        "seed": seed,
        "benchmark": benchmark,
        "config": cfg.to_dict(),
        **({"pooling": pooling} if benchmark == "text" else {}),
        "test_accuracy": metrics["test_accuracy"],
        "val_accuracy": metrics["val_accuracy"],
        "seconds_per_epoch": metrics["seconds"] / max(len(metrics["epochs"]), 1),
        "epochs": metrics["epochs"],
        "threads": torch.get_num_threads(),
    }


def table(out: Path) -> str:
    rows: dict[tuple[str, str], list[dict]] = {}
    for f in sorted(out.glob("*.json")):
        r = json.loads(f.read_text())
        if "test_accuracy" not in r:
            continue
        rows.setdefault((r["variant"], r["strategy"]), []).append(r)

    def cell(rs: list[dict], key: str) -> str:
        vals = [100 * r[key] for r in rs if r.get(key) is not None]
        if not vals:
            return "-"
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return f"{statistics.mean(vals):.2f} ± {sd:.2f}" + ("" if len(vals) >= 3 else f" (n={len(vals)})")

    def paired(v: str, s: str) -> str:
        """Mean ± std over seeds of (this row - the paper row), same seed: the option's effect."""
        base = {r["seed"]: r["test_accuracy"] for r in rows.get(("paper", s), [])}
        diffs = [100 * (r["test_accuracy"] - base[r["seed"]]) for r in rows.get((v, s), []) if r["seed"] in base]
        if v == "paper" or len(diffs) < 2:
            return ""
        return f" ({statistics.mean(diffs):+.2f} ± {statistics.stdev(diffs):.2f})"

    columns = [s for s in STRATEGIES if any(key[1] == s for key in rows)]
    # no time column: these runs share the cores (benchmarks/epoch_time.py measures speed)
    lines = ["| recipe | " + " | ".join(columns) + " |", "|---" * (1 + len(columns)) + "|"]
    for v in VARIANTS:
        if not any((v, s) in rows for s in columns):
            continue
        final = [cell(rows.get((v, s), []), "test_accuracy") + paired(v, s) for s in columns]
        lines.append(f"| {v} | " + " | ".join(final) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--strategies", default="linear,full,last-k")
    ap.add_argument(
        "--jobs",
        default=None,
        help="VARIANT:STRATEGY,... in this order (each over --seeds); "
        "default: paper and practitioner on --strategies, then every option row on --effects",
    )
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--effects", default="last-k", help="strategies the single-option rows run (all: the 3)")
    ap.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="vision")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--pooling", choices=["mean", "cls"], default="mean", help="text: the head's pooling")
    ap.add_argument("--out", default="benchmarks/results/recipe")
    ap.add_argument("--shard", default="0/1", help="i/n: run every n-th job starting at i (one process per core)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--table", metavar="DIR", default=None, help="print the markdown table of DIR and exit")
    args = ap.parse_args()
    if args.table:
        print(table(Path(args.table)), end="")
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.jobs:
        pairs = [tuple(job.split(":")) for job in args.jobs.split(",")]
        jobs = [(v, s, int(seed)) for v, s in pairs for seed in args.seeds.split(",")]
    else:
        jobs = [
            (v, s, int(seed))
            for v in args.variants.split(",")
            for seed in args.seeds.split(",")
            for s in args.strategies.split(",")
            if v in ("paper", "practitioner") or s in args.effects.split(",")
        ]
    index, count = map(int, args.shard.split("/"))
    for n, (v, s, seed) in enumerate(jobs):
        path = out / f"{v}__{s}__{seed}.json"
        if n % count != index or path.exists():
            continue
        start = time.perf_counter()
        result = run_one(v, s, seed, args.epochs, args.data_root, args.device, args.benchmark, args.pooling)
        atomic_write_json(path, result)
        print(
            f"{v:<20} {s:<7} seed {seed}: test {result['test_accuracy']:.4f} ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
