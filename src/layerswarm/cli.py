"""The ``layerswarm`` command line: search, finetune, layers, models."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from .bundle import ModelConfig
from .cli_options import dataclass_options, pop_config
from .data import DataConfig
from .errors import LayerswarmError
from .io import read_json
from .search import CONFIG_FILE, RunConfig, SearchConfig
from .training import TrainConfig

DATA_FIELDS = ["data", "data_root", "image_size", "train_per_class", "val_per_class", "val_fraction",
               "test_fraction", "max_test", "on_bad_image"]
TRAIN_FIELDS = ["lr", "momentum", "weight_decay", "batch_size", "optimizer", "schedule", "step_size",
                "gamma", "augment", "keep_best", "device", "amp", "channels_last"]
MODEL_FIELDS = ["name", "weights", "granularity"]


def model_options(func):
    return dataclass_options(ModelConfig, MODEL_FIELDS, prefix="model_", rename={"name": "model"})(func)


def data_options(func):
    return dataclass_options(DataConfig, DATA_FIELDS, prefix="data_")(func)


def train_options(func):
    return dataclass_options(TrainConfig, TRAIN_FIELDS, prefix="train_")(func)


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def app() -> None:
    """layerswarm: search which layers of a pretrained network to fine-tune (PSO), and compare."""


@app.command()
@model_options
@data_options
@train_options
@click.option("--searcher", default="pso", show_default=True, help="searcher: pso or random")
@click.option("--particles", type=int, default=10, show_default=True, help="PSO swarm size n")
@click.option("--generations", type=int, default=12, show_default=True, help="PSO generations G")
@click.option("--c1", type=float, default=1.5, show_default=True, help="PSO cognitive factor")
@click.option("--c2", type=float, default=1.5, show_default=True, help="PSO social factor")
@click.option("--inertia-start", type=float, default=1.4, show_default=True, help="inertia weight at the first generation")
@click.option("--inertia-end", type=float, default=0.7, show_default=True, help="inertia weight at the last generation")
@click.option("--velocity-max", type=float, default=None, help="optional bound on |velocity| per dimension")
@click.option("--fitness-epochs", type=int, default=5, show_default=True, help="maxEpoch: epochs of each fitness fine-tune")
@click.option("--final-epochs", type=int, default=110, show_default=True, help="epochs of the final fine-tune")
@click.option("--retries", type=int, default=1, show_default=True, help="retries of a failing evaluation")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the search, the head and the training")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="output folder (default runs/search-<model>-<data>)")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), default=None, help="continue the run in this folder")
@click.option("--quiet", is_flag=True, help="only warnings and the result")
def search(**kw) -> None:
    """Search a freeze/fine-tune mask with PSO on train/val, fine-tune it, test it."""
    from .search import run_search

    _setup_logging(kw.pop("quiet"))
    resume_dir = kw.pop("resume_dir")
    if resume_dir:
        if not (Path(resume_dir) / CONFIG_FILE).is_file():
            raise LayerswarmError(f"nothing to resume in '{resume_dir}': no {CONFIG_FILE} there")
        cfg, out_dir = RunConfig.from_dict(read_json(Path(resume_dir) / CONFIG_FILE)), resume_dir
    else:
        cfg, out_dir = _search_config(kw)
    click.echo(f"layerswarm search: {cfg.model.name} on {cfg.data.data} -> {out_dir}", err=True)
    result = run_search(cfg, out_dir, resume=bool(resume_dir), on_evaluation=_print_evaluation,
                        on_final_epoch=_print_epoch)
    mask = "".join(map(str, result["mask"]))
    click.echo(f"best mask ({sum(result['mask'])}/{len(result['mask'])} units fine-tuned): {mask}")
    click.echo(f"search fitness (val accuracy): {result['fitness']:.4f}")
    click.echo(f"final test accuracy: {result['test_accuracy']:.4f}")
    click.echo(f"results in {out_dir}")


def _search_config(kw: dict) -> tuple[RunConfig, str]:
    seed = kw.pop("seed")
    model = pop_config(ModelConfig, kw, prefix="model_")
    data = pop_config(DataConfig, kw, prefix="data_", seed=seed)
    train = pop_config(TrainConfig, kw, prefix="train_", seed=seed)
    options = {k: kw.pop(k) for k in ("c1", "c2", "inertia_start", "inertia_end", "velocity_max")}
    options.update(particles=kw.pop("particles"), generations=kw.pop("generations"))
    searcher = kw.pop("searcher")
    if searcher != "pso":
        options = {"trials": options["particles"] * options["generations"], "batch_size": options["particles"]}
    cfg = RunConfig(
        model=model, data=data,
        fitness=train.replace(epochs=kw.pop("fitness_epochs")),
        final=train.replace(epochs=kw.pop("final_epochs")),
        search=SearchConfig(searcher=searcher, options=options, retries=kw.pop("retries")),
        seed=seed,
    )
    out_dir = kw.pop("out_dir") or f"runs/search-{model.name.replace(':', '_')}-{Path(data.data).name}"
    return cfg, out_dir


def _print_evaluation(record: dict) -> None:
    mask = "".join(map(str, record["mask"]))
    fit = "failed: " + str(record["error"]) if record["fitness"] is None else f"{record['fitness']:.4f}"
    click.echo(
        f"gen {record['generation'] + 1:>3} particle {record['particle'] + 1:>3}  mask {mask}  "
        f"fitness {fit}  ({record['seconds']:.1f}s)", err=True,
    )


def _print_epoch(record: dict) -> None:
    test = f"  test {record['test_accuracy']:.4f}" if "test_accuracy" in record else ""
    click.echo(
        f"final epoch {record['epoch']:>3}  loss {record['train_loss']:.4f}  val {record['val_accuracy']:.4f}{test}",
        err=True,
    )


@app.command()
@model_options
@data_options
@train_options
@click.option("--strategy", default=None, help="full, linear, ... (see 'layerswarm strategies'); default full, or mask with --mask")
@click.option("--mask", "mask_file", type=click.Path(dir_okay=False), default=None, help="a best_mask.json to fine-tune with")
@click.option("--epochs", type=int, default=110, show_default=True, help="epochs of the fine-tune")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder (final/ goes inside)")
@click.option("--quiet", is_flag=True)
def finetune(**kw) -> None:
    """Fine-tune once with a mask or a strategy and test the result."""
    from .bundle import build_bundle
    from .data import load_dataset
    from .finetune import run_finetune
    from .strategies import create_strategy

    _setup_logging(kw.pop("quiet"))
    seed, mask_file, name = kw.pop("seed"), kw.pop("mask_file"), kw.pop("strategy")
    if mask_file and name not in (None, "mask"):
        raise LayerswarmError("--mask and --strategy exclude each other: pass one")
    strategy = create_strategy("mask", {"mask_file": mask_file}) if mask_file else create_strategy(name or "full")
    model_cfg = pop_config(ModelConfig, kw, prefix="model_")
    if strategy.weights is not None:
        model_cfg = model_cfg.replace(weights=strategy.weights)
    data = load_dataset(pop_config(DataConfig, kw, prefix="data_", seed=seed))
    train = pop_config(TrainConfig, kw, prefix="train_", seed=seed, epochs=kw.pop("epochs"))
    bundle = build_bundle(model_cfg, data.num_classes, train, seed=seed)
    click.echo(data.summary(), err=True)
    metrics = run_finetune(bundle, data, strategy, train, Path(kw["out_dir"]) / "final", seed=seed,
                           on_epoch=None if logging.getLogger().level > logging.INFO else _print_epoch)
    click.echo(f"{strategy.name}: test accuracy {metrics['test_accuracy']:.4f} -> {kw['out_dir']}/final")


@app.command()
@click.option("--model", "name", default="efficientnet_lite0", show_default=True, help="model name")
@click.option("--granularity", default="block", show_default=True, help="block, stage or module")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def layers(name: str, granularity: str, as_json: bool) -> None:
    """List the layer units of a model: one mask bit each."""
    from .models import create_model
    from .units import split_units

    # Units depend on the architecture only: skip downloading weights.
    weights = "pretrained" if name.startswith("efficientnet_lite") else "none"
    model, info = create_model(name, num_classes=2, weights=weights)
    units = split_units(model, info.head, granularity)
    if as_json:
        click.echo(json.dumps({"model": name, "granularity": granularity, "head": info.head,
                               "units": [u.to_dict() for u in units]}, indent=2))
        return
    click.echo(f"{name}: {len(units)} units ({granularity}); head {', '.join(info.head)} always trained")
    for u in units:
        click.echo(f"{u.index:>4}  {u.name:<40} {u.num_params:>12,d} params  {len(u.params)} tensors")


@app.command()
@click.argument("pattern", required=False, default="*")
def models(pattern: str) -> None:
    """List model names (timm, torchvision as tv:NAME, offline EfficientNet-Lite)."""
    import fnmatch

    import timm
    import torchvision

    from .models.efficientnet_lite import LITE_MODELS

    names = list(LITE_MODELS) + timm.list_models(pattern) + [
        f"tv:{n}" for n in torchvision.models.list_models() if fnmatch.fnmatch(n, pattern)
    ]
    for n in names:
        click.echo(n)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app.main(args=argv, prog_name="layerswarm", standalone_mode=False)
    except LayerswarmError as err:
        click.echo(f"layerswarm: error: {err}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("layerswarm: interrupted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
