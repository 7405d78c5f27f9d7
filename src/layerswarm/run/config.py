"""The configuration of a run (:class:`RunConfig`, its :class:`SearchConfig`) and of a comparison
(:class:`CompareConfig`): the one source of their defaults.

The defaults are the measured ones, the ones ``layerswarm search`` and ``layerswarm compare`` run
with: the command line builds its options from these fields (help text and default), so
``RunConfig()`` in Python is the search that ``layerswarm search`` runs without options. The
paper's configuration exactly is a preset: ``RunConfig.from_preset("paper")`` here,
``layerswarm search --preset paper`` there (:mod:`layerswarm.run.presets`).

This module imports no torch or numpy: its parts' modules (``models.config``, ``data.config``,
``training.config``, ``speed.config``, ``searchers.space``) are free of them, and the command
line loads them without their packages (:mod:`layerswarm.cli._light`) before this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config_utils import JsonConfig, help_field, refuse_invalid, set_dotted
from ..data.config import DataConfig
from ..errors import LayerswarmError
from ..fitness.evaluation import FITNESS_SCORES
from ..models.config import ModelConfig
from ..searchers.space import SPACES, space_of
from ..speed.config import SpeedConfig
from ..training.config import RECIPES, TrainConfig
from .answer import ANSWERS
from .failures import DEFAULT_MAX_FAILED_SHARE
from .presets import preset_values
from .rundir import META_KEYS

FINAL_EPOCHS = 110  # the paper's final fine-tune
DEFAULT_STRATEGIES = ("scratch", "linear", "full", "l2sp", "child-d", "random-mask", "pso")
EARLY_EPOCH = 5  # the paper also reports test accuracy after 5 epochs
# layerswarm.searchers.INITS, here without numpy (tests/test_cli_defaults.py checks they agree)
INITS = ("random", "baselines")


@dataclass
class SearchConfig(JsonConfig):
    """How the mask is searched, and what the run does after the search.

    The defaults are the search measured best (docs/concepts/defaults.md: 3 seeds against the
    baselines on both benchmarks): the paper's swarm (10 x 12 PSO from a random start, 5 fitness
    epochs), ended after 3 generations without a better fitness (on Fashion-MNIST it had found
    its mask by then on every seed; on digits it stops 1.4-4.4 final fine-tunes earlier, with
    masks as good), then the baselines linear, full and last-k fine-tuned like the searched mask,
    and the best of them by final validation accuracy as the run's answer.
    ``RunConfig.from_preset("paper")`` is the paper's Algorithm 1 exactly (no early end, no
    baselines, the searched mask answers).

    A saved configuration without ``patience``, ``baselines`` or ``answer`` (a run from before
    they existed) reads as that run ran: ``legacy``.
    """

    searcher: str = help_field(
        "pso",
        "searcher (docs/concepts/searchers.md): pso (the paper's, measured best: "
        "docs/concepts/defaults.md), random, tpe, ga, greedy, exhaustive, or one added with "
        "register_searcher",
    )
    options: dict = help_field(
        None,
        "the searcher's options, e.g. PSO's particles, generations, c1, c2; empty: its own "
        "defaults (PSO: the paper's 10 x 12)",
        default_factory=dict,
    )
    retries: int = help_field(1, "retries of an evaluation that raises before it counts as failed")
    max_failed_share: float = help_field(
        DEFAULT_MAX_FAILED_SHARE,
        "stop (exit 1, resumable) when more than this share of the evaluations has failed, or "
        "every one of the first batch (docs/guides/faults.md); 1: only the latter",
    )
    backend: str = help_field("local", "where evaluations run: local (here, one at a time) or ray (in parallel)")
    address: str | None = help_field(
        None, "Ray cluster to join (auto, ray://HOST:10001); default: start Ray on this machine"
    )
    cpus_per_trial: int | None = help_field(
        None,
        "CPU cores per evaluation, also its torch thread count; default: torch's own (all "
        "cores) locally, 1 per Ray task. CPU results depend on the thread count: give both "
        "backends the same number to get equal results",
    )
    gpus_per_trial: float = help_field(0.0, "GPUs per Ray evaluation (0.5: two share a GPU); needs --device cuda")
    init: str = help_field(
        "random",
        "first masks asked: 'random' (the paper's, measured better with the swarm: "
        "docs/concepts/defaults.md) or 'baselines' (linear, full and last-k, k = 1, 2, 4, "
        "units/4, among them, so the search's best fitness is never below theirs)",
    )
    fitness_steps: int | None = help_field(
        None,
        "the fitness budget in optimizer steps instead of --fitness-epochs (an epoch is "
        "another number of steps on every dataset size): ceil(steps / steps per epoch) epochs, "
        "both saved in config.json",
    )
    final_select: int = help_field(
        0,
        "before the final fine-tune, re-evaluate the top K distinct masks with fresh seeds "
        "and fine-tune the best by the mean of all its evaluations (phase 'selection' in "
        "evaluations.jsonl); 0: off (the paper)",
    )
    select_repeats: int = help_field(1, "fresh-seed evaluations of each mask in the final selection")
    select_epochs: int | None = help_field(
        None,
        "epochs of each final-selection evaluation (default: the fitness budget, and a "
        "mask's score is the mean of its search and selection fitness); another budget ranks "
        "the candidates by the selection's fitness alone (10 ranks masks better than 5: "
        "docs/concepts/fitness.md)",
    )
    baselines: str = help_field(
        "linear,full,last-k",
        "after the final fine-tune, fine-tune these with the same recipe, "
        "split and seed and compare (DIR/baselines/NAME/; last-k: k = half the units, last-k:K "
        "another k; any strategy, e.g. l2sp); none: skip (the paper)",
    )
    fitness_repeats: int = help_field(
        1,
        "evaluations averaged per fitness, each with other seeds for the new head and the "
        "batch order (1: one evaluation, as the paper)",
    )
    fitness_score: str = help_field(
        "accuracy",
        "the fitness of a mask: 'accuracy', validation accuracy after the fitness "
        "fine-tune (the paper), or 'trend', that plus its rise since the middle epoch, which "
        "ranks a still-climbing mask above one that has flattened (docs/concepts/fitness.md)",
    )
    patience: int = help_field(
        3,
        "end the search after this many generations (batches of asks) in a row without a "
        "better fitness; 0: off, the whole budget (the paper)",
    )
    answer: str = help_field(
        "validation",
        "the run's answer: 'validation', the best by final validation accuracy "
        "among the searched mask and the baselines (answer.json; predict and export follow it; "
        "the test split only reports it), or 'mask', the searched mask's fine-tune (the paper)",
    )
    space: str = help_field(
        "mask",
        "what the search chooses per unit: 'mask', frozen or fine-tuned (the paper), or "
        "'lr', a level of --ladder: frozen, or fine-tuned at lr x that multiplier "
        "(best_mask.json: lr_multipliers)",
    )
    ladder: list[float] | None = help_field(
        None,
        "the learning-rate multipliers of --space lr, rising from 0 (frozen) and holding 1 "
        "(default 0,0.3,1,3); mask space: none",
    )

    # what a saved search without the key did: it was written before the setting existed
    legacy: ClassVar[dict[str, Any]] = {"patience": 0, "baselines": "none", "answer": "mask"}

    def __post_init__(self) -> None:
        refuse_invalid(
            "search config",
            {
                f"init must be one of {', '.join(INITS)}": self.init not in INITS,
                f"fitness_score must be one of {', '.join(FITNESS_SCORES)}": self.fitness_score not in FITNESS_SCORES,
                f"answer must be one of {', '.join(ANSWERS)}": self.answer not in ANSWERS,
                "fitness_repeats and select_repeats must be >= 1": self.fitness_repeats < 1 or self.select_repeats < 1,
                "final_select must be >= 0": self.final_select < 0,
                "select_epochs must be >= 1 or None": self.select_epochs is not None and self.select_epochs < 1,
                "patience must be >= 0 (0: off)": self.patience < 0,
                "fitness_steps must be >= 1 or None": self.fitness_steps is not None and self.fitness_steps < 1,
                "max_failed_share must be between 0 and 1": not 0 <= self.max_failed_share <= 1,
                f"space must be one of {', '.join(SPACES)}": self.space not in SPACES,
            },
        )
        # the ladder is saved resolved (a later default cannot change a run on resume), and
        # checked here
        if self.space != "mask" or self.ladder is not None:
            self.ladder = list(space_of(self).ladder)


def _final_train() -> TrainConfig:
    return TrainConfig(epochs=FINAL_EPOCHS)


@dataclass
class RunConfig(JsonConfig):
    """The full resolved configuration of a run, written to ``config.json``. ``RunConfig()`` is
    the search ``layerswarm search`` runs without options; ``RunConfig.from_preset("paper")``
    the paper's."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    fitness: TrainConfig = field(default_factory=TrainConfig)  # maxEpoch = 5 short fine-tunes
    final: TrainConfig = field(default_factory=_final_train)  # the 110-epoch final fine-tune
    search: SearchConfig = field(default_factory=SearchConfig)
    seed: int = help_field(0, "seed of the search, the head, the training and the data split")
    speed: SpeedConfig = field(default_factory=SpeedConfig)  # exact speed-ups on, approximate off
    preset: str | None = None  # the preset these settings started from (run/presets.py), or None

    required = ("model", "data", "fitness", "final", "search")
    ignored = META_KEYS  # config.json's record of the run

    @classmethod
    def from_preset(cls, name: str, **parts: Any) -> RunConfig:
        """The configuration of preset ``name`` (``paper``: Algorithm 1 of the paper exactly),
        with ``parts`` (``model=``, ``data=``, ``seed=``, ...) replacing whole fields, e.g.
        ``RunConfig.from_preset("paper", data=DataConfig(data="fashion-mnist"))``. Change a setting
        inside a part with ``replace``: ``cfg.replace(final=cfg.final.replace(epochs=30))``."""
        values = preset_values(name)
        settings = cls().to_dict()
        for part in ("fitness", "final"):  # the recipe first: the preset's own keys override it
            recipe = values.get(f"{part}.recipe")
            if recipe is not None:
                settings[part].update(RECIPES[recipe])
        for key, value in values.items():
            set_dotted(settings, key, value)
        settings["preset"] = name
        return cls.from_dict(settings).replace(**parts)


def _compare_train() -> TrainConfig:
    return TrainConfig(epochs=FINAL_EPOCHS, test_every=EARLY_EPOCH)


@dataclass
class CompareConfig(JsonConfig):
    """Everything that defines a comparison (``layerswarm compare``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: list[DataConfig] = field(default_factory=lambda: [DataConfig()])
    strategies: list[str] = help_field(None, "strategies to compare", default_factory=lambda: list(DEFAULT_STRATEGIES))
    options: dict = help_field(None, "per-strategy options: {strategy: {option: value}}", default_factory=dict)
    train: TrainConfig = field(default_factory=_compare_train)  # 110 epochs, tested every 5
    repeats: int = help_field(3, "runs per strategy and dataset (training seeds seed..seed+R-1)")
    seed: int = help_field(0, "base seed (the data split uses it too)")
    resplit: bool = help_field(False, "draw a new data split per repeat (seed + r) instead of one fixed split")

    required = ("model", "data", "strategies", "train", "repeats", "seed")

    def validate(self) -> None:
        """Fail before any training on a name or an option given to no strategy (each strategy's
        own options are checked where the strategies are built: ``run.compare.validate_compare``)."""
        if self.repeats < 1:
            raise LayerswarmError(f"repeats={self.repeats}: pass --repeats N with N >= 1")
        if not self.strategies:
            raise LayerswarmError(
                "no strategies given: pass --strategies full,linear,... (list: layerswarm strategies)"
            )
        if len(set(self.strategies)) != len(self.strategies):
            raise LayerswarmError(f"--strategies repeats a name ({','.join(self.strategies)}): give each once")
        stray = sorted(set(self.options) - set(self.strategies))
        if stray:
            raise LayerswarmError(
                f"options given for '{stray[0]}', which is not in --strategies: add it or drop the option"
            )
