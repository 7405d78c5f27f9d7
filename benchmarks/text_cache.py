"""What the frozen-prefix cache saves on a text encoder, side by side in one process: one fitness
evaluation of all-MiniLM-L6-v2 on the text benchmark (WordNet nouns, 10 categories, 50 + 50 per
class, 32 tokens), the bert recipe, 2 epochs, for masks that freeze the first d of its 7 units
(embeddings, layers 0-5), with and without the cache. One torch thread.

    python benchmarks/text_cache.py --depths 0,1,3,5,7

Per depth: the plain evaluation; the cached one that builds the level (first mask at that
depth); and a cached one that finds it built (every later mask with that frozen prefix). The
fitness curves must be equal to the last bit (the script stops otherwise).
"""

from __future__ import annotations

import argparse
import time

import torch

from layerswarm.data import DataConfig, load_dataset
from layerswarm.data.config import SplitConfig, TextConfig
from layerswarm.fitness.mask_fitness import MaskFitness
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.speed import PrefixCache
from layerswarm.training.config import recipe_config


def _timed(evaluate, mask) -> tuple[float, list]:
    start = time.perf_counter()
    curve = [{k: v for k, v in r.items() if k != "seconds"} for r in evaluate(mask).epochs]
    return time.perf_counter() - start, curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", default="0,1,3,5,7", help="leading frozen units of each mask")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = recipe_config("bert", epochs=args.epochs, device="cpu", seed=0)
    data = load_dataset(
        DataConfig(
            data="wordnet",
            text=TextConfig(max_length=32, tokenizer="all-minilm-l6-v2"),
            splits=SplitConfig(train_per_class=50, val_per_class=50, max_test=100, seed=0),
        )
    )
    bundle = build_bundle(ModelConfig(name="all-minilm-l6-v2"), data.num_classes, cfg, seed=0)
    splits, n = data.for_search(), len(bundle.units)
    plain = MaskFitness(bundle, splits, cfg)
    plain([1] * n, epochs=1)  # warm-up (allocator, kernels): the first evaluation of a process is slower
    rows = []
    for depth in map(int, args.depths.split(",")):
        mask = [0] * depth + [1] * (n - depth)
        cached = MaskFitness(bundle, splits, cfg, cache=PrefixCache(splits, bundle.transform))
        t_plain, reference = _timed(plain, mask)
        t_build, first = _timed(cached, mask)
        t_hit, again = _timed(cached, mask)
        if not first == again == reference:
            raise SystemExit(f"depth {depth}: the cached fitness differs from the plain one")
        rows.append((depth, "".join(map(str, mask)), t_plain, t_build, t_hit))
        print(
            f"depth {depth}: plain {t_plain:.1f} s, cached (build) {t_build:.1f} s, cached (built) {t_hit:.1f} s, "
            f"x{t_plain / t_hit:.2f}",
            flush=True,
        )
    print(
        "\n| frozen prefix | mask | plain s | cached, building s | cached, built s | speed-up (built) |\n"
        "|---|---|---|---|---|---|"
    )
    for depth, mask, t_plain, t_build, t_hit in rows:
        print(f"| {depth} | `{mask}` | {t_plain:.1f} | {t_build:.1f} | {t_hit:.1f} | x{t_plain / t_hit:.2f} |")


if __name__ == "__main__":
    main()
