"""One fine-tune with a strategy, evaluated on the test split, saved as ``final/``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .bundle import ModelBundle
from .data.imageset import DatasetSplits
from .io import atomic_write_json
from .models.probe import IntermediateProbe
from .strategies import Strategy, StrategyContext
from .training import TrainConfig, evaluate, fit

METADATA_KEY = "layerswarm"


def run_finetune(
    bundle: ModelBundle,
    data: DatasetSplits,
    strategy: Strategy,
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    seed: int = 0,
    on_epoch=None,
) -> dict:
    """Fine-tune from the bundle's starting weights with ``strategy``; return the metrics.

    Writes ``out_dir/model.safetensors`` and ``out_dir/metrics.json`` when ``out_dir`` is given.
    """
    wall_start = time.perf_counter()  # includes the strategy's set-up (a search, a Fisher pass)
    model = bundle.reset()
    ctx = StrategyContext(bundle, data.for_search(), cfg, seed=seed, out_dir=str(out_dir) if out_dir else None)
    plan = strategy.plan(ctx)
    model = plan.model if plan.model is not None else model
    start = time.perf_counter()
    transform = bundle.transform_for(cfg)
    history = fit(
        model, data.train, data.val, cfg, transform, frozen=plan.frozen, head=plan.head or bundle.info.head,
        param_groups=plan.param_groups, test=data.test, hooks=plan.hooks, on_epoch=on_epoch,
    )
    last = history.epochs[-1] if history.epochs else {}
    # The last epoch already measured these weights on the test split unless keep_best restored others.
    if "test_accuracy" in last and not cfg.keep_best:
        test_acc = last["test_accuracy"]
    else:
        test_acc = evaluate(model, data.test, transform, cfg.eval_batch_size)
    metrics = {
        "strategy": strategy.name,
        "strategy_config": strategy.config.to_dict(),
        "mask": plan.mask,
        "units": [u.name for u in bundle.units],
        "test_accuracy": test_acc,
        "val_accuracy": history.final_val_accuracy,
        "epochs": history.epochs,
        "seconds": time.perf_counter() - start,
        "wall_seconds": time.perf_counter() - wall_start,
        **plan.info,
    }
    if out_dir is not None:
        save_model(Path(out_dir) / "model.safetensors", model, bundle, data.classes, plan.mask, int(data.train.images.shape[-1]))
        atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics


def save_model(
    path: Path, model: nn.Module, bundle: ModelBundle, classes: list[str], mask, image_size: int
) -> None:
    """Weights plus what is needed to rebuild the model (name, units, classes, normalisation)."""
    meta = {
        "model": bundle.info.to_dict(),
        "classes": list(classes),
        "units": [u.name for u in bundle.units],
        "mask": mask,
        "image_size": image_size,
    }
    if isinstance(model, IntermediateProbe):
        meta["probe"] = model.describe()
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps(meta)})
    tmp.replace(path)


def load_model_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return json.loads(fh.metadata()[METADATA_KEY])


def load_saved_state(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(path), device="cpu")
