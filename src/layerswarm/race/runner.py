"""Racing searchers: each one, configured from the same budget, until done or out of budget."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..config_utils import JsonConfig, help_field
from ..errors import LayerswarmError
from ..fitness.evaluation import Evaluation, Executor
from ..run.driver import drive
from ..searchers import Trial, config_for_budget, create_searcher
from ..speed.memo import BudgetSpent, MemoExecutor


@dataclass
class RaceConfig(JsonConfig):
    """What races: the searchers, the budget in fitness evaluations, the seeds."""

    searchers: list = help_field(
        None, "searchers to race", default_factory=lambda: ["pso", "random", "tpe", "ga", "greedy", "exhaustive"]
    )
    budget: int = help_field(120, "fitness evaluations per searcher run (PSO's n x G = 120)")
    fitness_epochs: int = help_field(1, "epochs of one fitness evaluation (the budget unit)")
    batch_size: int = help_field(10, "masks per ask where a searcher batches (PSO's swarm size)")
    seeds: int = help_field(20, "runs per searcher, seeds 0..seeds-1")
    reference: str = help_field("pso", "the searcher whose best fitness the others must reach")
    frozen_units: list = help_field(
        None, "units pinned to frozen and not searched (race a sub-space)", default_factory=list
    )


@dataclass
class RaceRun:
    """One searcher run: its best-so-far after every paid evaluation."""

    searcher: str
    seed: int
    trace: list = field(default_factory=list)  # [[epochs spent, best fitness so far], ...]
    best_mask: list = field(default_factory=list)
    best_fitness: float = -math.inf
    spent: int = 0  # fitness-epochs paid (new masks only)
    asked: int = 0  # masks told, repeats included

    def best_at(self, epochs: float) -> float:
        """Best fitness after at most ``epochs`` fitness-epochs (-inf before the first)."""
        best = -math.inf
        for spent, value in self.trace:
            if spent > epochs:
                break
            best = value
        return best

    def epochs_to_reach(self, target: float) -> float:
        """Fitness-epochs spent when the best first reached ``target`` (inf: never)."""
        for spent, value in self.trace:
            if value >= target:
                return float(spent)
        return math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "searcher": self.searcher,
            "seed": self.seed,
            "trace": self.trace,
            "best_mask": self.best_mask,
            "best_fitness": self.best_fitness,
            "spent": self.spent,
            "asked": self.asked,
        }


def searcher_config(name: str, budget: int, batch_size: int | None = None) -> dict[str, Any]:
    """The options ``layerswarm search --searcher NAME --budget B`` uses (see searchers)."""
    return config_for_budget(name, budget, batch_size)


def parse_entry(entry: str) -> tuple[str, dict[str, Any]]:
    """``"greedy:start=random/kick=3"`` -> ``("greedy", {"start": "random", "kick": 3})``:
    a searcher raced with options on top of its budget config (values read as JSON if they can be)."""
    name, _, rest = entry.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split("/")):
        key, eq, value = item.partition("=")
        if not eq:
            raise LayerswarmError(f"race entry {entry!r}: write options as NAME:key=value/key=value")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value.strip()
    return name.strip(), options


def race_once(
    name: str,
    num_units: int,
    fitness: Callable[[list[int]], float],
    budget: int,
    seed: int,
    fitness_epochs: int = 1,
    batch_size: int | None = 10,
) -> RaceRun:
    """Run searcher ``name`` (configured from ``budget``) until done or the budget is spent:
    the search driver's loop over the memo, which charges new masks only."""
    base, options = parse_entry(name)
    config = {**searcher_config(base, budget, batch_size), **options}
    searcher = create_searcher(base, num_units, config, seed=seed)
    memo = MemoExecutor(_FitnessExecutor(fitness), fitness_epochs, budget_epochs=budget * fitness_epochs)
    run = RaceRun(name, seed)

    def told(trial: Trial, ev: Evaluation) -> None:
        run.asked += 1
        if ev.info.get("memo"):
            return  # a repeated mask: free
        run.spent += fitness_epochs
        if ev.fitness > run.best_fitness:
            run.best_fitness, run.best_mask = ev.fitness, [int(b) for b in trial.mask]
        run.trace.append([run.spent, run.best_fitness])

    try:
        drive(searcher, memo, on_result=told)
    except BudgetSpent:
        pass  # the next new mask would exceed the budget: the run ends here
    return run


class _FitnessExecutor(Executor):
    """Evaluate with a plain ``fitness(mask) -> float`` (a table lookup); errors propagate."""

    name = "function"

    def __init__(self, fitness: Callable[[list[int]], float]) -> None:
        self.fitness = fitness

    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, Evaluation]]:
        for trial in trials:
            yield trial, Evaluation(fitness=float(self.fitness(list(trial.mask))))


def run_race(
    cfg: RaceConfig,
    num_units: int,
    fitness: Callable[[list[int]], float],
    on_run: Callable[[RaceRun], None] | None = None,
) -> list[RaceRun]:
    """Every searcher of ``cfg`` on ``fitness`` with seeds ``0..cfg.seeds-1``."""
    runs = []
    for name in cfg.searchers:
        for seed in range(cfg.seeds):
            run = race_once(name, num_units, fitness, cfg.budget, seed, cfg.fitness_epochs, cfg.batch_size)
            runs.append(run)
            if on_run is not None:
                on_run(run)
    return runs
