"""The configuration of a run (:class:`RunConfig`, its :class:`SearchConfig`) and of a comparison
(:class:`CompareConfig`): the one source of their defaults.

The defaults are the measured ones, the ones ``layerswarm search`` and ``layerswarm compare`` run
with: the command line builds its options from these fields (help text and default), so
``RunConfig()`` in Python is the search that ``layerswarm search`` runs without options. The
paper's configuration exactly is a preset: ``RunConfig.from_preset("paper")`` here,
``layerswarm search --preset paper`` there (:mod:`layerswarm.run.presets`).

This module imports no torch or numpy: its parts' modules (``models.config``, ``data.config``,
``training.config``, ``speed.config``, ``run.search_config``) are free of them, and the command
line loads them without their packages (:mod:`layerswarm.cli._light`) before this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config_utils import JsonConfig, help_field, set_dotted
from ..data.config import DataConfig
from ..errors import LayerswarmError
from ..models.config import ModelConfig
from ..speed.config import SpeedConfig
from ..training.config import RECIPES, EvalConfig, TrainConfig
from .presets import preset_values
from .rundir import META_KEYS
from .search_config import SearchConfig

FINAL_EPOCHS = 110  # the paper's final fine-tune
DEFAULT_STRATEGIES = ("scratch", "linear", "full", "l2sp", "child-d", "random-mask", "pso")
EARLY_EPOCH = 5  # the paper also reports test accuracy after 5 epochs


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
        inside a part with ``replace``: ``cfg.replace(final=cfg.final.replace(epochs=30))``. The
        preset's keys may be of the earlier flat layout (``search.patience``): they are read at
        their place now (``search.method.patience``)."""
        values = {cls.current_key(k): v for k, v in preset_values(name).items()}
        settings = cls().to_dict()
        for part in ("fitness", "final"):  # the recipe first: the preset's own keys override it
            recipe = values.get(f"{part}.recipe")
            if recipe is not None:
                for key, value in RECIPES[recipe].items():
                    set_dotted(settings[part], key, value)
        for key, value in values.items():
            set_dotted(settings, key, value)
        settings["preset"] = name
        return cls.from_dict(settings).replace(**parts)


def _compare_train() -> TrainConfig:
    return TrainConfig(epochs=FINAL_EPOCHS, evaluation=EvalConfig(test_every=EARLY_EPOCH))


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
