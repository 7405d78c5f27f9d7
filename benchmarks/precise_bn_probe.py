"""Is full fine-tuning's low short fitness BatchNorm lag? (docs/results/digits.md)

The fidelity study's masks (benchmarks/results/fidelity/DATA, the same seed and recipe) trained
for 10 epochs; after epochs 2, 5 and 10 a copy of the model has every BatchNorm behind the first
trained parameter re-estimated on the training images (no augmentation, cumulative average;
"precise BN") and is validated beside the run's own validation with the running statistics.
Training itself is untouched. Run with the kernels of the stored curves (docs/results/index.md):

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/precise_bn_probe.py --data digits \
        --out benchmarks/results/precise-bn/digits
    python benchmarks/precise_bn_probe.py --table benchmarks/results/precise-bn/digits

One JSON per mask under --out; rerunning skips the finished ones.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from torch import nn

from layerswarm.data import DataConfig, load_dataset
from layerswarm.data.config import SplitConfig
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.strategies import create_strategy
from layerswarm.strategies.base import StrategyContext
from layerswarm.training.config import recipe_config
from layerswarm.training.optim import reestimate_bn
from layerswarm.training.trainer import accuracy, eval_batches, fit

CHECKED = (2, 5, 10)  # epochs after which the copy is re-estimated and validated


def precise_val(model: nn.Module, data, transform) -> float:
    """Validation accuracy of a copy whose BatchNorm layers behind the first trained parameter
    have running statistics re-estimated on the training images."""
    m = copy.deepcopy(model).eval()
    behind, layers = False, []
    for module in m.modules():
        behind = behind or any(p.requires_grad for p in module.parameters(recurse=False))
        if behind and isinstance(module, nn.modules.batchnorm._BatchNorm):
            layers.append(module)
    cpu = torch.device("cpu")
    reestimate_bn(m, layers, (x for x, _ in eval_batches(data.train, transform, 256, cpu)))
    return accuracy(m, eval_batches(data.val, transform, 256, cpu))


def table(out: Path) -> str:
    lines = ["| mask | val@5 | precise@5 | val@10 | precise@10 | test@30 (fidelity run) |", "|---|---|---|---|---|---|"]
    runs = [json.loads(f.read_text()) for f in sorted(out.glob("*.json"))]
    for r in sorted(runs, key=lambda r: -r["test30"]):
        lines.append(
            f"| {r['mask_name']} `{''.join(map(str, r['mask']))}` | {100 * r['val'][4]:.1f} | "
            f"{100 * r['precise']['5']:.1f} | {100 * r['val'][9]:.1f} | {100 * r['precise']['10']:.1f} | "
            f"{100 * r['test30']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="digits", choices=["digits", "fashion-mnist"])
    ap.add_argument("--out", default="benchmarks/results/precise-bn/digits")
    ap.add_argument("--table", metavar="DIR", default=None)
    args = ap.parse_args()
    if args.table:
        print(table(Path(args.table)), end="")
        return
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stored = sorted(Path(f"benchmarks/results/fidelity/{args.data}").glob("*__step30.json"))
    data = load_dataset(
        DataConfig(data=args.data, splits=SplitConfig(train_per_class=50, val_per_class=50, max_test=2000, seed=0))
    )
    cfg = recipe_config("paper", epochs=max(CHECKED), seed=0, val_every=1, device="cpu")
    bundle = build_bundle(ModelConfig(name="efficientnet_lite0"), data.num_classes, cfg, seed=0)
    transform = bundle.transform_for(cfg)
    for path in stored:
        run = json.loads(path.read_text())
        target = out / f"{run['mask_name']}.json"
        if target.exists():
            continue
        model = bundle.reset(0)
        plan = create_strategy("mask", {"mask": run["mask"]}).plan(
            StrategyContext(bundle, data.for_search(), cfg, seed=0, out_dir=None)
        )
        model = plan.model if plan.model is not None else model
        precise = {}

        def on_epoch(record, model=model, precise=precise):
            if record["epoch"] in CHECKED:
                precise[record["epoch"]] = precise_val(model, data, transform)

        history = fit(
            model,
            data.train,
            data.val,
            cfg,
            transform,
            frozen=plan.frozen,
            head=plan.head or bundle.info.head,
            param_groups=plan.param_groups,
            hooks=plan.hooks,
            on_epoch=on_epoch,
        )
        result = {
            "mask_name": run["mask_name"],
            "mask": run["mask"],
            "val": [e["val_accuracy"] for e in history.epochs],
            "precise": precise,
            "stored_val": run["val_by_epoch"][:10],
            "test30": run["test_accuracy"],
        }
        target.write_text(json.dumps(result))
        print(f"{run['mask_name']}: val@5 {result['val'][4]:.3f} precise@5 {precise[5]:.3f}", flush=True)


if __name__ == "__main__":
    main()
