"""The paper's method as a strategy: search a mask on train/val, then fine-tune with it.

The search is the one ``layerswarm search`` runs (:mod:`layerswarm.run.driver`): any searcher
(``searcher=ga`` spends the same ``particles x generations`` budget), memoisation and the
prefix cache, on the strategy's view of the data (train/val only). Its files
(``evaluations.jsonl``, ``search_state.json``, ``best_mask.json``) go in the run folder (the
parent of ``final/``), so an interrupted search resumes from its last evaluation.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..config_utils import help_field
from ..errors import LayerswarmError
from ..io import read_jsonl
from ..run.driver import (
    EVALUATIONS_FILE,
    load_searcher_state,
    make_executor,
    run_searcher,
)
from ..run.search_config import SearchConfig, SearcherConfig
from ..searchers import config_for_budget, create_searcher
from ..speed import SpeedConfig
from ..training import TrainConfig
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .registry import register_strategy


@dataclass
class PSOStrategyConfig(StrategyConfig):
    particles: int = help_field(10, "swarm size n (paper: 10); other searchers: masks per batch")
    generations: int = help_field(12, "generations G (paper: 12); other searchers spend n x G evaluations")
    fitness_epochs: int = help_field(5, "maxEpoch: epochs of each fitness fine-tune (paper: 5)")
    searcher: str = help_field(
        "pso", "searcher: pso, random, ga, greedy, tpe, exhaustive (layerswarm search --searcher)"
    )
    options: dict | None = help_field(None, 'further searcher options, e.g. {"c1": 1.5, "velocity_max": 0.5}')
    init: str = help_field(
        "random",
        "first masks: random (the paper's, and layerswarm search's "
        "default) or baselines (linear, full and last-k among the first asked)",
    )


@dataclass
class _Search:
    """What :func:`layerswarm.run.driver.make_executor` reads: local, exact speed-ups."""

    fitness: TrainConfig
    seed: int
    search: SearchConfig
    speed: SpeedConfig
    model: None = None  # the local backend evaluates on the strategy's bundle


@register_strategy
class PSOMask(Strategy):
    """PSO layer mask (the paper): search on train/val, then fine-tune with the best mask."""

    name = "pso"
    Config = PSOStrategyConfig

    def searcher_options(self) -> dict:
        c = self.config
        if c.particles < 1 or c.generations < 1 or c.fitness_epochs < 1:
            raise LayerswarmError("pso: particles, generations and fitness_epochs must be >= 1")
        return {**config_for_budget(c.searcher, c.particles * c.generations, c.particles), **(c.options or {})}

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        units = ctx.bundle.units
        search = SearchConfig(method=SearcherConfig(name=self.config.searcher, options=self.searcher_options()))
        searcher = create_searcher(
            search.method.name, len(units), search.method.options, seed=ctx.seed, init=self.config.init
        )
        fitness = ctx.train_cfg.replace(epochs=self.config.fitness_epochs)
        tmp = None
        if ctx.out_dir is not None:
            out = Path(ctx.out_dir).parent
        else:
            tmp = tempfile.TemporaryDirectory(prefix="layerswarm-pso-")
            out = Path(tmp.name)
        try:
            out.mkdir(parents=True, exist_ok=True)
            load_searcher_state(searcher, out)
            start = time.perf_counter()
            executor = make_executor(_Search(fitness, ctx.seed, search, SpeedConfig()), ctx.bundle, ctx.data)
            mask, best = run_searcher(searcher, executor, out, units)
            seconds = time.perf_counter() - start
            evaluations = len(read_jsonl(out / EVALUATIONS_FILE))
        finally:
            if tmp is not None:
                tmp.cleanup()
        ctx.bundle.reset()  # the fitness fine-tunes trained the model: start the final one afresh
        plan = self.plan_mask(ctx.bundle.model, ctx, mask)
        plan.info["search"] = {"fitness": best, "seconds": seconds, "evaluations": evaluations}
        return plan
