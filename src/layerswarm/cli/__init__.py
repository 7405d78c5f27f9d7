"""The ``layerswarm`` command line: search, finetune, layers, models."""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_at_start(_signum, _frame) -> None:
    sys.stderr.write("layerswarm: interrupted\n")
    os._exit(130)


# Ctrl-C before main() is running (while Python imports this module) ends with one line too;
# main() hands SIGINT back to Python (KeyboardInterrupt) once it can catch it.
if __name__ == "__main__" or os.path.basename(sys.argv[0] or "") == "layerswarm":
    signal.signal(signal.SIGINT, _interrupted_at_start)

import json  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402

from ._light import light_module  # noqa: E402
from .cli_options import dataclass_options, pop_config  # noqa: E402
from .errors import LayerswarmError  # noqa: E402
from .io import read_json  # noqa: E402
from .model_config import GRANULARITY_CHOICES, ModelConfig  # noqa: E402

# Only torch-free modules at the top: `layerswarm --help` and every COMMAND --help import neither
# torch nor ray (tests/test_cli_start.py). Commands import what they need when they run.
DataConfig = light_module("layerswarm.data.config").DataConfig
TrainConfig = light_module("layerswarm.training.config").TrainConfig
SpeedConfig = light_module("layerswarm.speed.config").SpeedConfig
CONFIG_FILE = "config.json"  # layerswarm.search.CONFIG_FILE
PRESET_CHOICES = ("paper",)  # layerswarm.presets.PRESETS
SEARCHER_CHOICES = ("pso", "random", "tpe", "ga", "greedy", "exhaustive")  # layerswarm.searchers.SEARCHERS
STRATEGY_CHOICES = ("full", "linear", "mask", "last-k", "first-k", "child-f", "child-d", "discriminative", "gradual",
                    "l2sp", "pso", "random-mask", "scratch")  # layerswarm.strategies.STRATEGIES

DATA_FIELDS = ["data", "data_root", "image_size", "crop_pct", "interpolation", "train_per_class", "val_per_class", "val_fraction",
               "test_fraction", "max_test", "on_bad_image"]
TRAIN_FIELDS = ["recipe", "lr", "momentum", "weight_decay", "batch_size", "optimizer", "schedule", "step_size",
                "gamma", "warmup_epochs", "head_lr_mult", "decay_norm_bias", "label_smoothing", "augment", "rrc_scale_min",
                "crop_padding", "bn_recalibrate", "keep_best", "test_every", "eval_batch_size", "device", "amp", "channels_last", "compile"]
MODEL_FIELDS = ["name", "weights", "granularity"]
SPEED_FIELDS = ["memo", "prefix_cache", "cache_mb", "fidelity", "halving_epochs", "halving_keep", "pause_mb", "early_stop",
                "train_fraction", "val_fraction", "val_curve"]


# Options with a fixed set of values: shown in --help, checked before any work. The trainer's own
# lists live beside torch code (training/augment.py, trainer.py): tests/test_cli_start.py checks
# that these agree with them.
MODEL_CHOICES = {"granularity": GRANULARITY_CHOICES}
DATA_CHOICES = {"on_bad_image": light_module("layerswarm.data.config").BAD_IMAGE_POLICIES,
                "interpolation": light_module("layerswarm.data.config").INTERPOLATIONS}
_TRAIN = light_module("layerswarm.training.config")
TRAIN_CHOICES = {"optimizer": _TRAIN.OPTIMIZERS, "schedule": _TRAIN.SCHEDULES, "augment": _TRAIN.AUGMENTATIONS,
                 "recipe": tuple(_TRAIN.RECIPES)}
SPEED_CHOICES = {"fidelity": light_module("layerswarm.speed.config").FIDELITIES}
DATA_MINIMUM = {"image_size": 1, "train_per_class": 1, "val_per_class": 1, "max_test": 1}
TRAIN_MINIMUM = {"batch_size": 1, "eval_batch_size": 1, "step_size": 1, "test_every": 1, "val_every": 1}
SPEED_MINIMUM = {"cache_mb": 0, "pause_mb": 0, "halving_epochs": 1}


def model_options(func):
    return dataclass_options(ModelConfig, MODEL_FIELDS, prefix="model_", rename={"name": "model"},
                             choices=MODEL_CHOICES)(func)


def data_options(func):
    return dataclass_options(DataConfig, DATA_FIELDS, prefix="data_", choices=DATA_CHOICES, minimum=DATA_MINIMUM)(func)


def train_options(func):
    return dataclass_options(TrainConfig, TRAIN_FIELDS, prefix="train_", choices=TRAIN_CHOICES,
                             minimum=TRAIN_MINIMUM)(func)


def speed_options(func):
    return dataclass_options(SpeedConfig, SPEED_FIELDS, prefix="speed_", rename={
        "prefix_cache": "cache", "train_fraction": "fitness_train_fraction", "val_fraction": "fitness_val_fraction"},
        choices=SPEED_CHOICES, minimum=SPEED_MINIMUM)(func)


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    # Offline, the hub logs every retry of every weight file (twice: its handler and ours); a
    # failed download ends in one layerswarm error line instead.
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # read when huggingface_hub configures its logger
    for name in ("huggingface_hub", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def app() -> None:
    """layerswarm: search which layers of a pretrained network to fine-tune (PSO), and compare."""


@app.command()
@model_options
@data_options
@train_options
@speed_options
@click.option("--preset", type=click.Choice(PRESET_CHOICES), default=None,
              help="a named set of options; 'paper': Algorithm 1 of METHOD.md exactly (random init, 10x12 PSO, "
                   "5 fitness epochs, 110 final, --recipe paper, no final selection, no baselines); flags given win")
@click.option("--searcher", type=click.Choice(SEARCHER_CHOICES), default="pso", show_default=True, help="searcher (docs/searchers.md)")
@click.option("--particles", type=click.IntRange(min=1), default=10, show_default=True, help="PSO swarm size n (other searchers: masks per batch)")
@click.option("--generations", type=click.IntRange(min=1), default=12, show_default=True, help="PSO generations G")
@click.option("--budget", type=click.IntRange(min=1), default=None, help="fitness evaluations of the search, any searcher (default: particles x generations)")
@click.option("--c1", type=float, default=1.5, show_default=True, help="PSO cognitive factor")
@click.option("--c2", type=float, default=1.5, show_default=True, help="PSO social factor")
@click.option("--inertia-start", type=float, default=1.4, show_default=True, help="inertia weight at the first generation")
@click.option("--inertia-end", type=float, default=0.7, show_default=True, help="inertia weight at the last generation")
@click.option("--velocity-max", type=float, default=None, help="optional bound on |velocity| per dimension")
@click.option("--fitness-epochs", type=click.IntRange(min=1), default=5, show_default=True, help="maxEpoch: epochs of each fitness fine-tune")
@click.option("--final-epochs", type=click.IntRange(min=1), default=110, show_default=True, help="epochs of the final fine-tune")
@click.option("--init", type=click.Choice(("baselines", "random")), default="baselines", show_default=True,
              help="first masks asked: 'baselines' puts linear, full and last-k (k = 1, 2, 4, units/4) among them, so "
                   "the search's best fitness is never below theirs; 'random' is the paper's")
@click.option("--final-select", type=click.IntRange(min=0), default=3, show_default=True,
              help="before the final fine-tune, re-evaluate the top K distinct masks with fresh seeds and fine-tune the "
                   "best by the mean of all its evaluations (phase 'selection' in evaluations.jsonl); 0: off")
@click.option("--select-repeats", type=click.IntRange(min=1), default=2, show_default=True,
              help="fresh-seed evaluations of each mask in the final selection")
@click.option("--baselines", default="linear,full,last-k", show_default=True,
              help="after the final fine-tune, fine-tune these with the same recipe, split and seed and compare "
                   "(DIR/baselines/NAME/; last-k is k=4, last-k:K another k; any strategy, e.g. l2sp); none: skip")
@click.option("--fitness-steps", type=click.IntRange(min=1), default=None,
              help="the fitness budget in optimizer steps instead of --fitness-epochs (an epoch is another number of "
                   "steps on every dataset size): ceil(steps / steps per epoch) epochs, both saved in config.json")
@click.option("--fitness-repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="evaluations averaged per fitness, each with other seeds for the head and the batch order")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True, help="retries of a failing evaluation")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="run evaluations here, one at a time, or in parallel on Ray")
@click.option("--address", default=None, help="Ray cluster to join (auto, ray://HOST:10001); default: start Ray on this machine")
@click.option("--cpus-per-trial", type=click.IntRange(min=1), default=None, help="CPU cores (torch threads) per evaluation; default all cores locally, 1 per Ray task")
@click.option("--gpus-per-trial", type=click.FloatRange(min=0), default=0.0, show_default=True, help="GPUs per Ray evaluation (0.5: two share a GPU); needs --device cuda")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the search, the head and the training")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="output folder (default runs/search-<model>-<data>)")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), default=None,
              help="continue the run in this folder; options given with it must match the run, except the final "
                   "fine-tune's before it starts, --retries and --address (applied and recorded in config.json)")
@click.option("--overwrite", is_flag=True, help="replace the run already in --out (its files go once the new run starts)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="settings from a YAML or JSON file with a run's config.json keys; options given here override it")
@click.option("--quiet", is_flag=True, help="only warnings and the result: no progress bars or log lines")
@click.option("--tensorboard", is_flag=True, help="write TensorBoard logs to OUT/tensorboard")
def search(**kw) -> None:
    """Search a freeze/fine-tune mask with PSO on train/val, fine-tune it, test it."""
    quiet, tensorboard, overwrite = kw.pop("quiet"), kw.pop("tensorboard"), kw.pop("overwrite")
    config_file, resume_dir = kw.pop("config_file"), kw.pop("resume_dir")
    _setup_logging(quiet)
    given = _given_options()
    if {"fitness_epochs", "fitness_steps"} <= given:
        raise LayerswarmError("--fitness-epochs and --fitness-steps both give the fitness budget: pass one")
    from .presets import apply_preset

    given |= apply_preset(kw, given)  # the preset's options count as given: they override a --config file
    if resume_dir and (config_file or overwrite):
        raise LayerswarmError(f"--resume excludes {'--config' if config_file else '--overwrite'}: a resumed run keeps "
                              "its own config.json (pass the options to change alone)")
    if resume_dir and "out_dir" in given and Path(kw["out_dir"]) != Path(resume_dir):
        raise LayerswarmError(f"--resume {resume_dir} and --out {kw['out_dir']} name different folders: pass --resume alone")
    if tensorboard:
        _need_module("tensorboard", "--tensorboard", "report")
    flags, default_out = _search_config(kw)
    if resume_dir:
        if not (Path(resume_dir) / CONFIG_FILE).is_file():
            raise LayerswarmError(f"nothing to resume in '{resume_dir}': no {CONFIG_FILE} there "
                                  f"(start a run with: layerswarm search --out {resume_dir})")
        cfg, out_dir = _run_config(read_json(Path(resume_dir) / CONFIG_FILE), flags, given, source=resume_dir), resume_dir
    elif config_file:
        from .rundir import read_config_file

        cfg, out_dir = _run_config(read_config_file(config_file), flags, given, source=config_file), default_out
    else:
        cfg, out_dir = flags, default_out
    from .listeners import Listeners
    from .progress import search_listeners
    from .search import run_search

    listeners = Listeners([search_listeners(cfg, out_dir, quiet=quiet)])
    if tensorboard:  # opened at the first event: no folder before the run has started
        listeners.listeners.append(_Deferred(lambda: _tensorboard(out_dir, cfg)))
    result = None
    try:
        result = run_search(cfg, out_dir, resume=bool(resume_dir), overwrite=overwrite, meta=_meta(),
                            on_evaluation=listeners.on_evaluation, on_final_epoch=listeners.on_final_epoch,
                            on_fitness_epoch=listeners.on_fitness_epoch)
    except KeyboardInterrupt as err:  # state is saved after every evaluation: nothing finished is lost
        if not (Path(out_dir) / CONFIG_FILE).is_file():
            raise Interrupted("interrupted before the run started: nothing was written") from err
        raise Interrupted(f"interrupted: progress is saved in {out_dir}; continue with: "
                          f"layerswarm search --resume {out_dir}") from err
    finally:
        listeners.close(result)
    mask = "".join(map(str, result["mask"]))
    click.echo(f"best mask ({sum(result['mask'])}/{len(result['mask'])} units fine-tuned): {mask}")
    click.echo(f"search fitness (val accuracy): {result['fitness']:.4f}")
    click.echo(f"final test accuracy: {result['test_accuracy']:.4f}")
    if result.get("baselines"):  # the searched mask next to the hand-picked strategies, and who won
        from .baselines import describe

        click.echo("\n".join(describe(result["baselines"])))
    click.echo(f"results in {out_dir}")


class Interrupted(Exception):
    """Ctrl-C, with the one line to print (what was kept, how to continue)."""


class _Deferred:
    """A run listener built at its first event (TensorBoard writes its folder when created)."""

    def __init__(self, make) -> None:
        self.make, self.inner = make, None

    def _get(self):
        if self.inner is None:
            self.inner = self.make()
        return self.inner

    def on_fitness_epoch(self, record: dict) -> None:
        self._get().on_fitness_epoch(record)

    def on_evaluation(self, record: dict) -> None:
        self._get().on_evaluation(record)

    def on_final_epoch(self, record: dict) -> None:
        self._get().on_final_epoch(record)

    def close(self, result: dict | None = None) -> None:
        if self.inner is not None:
            self.inner.close(result)


def _tensorboard(out_dir: str, cfg):
    from .tb import TensorBoardLogger

    return TensorBoardLogger(Path(out_dir) / "tensorboard", cfg.to_dict())


def _need_module(module: str, option: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise LayerswarmError(f"{option} needs the {module} package: pip install 'layerswarm[{extra}]'")


def _given_options() -> set[str]:
    """Names of the current command's parameters set on the command line (not defaults)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}


def _meta() -> dict:
    """What config.json records besides the settings: the command line and package versions."""
    from .rundir import command_line, versions

    return {"command": command_line(_ARGV), "versions": versions()}


# Options of ``search`` -> the config.json keys they set (besides model_*, data_*, train_*, speed_*).
_SEARCH_KEYS = {
    "fitness_epochs": ["fitness.epochs", "search.fitness_steps"], "fitness_steps": ["search.fitness_steps"], "final_epochs": ["final.epochs"],
    "seed": ["seed", "data.seed", "fitness.seed", "final.seed"],
    "fitness_repeats": ["search.fitness_repeats"], "init": ["search.init"],
    "final_select": ["search.final_select"], "select_repeats": ["search.select_repeats"], "baselines": ["search.baselines"],
    "retries": ["search.retries"], "backend": ["search.backend"], "address": ["search.address"],
    "cpus_per_trial": ["search.cpus_per_trial"], "gpus_per_trial": ["search.gpus_per_trial"],
    "searcher": ["search.searcher", "search.options"], "budget": ["search.searcher", "search.options"],
    "preset": ["preset"],
}
# search options that are SearchConfig fields of the same name
_SEARCH_FIELDS = ("fitness_repeats", "fitness_steps", "init", "final_select", "select_repeats", "baselines")
_PSO_OPTIONS = ("particles", "generations", "c1", "c2", "inertia_start", "inertia_end", "velocity_max")
_RUN_PARTS = ("model", "data", "fitness", "final", "search", "seed", "speed", "preset")


def _option_keys(name: str) -> list[str]:
    for prefix, parts in (("model_", ["model"]), ("data_", ["data"]), ("train_", ["fitness", "final"]),
                          ("speed_", ["speed"])):
        if name.startswith(prefix):
            return [f"{part}.{name[len(prefix):]}" for part in parts]
    if name in _PSO_OPTIONS:
        return [f"search.options.{name}"]
    return _SEARCH_KEYS.get(name, [])


def _apply_recipe(settings: dict, flags: dict) -> None:
    """``settings`` (training settings read from a file) take every value a recipe sets from
    ``flags`` (built from ``--recipe`` and the options given): the file's other settings stay."""
    recipes = getattr(light_module("layerswarm.training.config"), "RECIPES", {})
    for key in {"recipe"} | {k for recipe in recipes.values() for k in recipe}:
        if key in flags:
            settings[key] = flags[key]


def _get(d: dict, key: str):
    for part in key.split("."):
        d = d[part]
    return d


def _set(d: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for part in parents:
        d = d.setdefault(part, {})
    d[last] = value


def _run_config(base: dict, flags, given: set[str], source: str):
    """The run configuration of ``base`` (a config.json or --config file) with every option given
    on the command line taken from ``flags`` (the configuration those options build)."""
    from .rundir import META_KEYS
    from .search import RunConfig

    unknown = sorted(set(base) - set(_RUN_PARTS) - set(META_KEYS))
    if unknown:
        raise LayerswarmError(f"'{source}' has unknown keys {unknown}: use {', '.join(_RUN_PARTS)}")
    defaults = RunConfig().to_dict()
    merged = {k: ({**defaults[k], **base[k]} if isinstance(defaults[k], dict) and isinstance(base.get(k), dict)
                  else base.get(k, defaults[k])) for k in _RUN_PARTS}
    flag_values = flags.to_dict()
    searcher = (base.get("search") or {}).get("searcher", "pso")
    for name in sorted(given):
        keys = _option_keys(name)
        if name in _PSO_OPTIONS and not given & {"searcher", "budget"}:
            if searcher != "pso":
                raise LayerswarmError(f"--{name.replace('_', '-')} is a PSO option but '{source}' uses searcher "
                                      f"'{searcher}': pass --searcher and --budget instead")
        elif name in _PSO_OPTIONS:
            keys = []  # --searcher/--budget bring the whole options
        for key in keys:
            _set(merged, key, _get(flag_values, key))
    if "train_recipe" in given:  # a recipe given over a file: its settings, then the options given
        for part in ("fitness", "final"):
            _apply_recipe(merged[part], flag_values[part])
    try:
        return RunConfig.from_dict(merged)
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, LayerswarmError):
            raise LayerswarmError(f"'{source}': {err}") from err
        raise LayerswarmError(f"'{source}' is not a layerswarm run configuration ({err}): "
                              "write the keys of a run's config.json") from err


def _search_config(kw: dict):
    from .search import RunConfig, SearchConfig

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
                            gpus_per_trial=kw.pop("gpus_per_trial"),
                            **{k: kw.pop(k) for k in _SEARCH_FIELDS if k in kw}),  # absent: SearchConfig's defaults
        seed=seed,
        speed=pop_config(SpeedConfig, kw, prefix="speed_"),
        preset=kw.pop("preset", None),
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
@click.option("--strategy", type=click.Choice(STRATEGY_CHOICES), default=None,
              help="see 'layerswarm strategies'; default full, or mask with --mask")
@click.option("--mask", "mask_file", type=click.Path(dir_okay=False), default=None, help="a best_mask.json to fine-tune with")
@click.option("--option", "options", multiple=True, help="a strategy option KEY=VALUE, e.g. --option k=4 (see 'layerswarm strategies')")
@click.option("--epochs", type=click.IntRange(min=1), default=110, show_default=True, help="epochs of the fine-tune")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder: config.json, final/")
@click.option("--overwrite", is_flag=True, help="replace the run already in --out (its files go once the new run starts)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="settings from a YAML or JSON file (a finetune's config.json, or a search's: its final settings); "
                   "options given here override it")
@click.option("--tensorboard", is_flag=True, help="write TensorBoard logs to OUT/tensorboard")
@click.option("--quiet", is_flag=True, help="no per-epoch lines")
def finetune(**kw) -> None:
    """Fine-tune once with a mask or a strategy and test the result."""
    quiet, overwrite, tensorboard = kw.pop("quiet"), kw.pop("overwrite"), kw.pop("tensorboard")
    _setup_logging(quiet)
    given = _given_options()
    if tensorboard:
        _need_module("tensorboard", "--tensorboard", "report")
    settings = _finetune_settings(kw, given)
    out = Path(settings.pop("out_dir"))
    from .rundir import check_classes, check_epochs, check_out_dir, clear_run, config_record

    check_epochs(epochs=settings["train"]["epochs"])
    check_out_dir(out, overwrite, what="finetune")
    from .bundle import build_bundle
    from .compare import make_strategy, parse_strategy_options
    from .data import load_dataset
    from .finetune import run_finetune
    from .units import load_mask

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
    from .models.factory import pretrained_input

    data_cfg = DataConfig.from_dict(settings["data"]).resolved(pretrained_input(model_cfg.name))  # the model's input size
    data = load_dataset(data_cfg)
    check_classes(data.num_classes, data.classes)
    train = TrainConfig.from_dict(settings["train"])
    bundle = build_bundle(model_cfg, data.num_classes, train, seed=seed)
    if mask_file:
        load_mask(mask_file, bundle.units)  # a mask of the wrong length fails here, before any file is written
    click.echo(f"{data.summary()}; input {data_cfg.image_size} px, recipe {train.recipe}, device {bundle.device}", err=True)
    # The work starts: only now does the folder appear (or the old run's files go).
    if overwrite:
        clear_run(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"kind": "finetune", "model": model_cfg.to_dict(), "data": data_cfg.to_dict(), "train": train.to_dict(),
              "strategy": name, "options": dict(options), "mask_file": mask_file, "seed": seed}
    from .io import atomic_write_json

    atomic_write_json(out / CONFIG_FILE, config_record(record, _meta(), bundle.device))
    on_epoch = [] if quiet else [_print_epoch]
    writer = _FinalWriter(out / "tensorboard" / "final") if tensorboard else None
    if writer is not None:
        on_epoch.append(writer.on_epoch)
    try:
        metrics = run_finetune(bundle, data, strategy, train, out / "final", seed=seed,
                               on_epoch=(lambda r: [f(r) for f in on_epoch]) if on_epoch else None)
    except KeyboardInterrupt as err:
        raise Interrupted(f"interrupted: the fine-tune in {out} did not finish; run it again with --overwrite") from err
    finally:
        if writer is not None:
            writer.close()
    click.echo(f"{strategy.name}: test accuracy {metrics['test_accuracy']:.4f} -> {out}/final")


def data_cfg_dict(settings: dict) -> dict:
    return DataConfig.from_dict(settings["data"]).to_dict()


class _FinalWriter:
    """TensorBoard curves of one fine-tune (final/train_loss, final/val_accuracy, ...)."""

    def __init__(self, path: Path) -> None:
        self.path, self.writer = path, None

    def on_epoch(self, record: dict) -> None:
        from .tb import EPOCH_SCALARS, _writer

        if self.writer is None:
            self.writer = _writer(self.path)
        for key in EPOCH_SCALARS:
            if record.get(key) is not None:
                self.writer.add_scalar(f"final/{key}", record[key], int(record["epoch"]))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


_FINETUNE_PARTS = ("model", "data", "train", "strategy", "options", "mask_file", "seed")


def _finetune_settings(kw: dict, given: set[str]) -> dict:
    """The fine-tune's settings (config.json's keys) from the options, over --config FILE's."""
    config_file, out_dir = kw.pop("config_file"), kw.pop("out_dir")
    seed = kw.pop("seed")
    flags = {
        "model": pop_config(ModelConfig, kw, prefix="model_").to_dict(),
        "data": pop_config(DataConfig, kw, prefix="data_", seed=seed).to_dict(),
        "train": pop_config(TrainConfig, kw, prefix="train_", seed=seed, epochs=kw.pop("epochs")).to_dict(),
        "strategy": kw.pop("strategy"), "options": list(kw.pop("options")), "mask_file": kw.pop("mask_file"),
        "seed": seed,
    }
    if not config_file:
        return {**flags, "out_dir": out_dir}
    from .rundir import META_KEYS, read_config_file

    base = read_config_file(config_file)
    if "train" not in base and "final" in base:  # a search's config.json: fine-tune as its final fine-tune
        base = {**{k: v for k, v in base.items() if k not in ("fitness", "final", "search", "speed")}, "train": base["final"]}
    unknown = sorted(set(base) - set(_FINETUNE_PARTS) - set(META_KEYS))
    if unknown:
        raise LayerswarmError(f"'{config_file}' has unknown keys {unknown}: use {', '.join(_FINETUNE_PARTS)}")
    settings = {k: ({**flags[k], **base[k]} if isinstance(flags[k], dict) and isinstance(base.get(k), dict)
                    else base.get(k, flags[k])) for k in _FINETUNE_PARTS}
    for name in given:
        if name.startswith(("model_", "data_", "train_")):
            part, field_name = name.split("_", 1)
            settings[part][field_name] = flags[part][field_name]
        elif name == "epochs":
            settings["train"]["epochs"] = flags["train"]["epochs"]
        elif name == "seed":
            settings["seed"] = settings["data"]["seed"] = settings["train"]["seed"] = seed
        elif name in ("strategy", "options", "mask_file"):
            settings[name] = flags[name]
    if "options" in given or "strategy" in given or "mask_file" in given:
        settings["options"] = flags["options"]
    if "train_recipe" in given:
        _apply_recipe(settings["train"], flags["train"])
    try:  # every part must read back as its dataclass
        ModelConfig.from_dict(settings["model"]), DataConfig.from_dict(settings["data"])
        TrainConfig.from_dict(settings["train"])
    except (TypeError, ValueError) as err:
        raise LayerswarmError(f"'{config_file}': {err}") from err
    return {**settings, "out_dir": out_dir}


@app.command()
@click.option("--model", "name", default="efficientnet_lite0", show_default=True, help="model name")
@click.option("--granularity", type=click.Choice(GRANULARITY_CHOICES), default="block", show_default=True, help="mask units")
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

    names = [n for n in LITE_MODELS if fnmatch.fnmatch(n, pattern)] + timm.list_models(pattern) + [
        f"tv:{n}" for n in torchvision.models.list_models() if fnmatch.fnmatch(n, pattern.removeprefix("tv:"))
    ]
    names = list(dict.fromkeys(names))  # the offline EfficientNet-Lite names are timm names too
    if not names:
        raise LayerswarmError(f"no model name matches '{pattern}': use a shell pattern such as 'resnet*' or '*vit*', "
                              "or list every name with: layerswarm models")
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
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, help="JSON file (default DIR/mask_export.json)")
def export(run_dir: str, out_file: str | None) -> None:
    """Write the run's mask as parameter-name patterns and a requires_grad map, for your own
    timm, PyTorch or Hugging Face training code (README: "Use a mask elsewhere")."""
    from .export import export_mask
    from .io import read_json

    path = export_mask(run_dir, out_file)
    spec = read_json(path)
    click.echo(f"mask {''.join(map(str, spec['mask']))}: {len(spec['frozen_patterns'])} frozen patterns, "
               f"{sum(not v for v in spec['requires_grad'].values())}/{len(spec['requires_grad'])} parameters frozen -> {path}")


@app.command()
@click.argument("run_dir", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="classes to show per image")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def predict(run_dir: str, images: tuple[str, ...], top_k: int, device: str, as_json: bool) -> None:
    """Classify IMAGES (image files, or folders of them) with the final model of RUN_DIR (a search or
    finetune --out folder). Unreadable images are skipped with one warning naming them."""
    import torch

    from .data.imagefolder import list_images
    from .predict import Prediction, Predictor, format_predictions

    paths: list[str] = []
    for image in images:
        path = Path(image)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise LayerswarmError(f"folder '{image}' holds no image files: pass image files or a folder of them")
            paths.extend(map(str, found))
        elif not path.exists():
            raise LayerswarmError(f"image '{image}' does not exist: pass image files or folders of them")
        else:
            paths.append(image)
    predictor = Predictor(run_dir, device=device)
    good, batches, skipped = [], [], []
    for p in paths:  # one at a time: a file that does not decode is skipped, not fatal to the batch
        try:
            batches.append(predictor.load_images([p]))
            good.append(p)
        except LayerswarmError:
            skipped.append(p)
    shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
    if not good:
        raise LayerswarmError(f"no readable image to classify ({shown} could not be decoded): "
                              "pass JPEG, PNG or other image files")
    if skipped:
        click.echo(f"layerswarm: warning: skipped {len(skipped)} unreadable image(s): {shown}", err=True)
    probs = predictor.probabilities(torch.cat(batches))
    values, indices = probs.topk(min(top_k, len(predictor.classes)), dim=1)
    results = [Prediction(p, [(predictor.classes[int(i)], float(v)) for v, i in zip(vs, ix, strict=True)])
               for p, vs, ix in zip(good, values, indices, strict=True)]
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
    from .search import RunConfig

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


_ARGV: list[str] | None = None  # the arguments of this invocation, recorded in config.json


def _version(ctx: click.Context, _param, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from . import __version__

        click.echo(f"layerswarm {__version__}")
        ctx.exit()


app.params.append(click.Option(["--version"], is_flag=True, expose_value=False, is_eager=True, callback=_version,
                               help="print the version and exit"))


def _one_line(err: click.ClickException) -> str:
    """A click usage error as one line, with where to look for the right usage."""
    msg = " ".join(err.format_message().split())
    ctx = getattr(err, "ctx", None)
    if isinstance(err, click.UsageError) and ctx is not None:
        msg += f" (see: {ctx.command_path} --help)"
    return msg


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2; Ctrl-C at any moment
    one line and exit code 130."""
    global _ARGV
    _ARGV = list(sys.argv[1:] if argv is None else argv)
    try:
        signal.signal(signal.SIGINT, _raise_interrupt)
        # click's own main would print a blank line on Ctrl-C: parse and invoke here instead
        with app.make_context("layerswarm", list(_ARGV)) as ctx:
            app.invoke(ctx)
    except LayerswarmError as err:
        click.echo(f"layerswarm: error: {err}", err=True)
        return 2
    except (KeyboardInterrupt, click.exceptions.Abort, Interrupted) as err:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while this line prints
        text = str(err) if isinstance(err, Interrupted) else "interrupted"
        click.echo(f"layerswarm: {text}", err=True)
        return 130
    except click.exceptions.Exit as err:
        return err.exit_code
    except click.ClickException as err:
        click.echo(f"layerswarm: error: {_one_line(err)}", err=True)
        return err.exit_code
    except Exception:
        # a KeyboardInterrupt inside a half-done import (numpy, scipy) can surface as another
        # error (RecursionError, ImportError): after a Ctrl-C it is still the interrupt
        if not _SIGINT_SEEN:
            raise
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        click.echo("layerswarm: interrupted", err=True)
        return 130
    return 0


_SIGINT_SEEN = False


def _raise_interrupt(signum, frame) -> None:
    """Python's default Ctrl-C (KeyboardInterrupt), remembering that it happened."""
    global _SIGINT_SEEN
    _SIGINT_SEEN = True
    signal.default_int_handler(signum, frame)


if __name__ == "__main__":
    sys.exit(main())
