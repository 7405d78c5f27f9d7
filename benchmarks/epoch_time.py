"""Wall time of one training epoch at 64 and 224 px, side by side in one process: EfficientNet-Lite0
on the benchmark's 500 Fashion-MNIST training images, full fine-tuning and the linear probe, the
default recipe, one torch thread (the figure for one core of this machine).

    python benchmarks/epoch_time.py --sizes 64,224 --repeats 2

Each (size, strategy) is trained for 1 + repeats epochs; the first (warm-up: allocator, kernels)
and the last (it validates) are dropped, the fastest of the rest printed with the ratio to the first size.
"""

from __future__ import annotations

import argparse

import torch

from layerswarm.data import DataConfig, load_dataset
from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.finetune import run_finetune
from layerswarm.strategies import create_strategy
from layerswarm.training import TrainConfig
from layerswarm.training.config import EvalConfig, RuntimeConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,224")
    ap.add_argument("--strategies", default="full,linear")
    ap.add_argument("--repeats", type=int, default=2, help="timed epochs (at least 2)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for strategy in args.strategies.split(","):
        base = None
        for size in map(int, args.sizes.split(",")):
            data = load_dataset(
                DataConfig(
                    data="fashion-mnist",
                    image=ImageConfig(size=size),
                    splits=SplitConfig(train_per_class=50, val_per_class=50, max_test=100),
                )
            )
            cfg = TrainConfig(
                epochs=1 + args.repeats,
                evaluation=EvalConfig(val_every=1000, test_every=1000),
                runtime=RuntimeConfig(device="cpu"),
            )
            bundle = build_bundle(ModelConfig(name="efficientnet_lite0"), data.num_classes, cfg)
            metrics = run_finetune(bundle, data, create_strategy(strategy), cfg)
            ends = [e["seconds"] for e in metrics["epochs"]]
            # epochs 2.. without the last (which also validates and tests); epoch 1 warms up
            per_epoch = min(b - a for a, b in zip(ends[:-1], ends[1:-1], strict=False))
            base = base or per_epoch
            rows.append((strategy, size, per_epoch, per_epoch / base))
            print(f"{strategy:<7} {size:>4} px: {per_epoch:6.1f} s/epoch  x{per_epoch / base:.1f}", flush=True)
    print("\n| strategy | px | s/epoch (500 images, 1 thread) | ratio |\n|---|---|---|---|")
    for strategy, size, sec, ratio in rows:
        print(f"| {strategy} | {size} | {sec:.1f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
