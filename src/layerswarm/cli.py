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
from .speed import SpeedConfig
from .training import TrainConfig

DATA_FIELDS = ["data", "data_root", "image_size", "train_per_class", "val_per_class", "val_fraction",
               "test_fraction", "max_test", "on_bad_image"]
TRAIN_FIELDS = ["lr", "momentum", "weight_decay", "batch_size", "optimizer", "schedule", "step_size",
                "gamma", "augment", "keep_best", "test_every", "eval_batch_size", "device", "amp", "channels_last", "compile"]
MODEL_FIELDS = ["name", "weights", "granularity"]
SPEED_FIELDS = ["memo", "prefix_cache", "cache_mb", "fidelity", "halving_epochs", "halving_keep", "pause_mb", "early_stop",
                "train_fraction", "val_fraction", "val_curve"]


def model_options(func):
    return dataclass_options(ModelConfig, MODEL_FIELDS, prefix="model_", rename={"name": "model"})(func)


def data_options(func):
    return dataclass_options(DataConfig, DATA_FIELDS, prefix="data_")(func)


def train_options(func):
    return dataclass_options(TrainConfig, TRAIN_FIELDS, prefix="train_")(func)


def speed_options(func):
    return dataclass_options(SpeedConfig, SPEED_FIELDS, prefix="speed_", rename={
        "prefix_cache": "cache", "train_fraction": "fitness_train_fraction", "val_fraction": "fitness_val_fraction"})(func)


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def app() -> None:
    """layerswarm: search which layers of a pretrained network to fine-tune (PSO), and compare."""


@app.command()
@model_options
@data_options
@train_options
@speed_options
@click.option("--searcher", default="pso", show_default=True, help="searcher: pso, random, tpe, ga, greedy or exhaustive (docs/searchers.md)")
@click.option("--particles", type=int, default=10, show_default=True, help="PSO swarm size n (other searchers: masks per batch)")
@click.option("--generations", type=int, default=12, show_default=True, help="PSO generations G")
@click.option("--budget", type=int, default=None, help="fitness evaluations of the search, any searcher (default: particles x generations)")
@click.option("--c1", type=float, default=1.5, show_default=True, help="PSO cognitive factor")
@click.option("--c2", type=float, default=1.5, show_default=True, help="PSO social factor")
@click.option("--inertia-start", type=float, default=1.4, show_default=True, help="inertia weight at the first generation")
@click.option("--inertia-end", type=float, default=0.7, show_default=True, help="inertia weight at the last generation")
@click.option("--velocity-max", type=float, default=None, help="optional bound on |velocity| per dimension")
@click.option("--fitness-epochs", type=int, default=5, show_default=True, help="maxEpoch: epochs of each fitness fine-tune")
@click.option("--final-epochs", type=int, default=110, show_default=True, help="epochs of the final fine-tune")
@click.option("--retries", type=int, default=1, show_default=True, help="retries of a failing evaluation")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="run evaluations here, one at a time, or in parallel on Ray")
@click.option("--address", default=None, help="Ray cluster to join (auto, ray://HOST:10001); default: start Ray on this machine")
@click.option("--cpus-per-trial", type=int, default=None, help="CPU cores (torch threads) per evaluation; default all cores locally, 1 per Ray task")
@click.option("--gpus-per-trial", type=float, default=0.0, show_default=True, help="GPUs per Ray evaluation (0.5: two share a GPU); needs --device cuda")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the search, the head and the training")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="output folder (default runs/search-<model>-<data>)")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), default=None, help="continue the run in this folder")
@click.option("--quiet", is_flag=True, help="only warnings and the result: no progress bars or log lines")
@click.option("--tensorboard", is_flag=True, help="write TensorBoard logs to OUT/tensorboard")
def search(**kw) -> None:
    """Search a freeze/fine-tune mask with PSO on train/val, fine-tune it, test it."""
    from .search import run_search

    quiet, tensorboard = kw.pop("quiet"), kw.pop("tensorboard")
    _setup_logging(quiet)
    resume_dir = kw.pop("resume_dir")
    if resume_dir:
        if not (Path(resume_dir) / CONFIG_FILE).is_file():
            raise LayerswarmError(f"nothing to resume in '{resume_dir}': no {CONFIG_FILE} there")
        cfg, out_dir = RunConfig.from_dict(read_json(Path(resume_dir) / CONFIG_FILE)), resume_dir
    else:
        cfg, out_dir = _search_config(kw)
    click.echo(f"layerswarm search: {cfg.model.name} on {cfg.data.data} -> {out_dir}", err=True)
    from .progress import search_listeners

    listeners, result = search_listeners(cfg, out_dir, quiet=quiet, tensorboard=tensorboard), None
    try:
        result = run_search(cfg, out_dir, resume=bool(resume_dir), on_evaluation=listeners.on_evaluation,
                            on_final_epoch=listeners.on_final_epoch, on_fitness_epoch=listeners.on_fitness_epoch)
    except KeyboardInterrupt:  # state is saved after every evaluation: nothing finished is lost
        click.echo(f"\ninterrupted: progress is saved in {out_dir}; continue with: layerswarm search --resume {out_dir}", err=True)
        raise
    finally:
        listeners.close(result)
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
    searcher, budget = kw.pop("searcher"), kw.pop("budget")
    if searcher != "pso" or budget is not None:  # every searcher's config from one budget
        from .searchers import config_for_budget

        sized = config_for_budget(searcher, budget or options["particles"] * options["generations"], options["particles"])
        options = {**options, **sized} if searcher == "pso" else sized
    cfg = RunConfig(
        model=model, data=data,
        fitness=train.replace(epochs=kw.pop("fitness_epochs")),
        final=train.replace(epochs=kw.pop("final_epochs")),
        search=SearchConfig(searcher=searcher, options=options, retries=kw.pop("retries"), backend=kw.pop("backend"),
                            address=kw.pop("address"), cpus_per_trial=kw.pop("cpus_per_trial"),
                            gpus_per_trial=kw.pop("gpus_per_trial")),
        seed=seed,
        speed=pop_config(SpeedConfig, kw, prefix="speed_"),
    )
    out_dir = kw.pop("out_dir") or f"runs/search-{model.name.replace(':', '_')}-{Path(data.data).name}"
    return cfg, out_dir


def _print_epoch(record: dict) -> None:
    from .progress import format_final_epoch

    click.echo(format_final_epoch(record), err=True)


@app.command()
@model_options
@data_options
@train_options
@click.option("--strategy", default=None, help="full, linear, ... (see 'layerswarm strategies'); default full, or mask with --mask")
@click.option("--mask", "mask_file", type=click.Path(dir_okay=False), default=None, help="a best_mask.json to fine-tune with")
@click.option("--option", "options", multiple=True, help="a strategy option KEY=VALUE, e.g. --option k=4 (see 'layerswarm strategies')")
@click.option("--epochs", type=int, default=110, show_default=True, help="epochs of the fine-tune")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder (final/ goes inside)")
@click.option("--quiet", is_flag=True)
def finetune(**kw) -> None:
    """Fine-tune once with a mask or a strategy and test the result."""
    from .bundle import build_bundle
    from .compare import make_strategy, parse_strategy_options
    from .data import load_dataset
    from .finetune import run_finetune

    _setup_logging(kw.pop("quiet"))
    seed, mask_file, name = kw.pop("seed"), kw.pop("mask_file"), kw.pop("strategy")
    if mask_file and name not in (None, "mask"):
        raise LayerswarmError("--mask and --strategy exclude each other: pass one")
    name = "mask" if mask_file else (name or "full")
    options = parse_strategy_options(name, kw.pop("options"))
    strategy = make_strategy(name, {**options, "mask_file": mask_file} if mask_file else options)
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


@app.command()
@model_options
@dataclass_options(DataConfig, [f for f in DATA_FIELDS if f != "data"], prefix="data_")
@dataclass_options(TrainConfig, [f for f in TRAIN_FIELDS if f != "test_every"], prefix="train_")
@click.option("--data", "datasets", multiple=True, required=True,
              help="a dataset (as for search); repeat --data for several columns")
@click.option("--strategies", default=None, help="comma-separated (default scratch,linear,full,l2sp,child-d,random-mask,pso)")
@click.option("--option", "options", multiple=True, help="strategy option STRATEGY.KEY=VALUE, e.g. pso.particles=4 (repeatable)")
@click.option("--repeats", type=int, default=3, show_default=True, help="runs per strategy and dataset (seeds seed..seed+R-1)")
@click.option("--epochs", type=int, default=110, show_default=True, help="epochs of every fine-tune")
@click.option("--test-every", type=int, default=5, show_default=True, help="test every N epochs (5: the early-accuracy column)")
@click.option("--seed", type=int, default=0, show_default=True, help="base seed (the data split uses it too)")
@click.option("--resplit", is_flag=True, help="a new data split per repeat instead of one fixed split")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder; rerun to resume")
@click.option("--quiet", is_flag=True, help="only the table")
def compare(**kw) -> None:
    """Run strategies on identical splits, schedules and seeds; write results.md and results.csv."""
    from .compare import compare_from_cli

    _setup_logging(kw["quiet"])
    click.echo(compare_from_cli(kw), nl=False)


@app.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def strategies(as_json: bool) -> None:
    """List the fine-tuning strategies and their options."""
    from .strategies.describe import describe_strategies, format_strategies

    click.echo(json.dumps(describe_strategies(), indent=2) if as_json else format_strategies())


@app.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, help="HTML file (default DIR/report.html)")
def report(run_dir: str, out_file: str | None) -> None:
    """Write report.html (figures embedded, also as DIR/figures/*.png) for a search or comparison."""
    from .report import write_report

    click.echo(f"report: {write_report(run_dir, out_file)}")


@app.command()
@click.argument("run_dir", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", type=int, default=5, show_default=True, help="classes to show per image")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def predict(run_dir: str, images: tuple[str, ...], top_k: int, device: str, as_json: bool) -> None:
    """Classify IMAGES with the final model of RUN_DIR (a search or finetune --out folder)."""
    from .predict import format_predictions
    from .predict import predict as run_predict

    results = run_predict(run_dir, images, top_k=top_k, device=device)
    click.echo(json.dumps([r.to_dict() for r in results], indent=2) if as_json else format_predictions(results))


@app.command()
@model_options
@data_options
@train_options
@click.option("--table", "table_path", type=click.Path(dir_okay=False), default=None,
              help="fitness table (JSONL): every mask's real fitness (with --live: the masks trained so far, default OUT/fitness.jsonl)")
@click.option("--live", is_flag=True, help="train each mask when a searcher first meets it (no complete table needed; resumable)")
@click.option("--build-table", is_flag=True, help="first evaluate the masks missing from --table (real training; resumable)")
@click.option("--searchers", default="pso,random,tpe,ga,greedy,exhaustive", show_default=True, help="comma-separated searchers to race; NAME:key=value/key=value adds options, e.g. greedy:start=random")
@click.option("--budget", type=int, default=120, show_default=True, help="fitness evaluations per run (PSO's n x G)")
@click.option("--ask-batch", type=int, default=10, show_default=True, help="masks per ask where a searcher batches (PSO's n)")
@click.option("--seeds", type=int, default=20, show_default=True, help="runs per searcher, seeds 0..N-1")
@click.option("--frozen-units", default="", help="comma-separated units pinned frozen, not searched (race a sub-space)")
@click.option("--fitness-epochs", type=int, default=1, show_default=True, help="epochs of one fitness evaluation (the table's)")
@click.option("--final-seeds", type=int, default=0, show_default=True, help="fine-tune and test the best masks of seeds 0..N-1")
@click.option("--final-epochs", type=int, default=5, show_default=True, help="epochs of those final fine-tunes")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the head, the data splits and the training")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder: summary.json, runs.json, race.png")
def race(**kw) -> None:
    """Race the searchers at one budget on a table of real fitness values (docs/searchers.md)."""
    from .race import RaceConfig, race_command

    _setup_logging(False)
    seed = kw.pop("seed")
    model = pop_config(ModelConfig, kw, prefix="model_")
    data = pop_config(DataConfig, kw, prefix="data_", seed=seed)
    train = pop_config(TrainConfig, kw, prefix="train_", seed=seed)
    run_cfg = RunConfig(model=model, data=data, fitness=train.replace(epochs=kw["fitness_epochs"]),
                        final=train.replace(epochs=kw["final_epochs"]), seed=seed)
    cfg = RaceConfig(searchers=[n.strip() for n in kw["searchers"].split(",") if n.strip()], budget=kw["budget"],
                     fitness_epochs=kw["fitness_epochs"], batch_size=kw["ask_batch"], seeds=kw["seeds"],
                     frozen_units=[int(u) for u in kw["frozen_units"].split(",") if u.strip()])
    if kw["table_path"] is None and not kw["live"]:
        raise LayerswarmError("race needs --table FILE (a fitness table), or --live to train masks as they are met")
    text = race_command(run_cfg, cfg, kw["table_path"], kw["out_dir"], build=kw["build_table"],
                        final_seeds=kw["final_seeds"], echo=lambda line: click.echo(line, err=True), live=kw["live"])
    click.echo(text)
    click.echo(f"results in {kw['out_dir']} (race.png, summary.json, runs.json)")


@app.command()
@click.option("--quick", "preset", flag_value="quick", default=True, help="small swarm, minutes on a CPU (default)")
@click.option("--swarm", "preset", flag_value="swarm",
              help="the paper's swarm n=10, G=12 with maxEpoch=2: where memo and prefix cache pay (about 1.5 h per seed on 1 CPU core)")
@click.option("--full", "preset", flag_value="full", help="the paper's swarm: n=10, G=12, maxEpoch=5, 110 final epochs (GPU)")
@click.option("--seeds", default="0,1,2", show_default=True, help="comma-separated seeds: reference and approximate run for each, exact for the first")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="write the results to this JSON file")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps")
@click.option("--threads", type=int, default=None, help="torch CPU threads for every run (default: torch's)")
@click.option("--data-root", default=None, help="folder of the Fashion-MNIST idx files")
@click.option("--no-throughput", is_flag=True, help="skip the trainer-vs-bare-loop throughput measurement")
@click.option("--no-exact", is_flag=True, help="skip the exact run (more seeds of reference and approximate only)")
@click.option("--ablation", is_flag=True, help="also run each approximate speed-up alone, every seed: what each costs in test accuracy")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="where layerswarm's runs evaluate particles: ray runs a generation's evaluations in parallel "
                   "(--threads each) on a local Ray of all cores; the reference stays one process on --threads")
def bench(preset: str, seeds: str, json_path: str | None, device: str, threads: int | None, data_root: str | None,
          no_throughput: bool, no_exact: bool, ablation: bool, backend: str) -> None:
    """Benchmark: plain Algorithm 1 vs layerswarm exact vs approximate (EfficientNet-Lite0, Fashion-MNIST)."""
    from .bench import format_table, run_bench

    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError as err:
        raise LayerswarmError(f"--seeds '{seeds}' is not a list of integers: pass e.g. --seeds 0,1,2") from err
    if not seed_list:
        raise LayerswarmError("--seeds is empty: pass at least one seed, e.g. --seeds 0")
    result = run_bench(preset, seed_list, device=device, json_path=json_path, data_root=data_root, threads=threads,
                       backend=backend, throughput=not no_throughput, exact=not no_exact, ablation=ablation, log=lambda line: click.echo(line, err=True))
    click.echo(format_table(result))


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
