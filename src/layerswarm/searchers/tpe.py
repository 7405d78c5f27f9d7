"""Tree-structured Parzen estimator search through optuna's ask/tell interface.

One categorical parameter ``u{j}`` in {0, 1} per unit (in a level space, {0, ..., K-1}: a
unit's level); optuna maximises the fitness. The
sampler is seeded, and :class:`ReplaySearcher` resumes by rebuilding the study from the seed
and replaying the told fitnesses, so a resumed search continues exactly (optuna's sampler
random state is not serialisable through its public API).

A mask already evaluated is not handed out again: optuna is told the archived fitness at
once and asked for another (up to ``max_repeats`` times; then the repeat is handed out,
so that a converged study still makes progress).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

from layerswarm.config_utils import JsonConfig, help_field
from layerswarm.errors import LayerswarmError
from layerswarm.searchers.base import Trial, batch_summary
from layerswarm.searchers.replay import ReplaySearcher, mask_bits

__all__ = ["TPEConfig", "TPESearcher"]


@dataclass
class TPEConfig(JsonConfig):
    """Budget and sampler options (optuna's TPESampler)."""

    trials: int = help_field(120, "masks to evaluate (the budget)")
    batch_size: int = help_field(1, "masks per ask(); > 1 uses optuna's constant liar")
    n_startup_trials: int = help_field(10, "random masks before TPE starts modelling")
    multivariate: bool = help_field(True, "model the units jointly (optuna multivariate TPE)")
    max_repeats: int = help_field(100, "known masks re-sampled in a row before one is re-asked")

    def __post_init__(self) -> None:
        if self.trials < 1 or self.batch_size < 1 or self.max_repeats < 1:
            raise LayerswarmError("invalid tpe config: trials, batch_size and max_repeats must be >= 1")
        if self.n_startup_trials < 0:
            raise LayerswarmError("invalid tpe config: n_startup_trials must be >= 0")

    @classmethod
    def from_budget(cls, evaluations: int, batch_size: int | None = None) -> TPEConfig:
        return cls(trials=evaluations)  # sequential: TPE learns most from one mask at a time


class TPESearcher(ReplaySearcher):
    """Optuna's TPESampler over one {0, 1} parameter per unit."""

    name = "tpe"
    config_class = TPEConfig

    def _reset(self) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        cfg = self.config
        with warnings.catch_warnings():  # multivariate and constant_liar are "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=self.seed,
                n_startup_trials=cfg.n_startup_trials,
                multivariate=cfg.multivariate,
                constant_liar=cfg.batch_size > 1,
            )
        self._study = optuna.create_study(direction="maximize", sampler=sampler)
        self._distributions = {
            f"u{j}": optuna.distributions.CategoricalDistribution(list(range(self.space.levels)))
            for j in range(self.num_units)
        }
        self._open: dict[int, Any] = {}  # our trial number -> optuna trial awaiting tell
        self._archive: dict[str, float] = {}
        self._told_count = 0

    def _sample(self) -> tuple[Any, list[int]]:
        trial = self._study.ask(self._distributions)
        return trial, [int(trial.params[f"u{j}"]) for j in range(self.num_units)]

    def _new_batch(self, first_number: int) -> list[Trial]:
        size = min(self.config.batch_size, self.config.trials - self._told_count)
        batch: list[Trial] = []
        asked: set[str] = set()
        while len(batch) < size:
            for attempt in range(self.config.max_repeats + 1):
                trial, mask = self._sample()
                key = mask_bits(mask)
                if attempt == self.config.max_repeats or (key not in self._archive and key not in asked):
                    break
                if key in self._archive:
                    self._study.tell(trial, _finite(self._archive[key]))
                else:  # a repeat inside this batch: its fitness is not known yet
                    self._study.tell(trial, state=_pruned())
            number = first_number + len(batch)
            self._open[number] = trial
            asked.add(key)
            batch.append(
                self._make_trial(
                    mask,
                    number=number,
                    generation=len(self._history),
                    index=len(batch),
                    info={"optuna_trial": trial.number},
                )
            )
        return batch

    def _finish_batch(self, trials: list[Trial], fitnesses: list[float]) -> None:
        for trial, phi in zip(trials, fitnesses, strict=True):
            self._study.tell(self._open.pop(trial.number), _finite(phi))
            self._archive[mask_bits(trial.unit_levels)] = phi
            self._note_best(trial, phi)
        self._history.append(batch_summary(len(self._history), fitnesses, self._best_fit))
        self._told_count += len(trials)

    def is_done(self) -> bool:
        spent = self._told_count >= self.config.trials
        return spent or len(self._archive) >= self.space.size(self.num_units)


def _finite(fitness: float) -> float:
    """Optuna refuses -inf: a failed evaluation is told as a very low finite value."""
    return fitness if math.isfinite(fitness) else -1e12


def _pruned() -> Any:
    import optuna

    return optuna.trial.TrialState.PRUNED
