"""What the commands share: the click group, option lists and choices, logging, run metadata."""

from __future__ import annotations

import logging
import os
import sys

import click

from ..config_utils import get_dotted, has_dotted, set_dotted
from ..errors import LayerswarmError
from ._light import light_module
from .options import dataclass_options

# Only torch-free modules at the top: `layerswarm --help` and every COMMAND --help import neither
# torch nor ray (tests/test_cli_start.py). Commands import what they need when they run. The
# config modules load without their packages (whose __init__ imports torch or numpy), the parts
# before layerswarm.run.config, which imports them.
_MODEL = light_module("layerswarm.models.config")
_DATA = light_module("layerswarm.data.config")
_TRAIN = light_module("layerswarm.training.config")
_SPEED = light_module("layerswarm.speed.config")
PSOConfig = light_module("layerswarm.searchers.pso_config").PSOConfig
_SPACE = light_module("layerswarm.searchers.space")
_RUN = light_module("layerswarm.run.config")
_SEARCH = light_module("layerswarm.run.search_config")
ModelConfig, DataConfig, TrainConfig, SpeedConfig = (
    _MODEL.ModelConfig,
    _DATA.DataConfig,
    _TRAIN.TrainConfig,
    _SPEED.SpeedConfig,
)
RunConfig, SearchConfig, CompareConfig = _RUN.RunConfig, _RUN.SearchConfig, _RUN.CompareConfig
RUN_DEFAULTS = RunConfig()  # what `layerswarm search` runs without options
COMPARE_DEFAULTS = CompareConfig()
CONFIG_FILE = "config.json"  # layerswarm.run.search.CONFIG_FILE
PRESET_CHOICES = ("paper",)  # layerswarm.run.presets.PRESETS
SEARCHER_CHOICES = ("pso", "random", "tpe", "ga", "greedy", "exhaustive")  # layerswarm.searchers.SEARCHERS
STRATEGY_CHOICES = (
    "full",
    "linear",
    "mask",
    "last-k",
    "first-k",
    "child-f",
    "child-d",
    "discriminative",
    "gradual",
    "lp-ft",
    "auto-rgn",
    "l2sp",
    "pso",
    "random-mask",
    "scratch",
)  # layerswarm.strategies.STRATEGIES

# Options with a fixed set of values: shown in --help, checked before any work. The trainer's own
# lists live beside torch code (training/augment.py, trainer.py): tests/test_cli_start.py checks
# that these agree with them.
MODEL_CHOICES = {"granularity": _MODEL.GRANULARITY_CHOICES, "pooling": _MODEL.POOLING_CHOICES}
DATA_CHOICES = {"on_bad_image": _DATA.BAD_IMAGE_POLICIES, "interpolation": _DATA.INTERPOLATIONS}
TRAIN_CHOICES = {
    "optimizer": _TRAIN.OPTIMIZERS,
    "schedule": _TRAIN.SCHEDULES,
    "augment": _TRAIN.AUGMENTATIONS,
    "recipe": tuple(_TRAIN.RECIPES),
    "head_init": _TRAIN.HEAD_INITS,
}
SPEED_CHOICES = {"fidelity": _SPEED.FIDELITIES}
SEARCH_CHOICES = {
    "searcher": SEARCHER_CHOICES,
    "backend": ("local", "ray"),
    "init": _SEARCH.INITS,
    "space": _SPACE.SPACES,
    "fitness_score": light_module("layerswarm.fitness.evaluation").FITNESS_SCORES,
    "answer": light_module("layerswarm.run.answer").ANSWERS,
}
DATA_MINIMUM = {"max_length": 2, "image_size": 1, "train_per_class": 1, "val_per_class": 1, "max_test": 1}
TRAIN_MINIMUM = {"batch_size": 1, "eval_batch_size": 1, "step_size": 1, "test_every": 1, "val_every": 1}
SPEED_MINIMUM = {"cache_mb": 0, "pause_mb": 0, "halving_epochs": 1}
SEARCH_MINIMUM = {
    "retries": 0,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "fitness_steps": 1,
    "final_select": 0,
    "select_repeats": 1,
    "select_epochs": 1,
    "fitness_repeats": 1,
    "patience": 0,
    "max_failed_share": 0,
}
SEARCH_MAXIMUM = {"max_failed_share": 1}
# The PSO settings `layerswarm search` offers as options (the rest keep PSOConfig's defaults).
PSO_FIELDS = ("generations", "c1", "c2", "inertia_start", "inertia_end", "velocity_max")
PSO_MINIMUM = {"generations": 1, "c1": 0, "c2": 0}


def _config_options(cls: type, prefix: str, exclude: tuple[str, ...] = (), **settings):
    """``NAME_options``: a decorator adding an option for every field of ``cls`` but ``exclude``;
    ``@NAME_options(without=(...))`` leaves out more."""

    def options(func=None, *, without: tuple[str, ...] = ()):
        decorate = dataclass_options(cls, prefix=prefix, exclude=(*exclude, *without), **settings)
        return decorate if func is None else decorate(func)

    return options


# Every field becomes an option, but those a command sets otherwise (its --seed, --fitness-epochs
# and --final-epochs, the searcher's options) and the trainer's validation cadence.
model_options = _config_options(ModelConfig, "model_", rename={"name": "model"}, choices=MODEL_CHOICES)
data_options = _config_options(DataConfig, "data_", exclude=("seed",), choices=DATA_CHOICES, minimum=DATA_MINIMUM)
train_options = _config_options(
    TrainConfig, "train_", exclude=("epochs", "seed", "val_every"), choices=TRAIN_CHOICES, minimum=TRAIN_MINIMUM
)
speed_options = _config_options(
    SpeedConfig,
    "speed_",
    rename={
        "prefix_cache": "cache",
        "train_fraction": "fitness_train_fraction",
        "val_fraction": "fitness_val_fraction",
    },
    choices=SPEED_CHOICES,
    minimum=SPEED_MINIMUM,
)
search_options = _config_options(
    SearchConfig,
    "search_",
    exclude=("options",),
    choices=SEARCH_CHOICES,
    minimum=SEARCH_MINIMUM,
    maximum=SEARCH_MAXIMUM,
)
pso_options = _config_options(PSOConfig, "pso_", include=PSO_FIELDS, minimum=PSO_MINIMUM, help_prefix="PSO: ")


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


app.params.append(
    click.Option(
        ["--version"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_version,
        help="print the version and exit",
    )
)


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
    return {
        name
        for name in ctx.params
        if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    }


_ARGV: list[str] | None = None  # the arguments of this invocation (set by main), recorded in config.json


def _meta() -> dict:
    """What config.json records besides the settings: the command line and package versions."""
    from ..run.rundir import command_line, versions

    return {"command": command_line(_ARGV), "versions": versions()}


def _apply_recipe(settings: dict, flags: dict) -> None:
    """``settings`` (training settings read from a file, in today's layout) take from ``flags``
    (built from ``--recipe`` and the options given) every value the new recipe sets, and every
    value the file's own recipe had set (it came with that recipe, not from the user): the
    file's other settings stay."""
    recipes = _TRAIN.RECIPES
    keys = set(recipes.get(flags.get("recipe"), {})) | set(recipes.get(settings.get("recipe"), {}))
    for key in {"recipe"} | keys:
        if has_dotted(flags, key):
            set_dotted(settings, key, get_dotted(flags, key))
