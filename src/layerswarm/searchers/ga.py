"""A genetic search over unit genes with an evolved freezing threshold.

Genome: L unit genes g_j in [0, 1] plus a threshold gene tau in [threshold_min,
threshold_max]; unit j is fine-tuned when g_j > tau. Evolving tau (as evolutionary
fine-tuning work does) lets one mutation move many units across the line at once.

Generational GA: tournament selection, uniform crossover, Gaussian mutation clipped to the
gene ranges, and ``elite`` best individuals carried over unchanged. Masks are what cost, so
a mask already evaluated is never asked again: its individual gets the archived fitness.
Random draws happen in a fixed order (see :meth:`GASearcher._breed`), so a seed fixes the run.

In a level space (``--space lr``) a gene above tau encodes a level: (tau, 1] is cut into K - 1
equal parts for levels 1..K-1 (:meth:`~layerswarm.searchers.space.LevelSpace.level_of_position`),
so a mutation moves a unit up or down the ladder, or across the freezing line; with the mask
space's two levels this is the rule above, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerswarm.config_utils import JsonConfig, help_field, refuse_invalid
from layerswarm.searchers.base import Trial, batch_summary
from layerswarm.searchers.replay import ReplaySearcher, mask_bits

__all__ = ["GAConfig", "GASearcher"]

_MAX_IDLE_GENERATIONS = 5  # generations bred without one new mask before an immigrant comes in


@dataclass
class GAConfig(JsonConfig):
    """Budget and operators of the genetic search."""

    trials: int = help_field(120, "masks to evaluate (the budget)")
    population: int = help_field(10, "individuals per generation")
    elite: int = help_field(2, "best individuals carried over unchanged")
    tournament: int = help_field(3, "tournament size of parent selection")
    crossover: float = help_field(0.9, "probability of uniform crossover")
    mutation_rate: float = help_field(0.15, "per-gene mutation probability")
    mutation_sigma: float = help_field(0.3, "std of the Gaussian mutation")
    threshold_min: float = help_field(0.2, "lowest freezing threshold")
    threshold_max: float = help_field(0.8, "highest freezing threshold")

    def __post_init__(self) -> None:
        refuse_invalid(
            "GA config",
            {
                "trials must be >= 1": self.trials < 1,
                "population must be >= 2": self.population < 2,
                "elite must be in [0, population)": not 0 <= self.elite < self.population,
                "tournament must be >= 1": self.tournament < 1,
                "crossover and mutation_rate must be in [0, 1]": not (
                    0 <= self.crossover <= 1 and 0 <= self.mutation_rate <= 1
                ),
                "mutation_sigma must be >= 0": self.mutation_sigma < 0,
                "need 0 <= threshold_min <= threshold_max < 1": not 0 <= self.threshold_min <= self.threshold_max < 1,
            },
        )

    @classmethod
    def from_budget(cls, evaluations: int, batch_size: int | None = None) -> GAConfig:
        """``batch_size`` individuals per generation; by default up to 10, and at most half the
        budget, so that at least a second generation is bred from the first."""
        population = max(2, batch_size or min(10, evaluations // 2))
        return cls(trials=evaluations, population=population, elite=min(2, population - 1))


class GASearcher(ReplaySearcher):
    """One ``ask()`` is the not-yet-evaluated masks of one generation."""

    name = "ga"
    config_class = GAConfig

    def _reset(self) -> None:
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        self._pop = self._random_genomes(self.config.population)
        cfg = self.config
        tau = (cfg.threshold_min + cfg.threshold_max) / 2
        for i, (_, mask) in enumerate(getattr(self, "_initial", [])):  # --init baselines: the first individuals
            levels = self.space.levels_of_mask(mask)
            self._pop[i] = [self.space.position_of_level(lv, tau) for lv in levels] + [tau]
        self._pop_fit = np.full(self.config.population, np.nan)  # nan: not evaluated yet
        self._archive: dict[str, float] = {}
        self._generation = 0
        self._told_count = 0

    def place_initial_masks(self, masks: list[tuple[str, list[int]]]) -> list[tuple[str, list[int]]]:
        """The first individuals of the first generation carry ``masks`` (genes straddling a mid threshold)."""
        self._initial = masks[: self.config.population]
        self._reset()
        return masks[len(self._initial) :]

    # --- genomes ---

    def _random_genomes(self, n: int) -> np.ndarray:
        cfg = self.config
        genes = self._rng.random((n, self.num_units + 1))
        genes[:, -1] = cfg.threshold_min + (cfg.threshold_max - cfg.threshold_min) * genes[:, -1]
        return genes

    def _levels(self, genome: np.ndarray) -> list[int]:
        """The plan of a genome: each unit gene read against the threshold gene (a mask in the
        mask space)."""
        return self.space.levels_of_position(genome[:-1], float(genome[-1]))

    def _lookup(self) -> np.ndarray:
        return np.array([self._archive.get(mask_bits(self._levels(g)), np.nan) for g in self._pop])

    def _select(self, fit: np.ndarray) -> int:
        contenders = self._rng.integers(0, len(fit), self.config.tournament)
        return int(contenders[np.argmax(fit[contenders])])  # ties: the first drawn

    def _breed(self) -> None:
        """Next generation. Draws per child: 2 tournaments, crossover coin and gene choice,
        mutation coins, mutation noise, in that order."""
        cfg = self.config
        fit = np.where(np.isnan(self._pop_fit), -np.inf, self._pop_fit)
        order = np.argsort(-fit, kind="stable")
        children = [self._pop[i].copy() for i in order[: cfg.elite]]
        lo = np.zeros(self.num_units + 1)
        hi = np.ones(self.num_units + 1)
        lo[-1], hi[-1] = cfg.threshold_min, cfg.threshold_max
        while len(children) < cfg.population:
            a, b = self._pop[self._select(fit)], self._pop[self._select(fit)]
            cross = self._rng.random() < cfg.crossover
            pick = self._rng.random(self.num_units + 1) < 0.5
            child = np.where(pick, a, b) if cross else a.copy()
            mutate = self._rng.random(self.num_units + 1) < cfg.mutation_rate
            noise = self._rng.normal(0.0, cfg.mutation_sigma, self.num_units + 1)
            children.append(np.clip(np.where(mutate, child + noise, child), lo, hi))
        self._pop = np.array(children)
        self._pop_fit = self._lookup()

    # --- ask/tell ---

    def _new_batch(self, first_number: int) -> list[Trial]:
        remaining = self.config.trials - self._told_count
        for _ in range(_MAX_IDLE_GENERATIONS):
            if not np.isnan(self._pop_fit).any():
                self._breed()
                self._generation += 1
            trials = self._unknown(first_number, remaining)
            if trials:
                return trials
        # The population converged on known masks: random immigrants replace the worst.
        for _ in range(10 * min(self.space.size(self.num_units), 2**16)):
            genome = self._random_genomes(1)[0]
            if mask_bits(self._levels(genome)) not in self._archive:
                break
        fit = np.where(np.isnan(self._pop_fit), -np.inf, self._pop_fit)
        worst = int(np.argmin(fit))
        self._pop[worst], self._pop_fit[worst] = genome, np.nan
        return [self._trial(first_number, worst)]

    def _unknown(self, first_number: int, remaining: int) -> list[Trial]:
        trials: list[Trial] = []
        seen: set[str] = set()
        for i, genome in enumerate(self._pop):
            key = mask_bits(self._levels(genome))
            if np.isnan(self._pop_fit[i]) and key not in seen and len(trials) < remaining:
                seen.add(key)
                trials.append(self._trial(first_number + len(trials), i))
        return trials

    def _trial(self, number: int, i: int) -> Trial:
        genome = self._pop[i]
        info: dict[str, float | str] = {"threshold": float(genome[-1])}
        if self._generation == 0 and i < len(getattr(self, "_initial", [])):
            info["init"] = self._initial[i][0]
        return self._make_trial(
            self._levels(genome),
            number=number,
            generation=self._generation,
            index=i,
            position=[float(g) for g in genome[:-1]],
            info=info,
        )

    def _finish_batch(self, trials: list[Trial], fitnesses: list[float]) -> None:
        for trial, phi in zip(trials, fitnesses, strict=True):
            self._archive[mask_bits(trial.unit_levels)] = phi
            self._note_best(trial, phi)
        self._pop_fit = self._lookup()
        self._history.append(batch_summary(self._generation, fitnesses, self._best_fit))
        self._told_count += len(trials)

    def is_done(self) -> bool:
        spent = self._told_count >= self.config.trials
        return spent or len(self._archive) >= self.space.size(self.num_units)
