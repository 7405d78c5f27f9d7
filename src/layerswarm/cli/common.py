"""What the commands share: the click group, option lists and choices, logging, run metadata."""

from __future__ import annotations

import logging
import os
import sys

import click

from ..errors import LayerswarmError
from ..models.config import GRANULARITY_CHOICES, POOLING_CHOICES, ModelConfig
from ._light import light_module
from .options import dataclass_options

# Only torch-free modules at the top: `layerswarm --help` and every COMMAND --help import neither
# torch nor ray (tests/test_cli_start.py). Commands import what they need when they run.
DataConfig = light_module("layerswarm.data.config").DataConfig
TrainConfig = light_module("layerswarm.training.config").TrainConfig
SpeedConfig = light_module("layerswarm.speed.config").SpeedConfig
CONFIG_FILE = "config.json"  # layerswarm.run.search.CONFIG_FILE
PRESET_CHOICES = ("paper",)  # layerswarm.run.presets.PRESETS
SEARCHER_CHOICES = ("pso", "random", "tpe", "ga", "greedy", "exhaustive")  # layerswarm.searchers.SEARCHERS
STRATEGY_CHOICES = ("full", "linear", "mask", "last-k", "first-k", "child-f", "child-d", "discriminative", "gradual", "lp-ft", "auto-rgn",
                    "l2sp", "pso", "random-mask", "scratch")  # layerswarm.strategies.STRATEGIES

DATA_FIELDS = ["data", "data_root", "image_size", "crop_pct", "interpolation", "train_per_class", "val_per_class", "val_fraction",
               "test_fraction", "max_test", "on_bad_image", "max_length", "text_column", "label_column", "categories",
               "tokenizer"]
TRAIN_FIELDS = ["recipe", "lr", "momentum", "weight_decay", "batch_size", "optimizer", "schedule", "step_size",
                "gamma", "warmup_epochs", "head_lr_mult", "head_init", "decay_norm_bias", "label_smoothing", "augment", "rrc_scale_min",
                "crop_padding", "bn_recalibrate", "keep_best", "test_every", "eval_batch_size", "device", "amp", "channels_last", "compile"]
MODEL_FIELDS = ["name", "weights", "granularity", "pooling"]
SPEED_FIELDS = ["memo", "prefix_cache", "cache_mb", "fidelity", "halving_epochs", "halving_keep", "pause_mb", "early_stop",
                "train_fraction", "val_fraction", "val_curve"]


# Options with a fixed set of values: shown in --help, checked before any work. The trainer's own
# lists live beside torch code (training/augment.py, trainer.py): tests/test_cli_start.py checks
# that these agree with them.
MODEL_CHOICES = {"granularity": GRANULARITY_CHOICES, "pooling": POOLING_CHOICES}
DATA_CHOICES = {"on_bad_image": light_module("layerswarm.data.config").BAD_IMAGE_POLICIES,
                "interpolation": light_module("layerswarm.data.config").INTERPOLATIONS}
_TRAIN = light_module("layerswarm.training.config")
TRAIN_CHOICES = {"optimizer": _TRAIN.OPTIMIZERS, "schedule": _TRAIN.SCHEDULES, "augment": _TRAIN.AUGMENTATIONS,
                 "recipe": tuple(_TRAIN.RECIPES), "head_init": _TRAIN.HEAD_INITS}
SPEED_CHOICES = {"fidelity": light_module("layerswarm.speed.config").FIDELITIES}
DATA_MINIMUM = {"max_length": 2, "image_size": 1, "train_per_class": 1, "val_per_class": 1, "max_test": 1}
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


def _version(ctx: click.Context, _param, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from .. import __version__

        click.echo(f"layerswarm {__version__}")
        ctx.exit()


app.params.append(click.Option(["--version"], is_flag=True, expose_value=False, is_eager=True, callback=_version,
                               help="print the version and exit"))


class Interrupted(Exception):
    """Ctrl-C, with the one line to print (what was kept, how to continue)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler preempting the job), raised where the program stands: it unwinds as
    Ctrl-C does (nothing half-written) and the command exits with 143 (128 + SIGTERM)."""


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


_ARGV: list[str] | None = None  # the arguments of this invocation (set by main), recorded in config.json


def _meta() -> dict:
    """What config.json records besides the settings: the command line and package versions."""
    from ..run.rundir import command_line, versions

    return {"command": command_line(_ARGV), "versions": versions()}


def _apply_recipe(settings: dict, flags: dict) -> None:
    """``settings`` (training settings read from a file) take from ``flags`` (built from
    ``--recipe`` and the options given) every value the new recipe sets, and every value the
    file's own recipe had set (it came with that recipe, not from the user): the file's other
    settings stay."""
    recipes = getattr(light_module("layerswarm.training.config"), "RECIPES", {})
    keys = set(recipes.get(flags.get("recipe"), {})) | set(recipes.get(settings.get("recipe"), {}))
    for key in {"recipe"} | keys:
        if key in flags:
            settings[key] = flags[key]
