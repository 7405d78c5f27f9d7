"""``layerswarm bench``: the plain reference, layerswarm exact and layerswarm approximate,
side by side in one process, on EfficientNet-Lite0 / Fashion-MNIST (50 + 50 images per class,
the full 10,000-image test split, 64 px), with the paper's optimiser settings.

What is timed (``wall_seconds``): the search, Algorithm 1 lines 1-18, model set-up included.
The final fine-tune of the chosen mask and its test evaluation are the same procedure for
every variant (``final_finetune``), timed apart (``final_seconds``), and shared between
variants that chose the same mask: it is not what the speed-ups are about.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import DataConfig, DatasetSplits, load_dataset
from ..data.config import ImageConfig, SplitConfig
from ..io import atomic_write_json
from ..models.bundle import ModelBundle, ModelConfig, build_bundle
from ..run.config import RunConfig
from ..run.driver import make_executor, search_masks
from ..run.search_config import ExecutorConfig, SearchConfig, SearcherConfig
from ..searchers import create_searcher
from ..speed import SpeedConfig
from ..training import TrainConfig, evaluate, fit
from ..training.config import OptimConfig, RuntimeConfig
from ..training.trainer import resolve_device
from ..units import apply_mask
from .reference import plain_accuracy, reference_search

Log = Callable[[str], None]


@dataclass
class BenchPreset:
    particles: int
    generations: int
    fitness_epochs: int  # maxEpoch
    final_epochs: int
    throughput_epochs: int
    approximate: SpeedConfig = field(default_factory=SpeedConfig)
    lr: float = 0.01  # the paper's


# --quick fits in ~15-20 minutes on two busy CPU cores; --full is the paper's swarm (GPU).
# No fitness subset: on the swarm preset training on 30 % of the images ranked masks so
# differently that the chosen mask tested 11-13 points below the reference's
# (docs/results/speed.md).
APPROXIMATE = SpeedConfig(fidelity="halving", halving_epochs=1, halving_keep=0.25, early_stop=0.05)
PRESETS = {
    "quick": BenchPreset(
        particles=4, generations=3, fitness_epochs=2, final_epochs=2, throughput_epochs=1, approximate=APPROXIMATE
    ),
    # the paper's swarm shape, so that memoisation and the prefix cache meet a converging swarm,
    # with maxEpoch=2 so that it fits on a CPU
    "swarm": BenchPreset(
        particles=10, generations=12, fitness_epochs=2, final_epochs=2, throughput_epochs=1, approximate=APPROXIMATE
    ),
    "full": BenchPreset(
        particles=10, generations=12, fitness_epochs=5, final_epochs=110, throughput_epochs=3, approximate=APPROXIMATE
    ),
}
# --ablation: each approximate speed-up alone (on top of the exact ones), to see what each costs
ABLATION = {
    "approximate:halving": SpeedConfig(fidelity="halving", halving_epochs=1, halving_keep=0.25),
    "approximate:early-stop": SpeedConfig(early_stop=0.05),
    "approximate:subset": SpeedConfig(fitness_train_fraction=0.3, fitness_val_fraction=0.5),
}
MODEL = ModelConfig(name="efficientnet_lite0", weights="pretrained", granularity="block")


def bench_data(data_root: str | None = None) -> DatasetSplits:
    """Fashion-MNIST, 50 train + 50 val images per class from the training files, full test, 64 px."""
    return load_dataset(
        DataConfig(
            data="fashion-mnist",
            data_root=data_root,
            splits=SplitConfig(train_per_class=50, val_per_class=50, seed=0),
            image=ImageConfig(size=64),
        )
    )


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict]:
    """Peak memory during the block (MB): CUDA allocator peak, or this process's sampled RSS."""
    out: dict = {}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        yield out
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        return
    page, peak, done = os.sysconf("SC_PAGE_SIZE"), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            with open("/proc/self/statm") as fh:
                peak[0] = max(peak[0], int(fh.read().split()[1]) * page)
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        done.set()
        thread.join()
        out["peak_memory_mb"] = peak[0] / 2**20


def _fitness_cfg(preset: BenchPreset, seed: int, device: str, channels_last: bool = False) -> TrainConfig:
    # the paper's SGD settings; channels_last changes float rounding, so only the approximate run uses it
    return TrainConfig(
        epochs=preset.fitness_epochs,
        seed=seed,
        optim=OptimConfig(lr=preset.lr),
        runtime=RuntimeConfig(device=device, channels_last=channels_last),
    )


def run_reference(data: DatasetSplits, preset: BenchPreset, seed: int, device: str, model: ModelConfig = MODEL) -> dict:
    cfg = _fitness_cfg(preset, seed, device)
    bundle = build_bundle(model, data.num_classes, cfg, seed=seed)
    train, val = data.train.to(bundle.device), data.val.to(bundle.device)
    out = reference_search(
        bundle.model, bundle.units, train, val, cfg, bundle.transform, preset.particles, preset.generations, seed
    )
    n_train = len(data.train)
    out.update(
        evaluations=len(out["evaluations"]),
        epochs_trained=len(out["evaluations"]) * cfg.epochs,
        images_trained=len(out["evaluations"]) * cfg.epochs * n_train,
        fitnesses=[e["fitness"] for e in out["evaluations"]],
        masks=[e["mask"] for e in out["evaluations"]],
    )
    return out


def run_layerswarm(
    data: DatasetSplits,
    preset: BenchPreset,
    seed: int,
    device: str,
    speed: SpeedConfig,
    threads: int,
    model: ModelConfig = MODEL,
    channels_last: bool | None = None,
    backend: str = "local",
) -> dict:
    """``channels_last`` (default: on for approximate runs) changes float rounding, so never for exact ones.
    ``backend="ray"``: a generation's evaluations run in parallel as Ray tasks of ``threads`` CPUs
    (one GPU each on CUDA); with the same thread count each gives the local fitness, bit for bit."""
    channels_last = speed.approximate if channels_last is None else channels_last
    gpus = 1.0 if backend == "ray" and resolve_device(device).type == "cuda" else 0.0
    cfg = RunConfig(
        model=model,
        fitness=_fitness_cfg(preset, seed, device, channels_last=channels_last),
        search=SearchConfig(
            method=SearcherConfig(options={"particles": preset.particles, "generations": preset.generations}),
            executor=ExecutorConfig(backend=backend, cpus_per_trial=threads, gpus_per_trial=gpus),
        ),
        seed=seed,
        speed=speed,
    )
    bundle = build_bundle(cfg.model, data.num_classes, cfg.fitness, seed=seed)
    searcher = create_searcher("pso", len(bundle.units), cfg.search.method.options, seed=seed)
    records: list[dict] = []
    executor = make_executor(cfg, bundle, data)
    with tempfile.TemporaryDirectory(prefix="layerswarm-bench-") as out:
        try:
            mask, fitness = search_masks(searcher, executor, out, on_evaluation=records.append)
        finally:
            executor.close()
    records.sort(key=lambda r: r["number"])
    n_train = round(len(data.train) * speed.fitness_train_fraction)
    epochs = sum(r["epochs_trained"] for r in records)
    return {
        "best_mask": mask,
        "best_fitness": fitness,
        "evaluations": sum(r["epochs_trained"] > 0 for r in records),
        "epochs_trained": epochs,
        "images_trained": epochs * n_train,
        "fitnesses": [r["fitness"] for r in records],
        "masks": [r["mask"] for r in records],
    }


def final_finetune(bundle: ModelBundle, data: DatasetSplits, mask: list[int], epochs: int, seed: int) -> dict:
    """The chosen mask fine-tuned ``epochs`` epochs on train, tested once on the full test split."""
    start = time.perf_counter()
    # channels_last: ~1.6x faster CPU evaluation here; the same procedure for every variant's mask
    cfg = TrainConfig(epochs=epochs, seed=seed, runtime=RuntimeConfig(device=str(bundle.device), channels_last=True))
    model = bundle.reset()
    frozen = apply_mask(model, bundle.units, mask)
    history = fit(model, data.train, data.val, cfg, bundle.transform, frozen=frozen)
    test = evaluate(model, data.test, bundle.transform, batch_size=cfg.evaluation.eval_batch_size)
    return {
        "test_accuracy": test,
        "final_val_accuracy": history.final_val_accuracy,
        "final_seconds": time.perf_counter() - start,
    }


def measure_throughput(
    data: DatasetSplits, epochs: int, device: str, repeats: int = 2, model: ModelConfig = MODEL
) -> dict:
    """Images/s of a full fine-tune (every unit trained): ``fit`` against a bare loop with the
    same model, batch, optimiser, augmentation and per-epoch validation; best of ``repeats``,
    interleaved, so that load from other processes hits both alike."""
    cfg = TrainConfig(epochs=epochs, runtime=RuntimeConfig(device=device))
    bundle = build_bundle(model, data.num_classes, cfg)
    best = {"trainer": 0.0, "bare_loop": 0.0}

    def bare() -> int:
        model = bundle.reset()
        for p in model.parameters():
            p.requires_grad_(True)
        opt = torch.optim.SGD(
            model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay
        )
        gen, train = torch.Generator(device=bundle.device.type).manual_seed(cfg.seed), data.train.to(bundle.device)
        seen = 0
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(train), generator=gen, device=bundle.device)
            for i in range(0, len(train), cfg.optim.batch_size):
                idx = order[i : i + cfg.optim.batch_size]
                loss = F.cross_entropy(
                    model(bundle.transform(train.inputs[idx], train=True, generator=gen)), train.labels[idx]
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                seen += len(idx)
            plain_accuracy(model, data.val.to(bundle.device), bundle.transform, cfg.evaluation.eval_batch_size)
        return seen

    def trainer() -> int:
        model = bundle.reset()
        apply_mask(model, bundle.units, [1] * len(bundle.units))
        return fit(model, data.train, data.val, cfg, bundle.transform).images_seen

    for _ in range(repeats):
        for name, run in (("bare_loop", bare), ("trainer", trainer)):
            t0 = time.perf_counter()
            images = run()
            if bundle.device.type == "cuda":
                torch.cuda.synchronize()
            best[name] = max(best[name], images / (time.perf_counter() - t0))
    return {**best, "ratio": best["trainer"] / best["bare_loop"], "epochs": epochs, "repeats": repeats}


def _timed(run: Callable[[], dict], device: torch.device) -> dict:
    with peak_memory(device) as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        out = run()
        out["wall_seconds"], out["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
    out["peak_memory_mb"] = mem["peak_memory_mb"]
    out["images_per_second"] = out.pop("images_trained") / out["wall_seconds"]
    return out


def run_bench(
    preset_name: str = "quick",
    seeds: tuple[int, ...] = (0, 1, 2),
    device: str = "cpu",
    json_path: str | Path | None = None,
    data_root: str | None = None,
    log: Log = print,
    throughput: bool = True,
    preset: BenchPreset | None = None,
    model: ModelConfig = MODEL,
    data: DatasetSplits | None = None,
    threads: int | None = None,
    exact: bool = True,
    ablation: bool = False,
    backend: str = "local",
) -> dict:
    """Reference and approximate for every seed, exact for the first seed; see module doc.
    ``ablation`` adds each approximate speed-up alone (``ABLATION``) for every seed.
    ``preset``, ``model`` and ``data`` override the standard benchmark (tests use tiny ones)."""
    preset, dev = preset or PRESETS[preset_name], resolve_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()  # one count for every variant: CPU results depend on it
    data = data if data is not None else bench_data(data_root)
    log(
        f"bench {preset_name}: {data.summary()}; PSO n={preset.particles} G={preset.generations} "
        f"maxEpoch={preset.fitness_epochs}, final {preset.final_epochs} epochs, seeds {list(seeds)}, {threads} threads"
        f"{', layerswarm on Ray' if backend == 'ray' else ''}"
    )
    finals: dict[tuple, dict] = {}

    def final(mask: list[int], seed: int) -> dict:
        key = (tuple(mask), seed)
        if key not in finals:
            bundle = build_bundle(model, data.num_classes, TrainConfig(runtime=RuntimeConfig(device=device)), seed=seed)
            finals[key] = final_finetune(bundle, data, mask, preset.final_epochs, seed)
        return finals[key]

    variants = {
        "reference": lambda s: run_reference(data, preset, s, device, model),
        "exact": lambda s: run_layerswarm(
            data, preset, s, device, SpeedConfig.exact(), threads, model, backend=backend
        ),
        "approximate": lambda s: run_layerswarm(
            data, preset, s, device, preset.approximate, threads, model, backend=backend
        ),
    }
    for name, speed in ABLATION.items() if ablation else ():
        variants[name] = lambda s, speed=speed: run_layerswarm(
            data, preset, s, device, speed, threads, model, channels_last=False, backend=backend
        )  # each switch alone
    runs: dict[str, dict[int, dict]] = {k: {} for k in variants}
    for seed in seeds:
        for name, make in variants.items():
            if name == "exact" and (seed != seeds[0] or not exact):
                continue
            r = _timed(lambda make=make, seed=seed: make(seed), dev)
            r.update(final(r["best_mask"], seed))
            runs[name][seed] = r
            log(
                f"  seed {seed} {name:<11} {r['wall_seconds']:8.1f}s  evaluations {r['evaluations']:>3}  "
                f"epochs {r['epochs_trained']:>3}  fitness {r['best_fitness']:.4f}  test {r['test_accuracy']:.4f}  "
                f"mask {''.join(map(str, r['best_mask']))}"
            )
    result = summarise(runs, seeds[0])
    result.update(
        preset=preset_name,
        preset_config={k: v for k, v in vars(preset).items() if k != "approximate"},
        approximate_config=preset.approximate.to_dict(),
        ablation_configs={k: v.to_dict() for k, v in ABLATION.items()} if ablation else None,
        seeds=list(seeds),
        device=str(dev),
        threads=threads,
        backend=backend,
        torch=torch.__version__,
    )
    if throughput:
        result["throughput"] = measure_throughput(data, preset.throughput_epochs, device, model=model)
    if json_path is not None:
        atomic_write_json(json_path, result)
    return result


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def summarise(runs: dict[str, dict[int, dict]], first: int) -> dict:
    """Per variant: the first seed's run plus means over seeds; ratios and the exactness check."""
    out: dict = {}
    for name, by_seed in runs.items():
        if not by_seed:
            continue
        main = {k: v for k, v in by_seed[first].items() if k not in ("evaluations_list",)}
        main["seeds"] = {
            str(s): {
                k: r[k]
                for k in ("wall_seconds", "best_fitness", "best_mask", "test_accuracy", "epochs_trained", "evaluations")
            }
            for s, r in by_seed.items()
        }
        main["mean_test_accuracy"] = _mean([r["test_accuracy"] for r in by_seed.values()])
        main["mean_wall_seconds"] = _mean([r["wall_seconds"] for r in by_seed.values()])
        out[name] = main
    ref = out["reference"]
    others = [k for k in runs if k != "reference" and k in out]
    out["ratios"] = {k: out[k]["wall_seconds"] / ref["wall_seconds"] for k in others}
    out["ratios_mean_over_seeds"] = {k: out[k]["mean_wall_seconds"] / ref["mean_wall_seconds"] for k in others}
    if "exact" in out:
        e = out["exact"]
        out["exact_check"] = {
            "same_masks": e["masks"] == ref["masks"] and e["best_mask"] == ref["best_mask"],
            "max_fitness_difference": max(
                (abs(a - b) for a, b in zip(e["fitnesses"], ref["fitnesses"], strict=True)), default=0.0
            )
            if len(e["fitnesses"]) == len(ref["fitnesses"])
            else math.inf,
        }
    if "approximate" in out:
        out["approximate_test_gap_points"] = 100 * (
            ref["mean_test_accuracy"] - out["approximate"]["mean_test_accuracy"]
        )
    gaps = {
        k: 100 * (ref["mean_test_accuracy"] - out[k]["mean_test_accuracy"])
        for k in others
        if k.startswith("approximate:")
    }
    if gaps:
        out["ablation_test_gap_points"] = gaps
    return out


def format_table(result: dict) -> str:
    """The Markdown table printed by ``layerswarm bench`` and pasted into docs/results/speed.md."""
    rows = [
        "| run | wall s | ratio | CPU s | evaluations | epochs trained | images/s | peak MB | best fitness | "
        "test acc (seed 0) | mean test acc |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = ["reference", "exact", "approximate"] + sorted(k for k in result if k.startswith("approximate:"))
    for name in names:
        r = result.get(name)
        if r is None:
            continue
        ratio = 1.0 if name == "reference" else result["ratios"][name]
        rows.append(
            f"| {name} | {r['wall_seconds']:.1f} | {ratio:.3f} | {r['cpu_seconds']:.1f} | {r['evaluations']} | "
            f"{r['epochs_trained']} | {r['images_per_second']:.1f} | {r['peak_memory_mb']:.0f} | "
            f"{r['best_fitness']:.4f} | {r['test_accuracy']:.4f} | {r['mean_test_accuracy']:.4f} |"
        )
    lines = rows
    if "exact_check" in result:
        c = result["exact_check"]
        lines.append(
            f"\nexact vs reference: same masks {c['same_masks']}, max |fitness difference| "
            f"{c['max_fitness_difference']:.2e}"
        )
    if "approximate_test_gap_points" in result:
        lines.append(
            f"approximate minus reference, mean test accuracy: {-result['approximate_test_gap_points']:+.2f} points "
            f"(seeds {result['seeds']})"
        )
    for name, gap in (result.get("ablation_test_gap_points") or {}).items():
        lines.append(
            f"{name} minus reference, mean test accuracy: {-gap:+.2f} points, wall ratio "
            f"{result['ratios_mean_over_seeds'][name]:.3f} (mean over seeds)"
        )
    if "throughput" in result:
        t = result["throughput"]
        lines.append(
            f"throughput (full fine-tune): trainer {t['trainer']:.1f} img/s, bare loop {t['bare_loop']:.1f} img/s, "
            f"ratio {t['ratio']:.3f}"
        )
    return "\n".join(lines)


def dump(result: dict) -> str:
    return json.dumps(result, indent=2)
