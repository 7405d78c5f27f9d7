"""``layerswarm finetune``: one fine-tune with a mask or a strategy, its settings over --config FILE's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..config_utils import get_dotted, merge_settings, set_dotted
from ..errors import LayerswarmError
from . import common  # run helpers, as common.NAME
from .common import (
    RUN_DEFAULTS,
    STRATEGY_CHOICES,
    DataConfig,
    ModelConfig,
    TrainConfig,
    app,
    data_options,
    model_options,
    train_options,
)
from .options import default_recipe_for_model, pop_config


def _print_epoch(record: dict) -> None:
    from .progress import format_final_epoch

    click.echo(format_final_epoch(record), err=True)


@app.command()
@model_options
@data_options
@train_options
@click.option(
    "--strategy",
    type=click.Choice(STRATEGY_CHOICES),
    default=None,
    help="see 'layerswarm strategies'; default full, or mask with --mask",
)
@click.option(
    "--mask", "mask_file", type=click.Path(dir_okay=False), default=None, help="a best_mask.json to fine-tune with"
)
@click.option(
    "--option",
    "options",
    multiple=True,
    help="a strategy option KEY=VALUE, e.g. --option k=4 (see 'layerswarm strategies')",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=RUN_DEFAULTS.final.epochs,
    show_default=True,
    help="epochs of the fine-tune (as a search's final fine-tune)",
)
@click.option(
    "--seed",
    type=int,
    default=RUN_DEFAULTS.seed,
    show_default=True,
    help="seed of the head, the training and the data split",
)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder: config.json, final/"
)
@click.option(
    "--overwrite", is_flag=True, help="replace the run already in --out (its files go once the new run starts)"
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="settings from a YAML or JSON file (a finetune's config.json, or a search's: its final settings); "
    "options given here override it",
)
@click.option("--tensorboard", is_flag=True, help="write TensorBoard logs to OUT/tensorboard")
@click.option("--quiet", is_flag=True, help="no per-epoch lines")
def finetune(**kw) -> None:
    """Fine-tune once with a mask or a strategy and test the result."""
    quiet, overwrite, tensorboard = kw.pop("quiet"), kw.pop("overwrite"), kw.pop("tensorboard")
    common._setup_logging(quiet)
    given = common._given_options()
    if tensorboard:
        common._need_module("tensorboard", "--tensorboard", "report")
    settings = _finetune_settings(kw, given)
    out = Path(settings.pop("out_dir"))
    from ..run.rundir import check_classes, check_epochs, check_out_dir, clear_run, config_record

    check_epochs(epochs=settings["train"]["epochs"])
    check_out_dir(out, overwrite, what="finetune")
    from ..data import load_dataset
    from ..models.bundle import build_bundle
    from ..run.compare import make_strategy, parse_strategy_options
    from ..run.finetune import run_finetune
    from ..units import load_mask

    seed, mask_file, name = settings["seed"], settings["mask_file"], settings["strategy"]
    if mask_file and name not in (None, "mask"):
        raise LayerswarmError("--mask and --strategy exclude each other: pass one")
    name = "mask" if mask_file else (name or "full")
    options = settings["options"]
    if isinstance(options, list | tuple):
        options = parse_strategy_options(name, options)
    strategy = make_strategy(name, {**options, "mask_file": mask_file} if mask_file else options)
    model_cfg = ModelConfig.from_dict(settings["model"])
    if strategy.weights is not None:
        model_cfg = model_cfg.replace(weights=strategy.weights)
    from ..models.factory import pretrained_input

    data_cfg = DataConfig.from_dict(settings["data"]).resolved(
        pretrained_input(model_cfg.name)
    )  # the model's input size
    data = load_dataset(data_cfg)
    check_classes(data.num_classes, data.classes)
    train = TrainConfig.from_dict(settings["train"])
    bundle = build_bundle(model_cfg, data.num_classes, train, seed=seed)
    if mask_file:
        load_mask(mask_file, bundle.units)  # a mask of the wrong length fails here, before any file is written
    click.echo(
        f"{data.summary()}; input {data_cfg.describe_input(data.input_config)}, recipe {train.recipe}, "
        f"device {bundle.device}",
        err=True,
    )
    # The work starts: only now does the folder appear (or the old run's files go).
    if overwrite:
        clear_run(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "kind": "finetune",
        "model": model_cfg.to_dict(),
        "data": data_cfg.to_dict(),
        "train": train.to_dict(),
        "strategy": name,
        "options": dict(options),
        "mask_file": mask_file,
        "seed": seed,
    }
    from ..io import atomic_write_json

    atomic_write_json(out / common.CONFIG_FILE, config_record(record, common._meta(), bundle.device))
    on_epoch = [] if quiet else [_print_epoch]
    writer = _FinalWriter(out / "tensorboard" / "final") if tensorboard else None
    if writer is not None:
        on_epoch.append(writer.on_epoch)
    try:
        metrics = run_finetune(
            bundle,
            data,
            strategy,
            train,
            out / "final",
            seed=seed,
            on_epoch=(lambda r: [f(r) for f in on_epoch]) if on_epoch else None,
        )
    except KeyboardInterrupt as err:
        raise common.Interrupted(
            f"interrupted: the fine-tune in {out} did not finish; run it again with --overwrite"
        ) from err
    finally:
        if writer is not None:
            writer.close()
    click.echo(f"{strategy.name}: test accuracy {metrics['test_accuracy']:.4f} -> {out}/final")


class _FinalWriter:
    """TensorBoard curves of one fine-tune (final/train_loss, final/val_accuracy, ...)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: Any = None  # a SummaryWriter from the first epoch on

    def on_epoch(self, record: dict) -> None:
        from .tensorboard import EPOCH_SCALARS, _writer

        if self.writer is None:
            self.writer = _writer(self.path)
        writer = self.writer
        for key in EPOCH_SCALARS:
            if record.get(key) is not None:
                writer.add_scalar(f"final/{key}", record[key], int(record["epoch"]))
        writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


_FINETUNE_PARTS = ("model", "data", "train", "strategy", "options", "mask_file", "seed")


def _finetune_settings(kw: dict, given: set[str]) -> dict:
    """The fine-tune's settings (config.json's keys) from the options, over --config FILE's."""
    config_file, out_dir = kw.pop("config_file"), kw.pop("out_dir")
    seed = kw.pop("seed")
    model = pop_config(ModelConfig, kw, prefix="model_")
    default_recipe_for_model(kw, model.name)
    flags = {
        "model": model.to_dict(),
        "data": pop_config(DataConfig, kw, prefix="data_", seed=seed).to_dict(),
        "train": pop_config(TrainConfig, kw, prefix="train_", seed=seed, epochs=kw.pop("epochs")).to_dict(),
        "strategy": kw.pop("strategy"),
        "options": list(kw.pop("options")),
        "mask_file": kw.pop("mask_file"),
        "seed": seed,
    }
    if not config_file:
        return {**flags, "out_dir": out_dir}
    from ..run.rundir import META_KEYS, read_config_file

    base = read_config_file(config_file)
    if "train" not in base and "final" in base:  # a search's config.json: fine-tune as its final fine-tune
        base = {
            **{k: v for k, v in base.items() if k not in ("fitness", "final", "search", "speed")},
            "train": base["final"],
        }
    unknown = sorted(set(base) - set(_FINETUNE_PARTS) - set(META_KEYS))
    if unknown:
        raise LayerswarmError(f"'{config_file}' has unknown keys {unknown}: use {', '.join(_FINETUNE_PARTS)}")
    parts = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
    settings = {
        k: (
            # a file of the earlier flat layout: its keys at their place now, over the options' values
            merge_settings(parts[k], flags[k], parts[k].migrate(base[k]))
            if k in parts and isinstance(base.get(k), dict)
            else base.get(k, flags[k])
        )
        for k in _FINETUNE_PARTS
    }
    for name in given:
        if name.startswith(("model_", "data_", "train_")):
            part, field_name = name.split("_", 1)
            key = parts[part].current_key(field_name)
            set_dotted(settings[part], key, get_dotted(flags[part], key))
        elif name == "epochs":
            settings["train"]["epochs"] = flags["train"]["epochs"]
        elif name == "seed":
            settings["seed"] = settings["train"]["seed"] = seed
            set_dotted(settings["data"], "splits.seed", seed)
        elif name in ("strategy", "options", "mask_file"):
            settings[name] = flags[name]
    if "options" in given or "strategy" in given or "mask_file" in given:
        settings["options"] = flags["options"]
    if "train_recipe" in given:
        common._apply_recipe(settings["train"], flags["train"])
    try:  # every part must read back as its dataclass
        ModelConfig.from_dict(settings["model"]), DataConfig.from_dict(settings["data"])
        TrainConfig.from_dict(settings["train"])
    except (TypeError, ValueError) as err:
        raise LayerswarmError(f"'{config_file}': {err}") from err
    return {**settings, "out_dir": out_dir}
