"""How well does a short fitness predict the final result? (the results pages, docs/results/)

For each of N masks (linear, full, last-k for k = 1, 2, 4, 8, and random masks of random density)
and M learning-rate plans (``--space lr``: a random share of units trains, each at a random level
of the ladder 0.3, 1, 3) one 30-epoch fine-tune is validated after every epoch and tested at the
end. With the paper's step schedule (x0.1 every 30 epochs) the first e epochs of that run are exactly an e-epoch
fitness evaluation, so one run gives the truncated fitness for every budget e. Each mask is also
trained in a complete short run of e epochs whose cosine schedule decays to zero within the
budget: it ends converged and may rank masks better. The table gives Spearman's rank correlation
between each fitness and the 30-epoch test accuracy, and how often each fitness's best mask is
within the test set's noise of the best final mask.

    python benchmarks/fitness_fidelity.py --data digits --out benchmarks/results/fidelity/digits [--shard i/n]
    python benchmarks/fitness_fidelity.py --table benchmarks/results/fidelity/digits
    python benchmarks/fitness_fidelity.py --data digits --head-init warm --no-short --out \
        benchmarks/results/fidelity/digits-warm

One JSON file per (mask, run) under --out, written when the run ends: rerunning skips what is
done, so the study resumes and can be split over processes.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import curve_fit
from scipy.stats import spearmanr

from layerswarm.data import DataConfig, load_dataset
from layerswarm.data.config import SplitConfig
from layerswarm.fitness.evaluation import curve_score
from layerswarm.io import atomic_write_json
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.finetune import run_finetune
from layerswarm.searchers.space import DEFAULT_LADDER
from layerswarm.strategies import create_strategy
from layerswarm.training.config import recipe_config

BUDGETS = (1, 2, 5, 10)  # fitness epochs the table reports
SHORT = (1, 2, 5)  # budgets of the complete (cosine-to-zero) short runs


def plans(units: int, count: int, seed: int, ladder: tuple[float, ...] = DEFAULT_LADDER) -> dict[str, list[float]]:
    """``count`` random learning-rate plans (one ladder level per unit, ``--space lr``), drawn as the
    masks are: a random share of units trains, each at a uniformly drawn non-zero level."""
    rng = np.random.default_rng(10_000 + seed)  # its own stream: adding plans leaves the masks as they were
    named: dict[str, list[float]] = {}
    while len(named) < count:
        density = rng.uniform(0.1, 0.9)
        rates = [float(rng.choice(ladder[1:])) if rng.random() < density else 0.0 for _ in range(units)]
        if any(rates) and rates not in named.values():
            named[f"plan-{len(named) + 1:02d}"] = rates
    return named


def masks(units: int, random_count: int, seed: int) -> dict[str, list[int]]:
    named = {"linear": [0] * units, "full": [1] * units}
    for k in (1, 2, 4, 8):
        named[f"last-{k}"] = [0] * (units - k) + [1] * k
    rng = np.random.default_rng(seed)
    while len(named) < 6 + random_count:
        density = rng.uniform(0.1, 0.9)  # sparse and dense masks both: a swarm visits both
        mask = [int(b) for b in rng.random(units) < density]
        if mask not in named.values():
            named[f"random-{len(named) - 5:02d}"] = mask
    return named


def run(args, data, bundle, name: str, rates: list[float], epochs: int, schedule: str) -> dict:
    """One fine-tune of a mask (rates 0/1) or a level plan, validated every epoch, tested at the end."""
    cfg = recipe_config(
        "paper",
        epochs=epochs,
        schedule=schedule,
        seed=args.seed,
        val_every=1,
        test_every=epochs,
        device="cpu",
        head_init=args.head_init,
    )
    start = time.perf_counter()
    mask = [int(r > 0) for r in rates]
    options = {"mask": mask} if set(rates) <= {0, 1} else {"mask": mask, "lr_multipliers": rates}
    metrics = run_finetune(bundle, data, create_strategy("mask", options), cfg, seed=args.seed)
    return {
        "mask_name": name,
        "mask": mask,
        **({"lr_multipliers": rates} if "lr_multipliers" in options else {}),
        "epochs": epochs,
        "schedule": schedule,
        "seed": args.seed,
        "data": args.data,
        "val_by_epoch": [e["val_accuracy"] for e in metrics["epochs"]],
        "test_accuracy": metrics["test_accuracy"],
        "test_images": len(data.test),
        "seconds": time.perf_counter() - start,
    }


def extrapolate(curve: list[float], at: int) -> float:
    """Learning-curve extrapolation: fit v(t) = a - b exp(-c t) to the validation curve (epochs
    1..len) and read it at epoch ``at``; the curve's last value when the fit fails. A score tried
    here, offline, on the stored curves (docs/results/digits.md); not a ``--fitness-score``."""
    t = np.arange(1, len(curve) + 1, dtype=float)
    y = np.asarray(curve, dtype=float)

    def model(t, a, b, c):
        return a - b * np.exp(-c * t)

    try:
        params, _ = curve_fit(model, t, y, p0=[y[-1], y[-1] - y[0], 0.3], bounds=([0, -2, 0], [1, 2, 5]))
    except (RuntimeError, ValueError):
        return float(y[-1])
    return float(model(at, *params))


def table(out: Path, final_epochs: int) -> str:
    runs = [json.loads(f.read_text()) for f in sorted(out.glob("*.json"))]
    long = {r["mask_name"]: r for r in runs if r["schedule"] == "step" and r["epochs"] == final_epochs}
    short = {(r["mask_name"], r["epochs"]): r for r in runs if r["schedule"] == "cosine"}
    names = sorted(long)
    if len(names) < 3:
        return f"{len(names)} masks finished: too few for a rank correlation\n"
    final = np.array([long[n]["test_accuracy"] for n in names])
    n_test = runs[0]["test_images"]
    best_final = final.max()
    # one standard error of the best final accuracy, binomial over the test set
    noise = math.sqrt(best_final * (1 - best_final) / n_test)

    def row(label: str, scores: list[float | None]) -> str:
        pairs = [(s, f) for s, f in zip(scores, final, strict=True) if s is not None]
        if len(pairs) < 3:
            return f"| {label} | - | - | - | {len(pairs)} |"
        s, f = map(np.array, zip(*pairs, strict=True))
        rho = spearmanr(s, f).statistic
        pick = f[int(np.argmax(s))]  # the final accuracy of the mask this fitness calls best
        return f"| {label} | {rho:.2f} | {100 * pick:.2f} | {100 * (best_final - pick):.2f} | {len(pairs)} |"

    lines = [
        f"{len(names)} masks, seed {runs[0]['seed']}, data {runs[0]['data']}; best final test "
        f"{100 * best_final:.2f} (one standard error {100 * noise:.2f} points)",
        "",
        "| fitness | Spearman vs final test | final test of its best mask | gap to best final | masks |",
        "|---|---|---|---|---|",
    ]
    for e in BUDGETS:
        lines.append(row(f"truncated, {e} epoch{'s' * (e > 1)} (val)", [long[n]["val_by_epoch"][e - 1] for n in names]))
    for e in BUDGETS[1:]:  # --fitness-score trend: the same curves, scored by their rise since epoch e // 2
        lines.append(
            row(
                f"trend, {e} epochs (val + rise since epoch {e // 2})",
                [curve_score([{"val_accuracy": v} for v in long[n]["val_by_epoch"][:e]], "trend")[0] for n in names],
            )
        )
    for e in BUDGETS[2:]:  # three parameters need more than three points
        lines.append(
            row(
                f"exponential fit to {e} epochs, read at epoch {final_epochs}",
                [extrapolate(long[n]["val_by_epoch"][:e], final_epochs) for n in names],
            )
        )
    plan_names = [n for n in names if "lr_multipliers" in long[n]]
    if len(plan_names) >= 3:  # within each kind: does the fitness rank plans as well as it ranks masks?
        for kind, members in (("masks", [n for n in names if n not in plan_names]), ("plans", plan_names)):
            for e in BUDGETS[2:]:
                lines.append(
                    row(
                        f"truncated, {e} epochs (val), {kind} only",
                        [long[n]["val_by_epoch"][e - 1] if n in members else None for n in names],
                    )
                )
    for e in SHORT:
        lines.append(
            row(
                f"complete cosine run, {e} epoch{'s' * (e > 1)} (val)",
                [short[(n, e)]["val_by_epoch"][-1] if (n, e) in short else None for n in names],
            )
        )
    lines.append(row(f"{final_epochs} epochs (val)", [long[n]["val_by_epoch"][-1] for n in names]))
    lines += [
        "",
        "| mask | " + " | ".join(f"val@{e}" for e in BUDGETS) + f" | val@{final_epochs} | test@{final_epochs} |",
        "|---" * (3 + len(BUDGETS)) + "|",
    ]
    for n in sorted(names, key=lambda n: -long[n]["test_accuracy"]):
        v = long[n]["val_by_epoch"]
        levels = long[n].get("lr_multipliers") or long[n]["mask"]
        lines.append(
            f"| {n} `{' '.join(f'{r:g}' for r in levels)}` | "
            + " | ".join(f"{100 * v[e - 1]:.1f}" for e in BUDGETS)
            + f" | {100 * v[-1]:.1f} | {100 * long[n]['test_accuracy']:.2f} |"
        )
    secs = [long[n]["seconds"] for n in names]
    lines.append(
        f"\n(mean {statistics.mean(secs):.0f} s per {final_epochs}-epoch run, shared cores: not a speed figure)"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="digits", choices=["digits", "fashion-mnist"])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--random-masks", type=int, default=18)
    ap.add_argument(
        "--plans", type=int, default=12, help="random learning-rate plans (ladder levels per unit) beside the masks"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--final-epochs", type=int, default=30)
    ap.add_argument("--out", default="benchmarks/results/fidelity/digits")
    ap.add_argument("--shard", default="0/1", help="i/n: run every n-th mask starting at i")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--table", metavar="DIR", default=None)
    ap.add_argument(
        "--head-init",
        default="cold",
        choices=["cold", "warm"],
        help="warm: every run starts from the head fitted on frozen features (TrainConfig.head_init)",
    )
    ap.add_argument("--no-short", action="store_true", help="only the long runs (no complete cosine short runs)")
    args = ap.parse_args()
    if args.table:
        print(table(Path(args.table), args.final_epochs), end="")
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(
        DataConfig(
            data=args.data, splits=SplitConfig(train_per_class=50, val_per_class=50, max_test=2000, seed=args.seed)
        )
    )
    bundle = build_bundle(
        ModelConfig(name=args.model), data.num_classes, recipe_config("paper", device="cpu"), seed=args.seed
    )
    index, count = map(int, args.shard.split("/"))
    units = len(bundle.units)
    candidates = {name: [float(b) for b in mask] for name, mask in masks(units, args.random_masks, args.seed).items()}
    candidates.update(plans(units, args.plans, args.seed))
    for n, (name, rates) in enumerate(candidates.items()):
        if n % count != index:
            continue
        for epochs, schedule in [(args.final_epochs, "step")] + [(e, "cosine") for e in SHORT] * (not args.no_short):
            path = out / f"{name}__{schedule}{epochs}.json"
            if path.exists():
                continue
            result = run(args, data, bundle, name, rates, epochs, schedule)
            atomic_write_json(path, result)
            print(
                f"{name:<10} {' '.join(f'{r:g}' for r in rates)} {schedule}{epochs}: "
                f"val {result['val_by_epoch'][-1]:.3f} test {result['test_accuracy']:.4f} "
                f"({result['seconds']:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
