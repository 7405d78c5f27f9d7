"""One fine-tune with a strategy, evaluated on the test split, saved as ``final/``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..data.imageset import DatasetSplits
from ..errors import RunFailed
from ..io import atomic_write_json, atomic_write_with
from ..models.bundle import ModelBundle
from ..models.probe import IntermediateProbe
from ..strategies import Strategy, StrategyContext
from ..training import NonFiniteLossError, TrainConfig, evaluate, fit
from ..training.linear_head import fit_linear_head
from .checkpoint import Checkpoint

METADATA_KEY = "layerswarm"


def run_finetune(
    bundle: ModelBundle,
    data: DatasetSplits,
    strategy: Strategy,
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    seed: int | None = None,
    on_epoch=None,
    checkpoint: str | Path | None = None,
) -> dict:
    """Fine-tune from the bundle's starting weights with ``strategy``; return the metrics.

    ``checkpoint``: a file to save the training state to after every epoch and to continue from
    when it exists (:mod:`layerswarm.run.checkpoint`; the same result as an uninterrupted run); it is
    removed once the results are saved.

    ``seed`` (default ``cfg.seed``) drives the new head, the batch order and augmentation, and the
    strategy's own draws. Writes ``out_dir/model.safetensors`` and ``out_dir/metrics.json`` when
    ``out_dir`` is given.
    """
    seed = cfg.seed if seed is None else seed
    cfg = cfg.replace(seed=seed)
    wall_start = time.perf_counter()  # includes the strategy's set-up (a search, a Fisher pass)
    model = bundle.reset(seed)
    head_info = {}
    warm = cfg.optim.head_init == "warm"  # fitted on the training images' features, never the test split
    if warm:  # before the plan: a strategy that measures gradients (auto-rgn) measures them from this head
        head = fit_linear_head(
            model, bundle.info.head, data.train, data.val, bundle.transform, cfg.evaluation.eval_batch_size
        )
        head.load_into(model)
        head_info = head.info()
    ctx = StrategyContext(bundle, data.for_search(), cfg, seed=seed, out_dir=str(out_dir) if out_dir else None)
    plan = strategy.plan(ctx)
    model = plan.model if plan.model is not None else model
    if warm and plan.frozen:  # frozen units keep the source's BatchNorm statistics: fit on what they compute
        head = fit_linear_head(
            model,
            bundle.info.head,
            data.train,
            data.val,
            bundle.transform,
            cfg.evaluation.eval_batch_size,
            frozen=plan.frozen,
        )
        head.load_into(model)
        head_info = head.info()
    start = time.perf_counter()
    transform = bundle.transform_for(cfg)
    saved = Checkpoint(checkpoint, cfg, plan.frozen) if checkpoint is not None else None
    try:
        history = fit(
            model,
            data.train,
            data.val,
            cfg,
            transform,
            frozen=plan.frozen,
            head=plan.head or bundle.info.head,
            param_groups=plan.param_groups,
            test=data.test,
            hooks=plan.hooks,
            on_epoch=on_epoch,
            checkpoint=saved,
        )
    except NonFiniteLossError as err:  # no model from a diverged run: a resume would diverge again
        where = f" ({out_dir})" if out_dir else ""
        raise RunFailed(
            f"the {strategy.name} fine-tune{where} diverged, {err}, "
            f"with lr {cfg.optim.lr:g}: pass a lower --lr, e.g. {cfg.optim.lr / 10:g}",
            resumable=False,
        ) from err
    last = history.epochs[-1] if history.epochs else {}
    # The last epoch already measured these weights on the test split unless keep_best restored others.
    if "test_accuracy" in last and not cfg.evaluation.keep_best:
        test_acc = last["test_accuracy"]
    else:
        test_acc = evaluate(model, data.test, transform, cfg.evaluation.eval_batch_size)
    val_acc = history.final_val_accuracy
    restored = None
    if cfg.evaluation.keep_best:  # report the epoch whose weights were restored, not the last one
        validated = [e for e in history.epochs if e.get("val_accuracy") is not None]
        best = max(validated, key=lambda e: e["val_accuracy"], default=None)
        val_acc, restored = (best["val_accuracy"], best["epoch"]) if best else (val_acc, None)
    metrics = {
        "strategy": strategy.name,
        "strategy_config": strategy.config.to_dict(),
        "mask": plan.mask,
        "units": [u.name for u in bundle.units],
        "test_accuracy": test_acc,
        "val_accuracy": val_acc,
        "restored_epoch": restored,
        "seed": seed,
        "epochs": history.epochs,
        "seconds": time.perf_counter() - start,
        "wall_seconds": time.perf_counter() - wall_start,
        **head_info,
        **plan.info,
    }
    if out_dir is not None:
        # splits built in code carry no input_config: their tensors say the size
        key = "max_length" if bundle.info.is_text else "image_size"
        input_config = {key: int(data.train.inputs.shape[-1]), **data.input_config}
        save_model(Path(out_dir) / "model.safetensors", model, bundle, data.classes, plan.mask, input_config)
        atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    if saved is not None:
        saved.remove()
    return metrics


def save_model(
    path: Path,
    model: nn.Module,
    bundle: ModelBundle,
    classes: list[str],
    mask,
    input_config: dict,
) -> None:
    """Weights plus what is needed to rebuild the model and feed it as in training (name, units,
    classes, normalisation; the image size and crop, or the text's max_length)."""
    meta = {
        "model": bundle.info.to_dict(),
        "classes": list(classes),
        "units": [u.name for u in bundle.units],
        "mask": mask,
    }
    if bundle.info.is_text:  # predict tokenises with the same tokenizer and length
        meta.update(max_length=int(input_config["max_length"]), tokenizer=input_config.get("tokenizer"))
    else:
        # how predict decodes a file: resize to image_size / crop_pct, centre crop (the loader's view)
        meta.update(
            image_size=int(input_config["image_size"]),
            crop_pct=input_config.get("crop_pct", 1.0),
            interpolation=input_config.get("interpolation", "bilinear"),
        )
    if isinstance(model, IntermediateProbe):
        meta["probe"] = model.describe()
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {METADATA_KEY: json.dumps(meta)}
    atomic_write_with(path, lambda tmp: save_file(state, tmp, metadata=metadata))


def load_model_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return json.loads(fh.metadata()[METADATA_KEY])


def load_saved_state(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(path), device="cpu")
