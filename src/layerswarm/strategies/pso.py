"""The paper's method as a strategy: search a mask with PSO on train/val, then fine-tune with it.

The search is :func:`layerswarm.search.search_masks` with :class:`layerswarm.fitness.MaskFitness`
on the strategy's view of the data (train/val only). Its files (``evaluations.jsonl``,
``search_state.json``, ``best_mask.json``) go in the run folder (the parent of ``final/``), so
an interrupted search resumes from its last evaluation.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..config_utils import help_field
from ..errors import LayerswarmError
from ..io import read_json, read_jsonl
from .base import Strategy, StrategyConfig, StrategyContext, TrainPlan
from .registry import register_strategy


@dataclass
class PSOStrategyConfig(StrategyConfig):
    particles: int = help_field(10, "swarm size n (paper: 10)")
    generations: int = help_field(12, "generations G (paper: 12)")
    fitness_epochs: int = help_field(5, "maxEpoch: epochs of each fitness fine-tune (paper: 5)")
    searcher: str = help_field("pso", "searcher: pso, or random for the same budget of random masks")
    options: dict | None = help_field(None, "further searcher options, e.g. {\"c1\": 1.5, \"velocity_max\": 0.5}")


@register_strategy
class PSOMask(Strategy):
    """PSO layer mask (the paper): search on train/val, then fine-tune with the best mask."""

    name = "pso"
    Config = PSOStrategyConfig

    def searcher_options(self) -> dict:
        c = self.config
        if c.particles < 1 or c.generations < 1 or c.fitness_epochs < 1:
            raise LayerswarmError("pso: particles, generations and fitness_epochs must be >= 1")
        if c.searcher == "pso":
            return {"particles": c.particles, "generations": c.generations, **(c.options or {})}
        return {"trials": c.particles * c.generations, "batch_size": c.particles, **(c.options or {})}

    def plan(self, ctx: StrategyContext) -> TrainPlan:
        # Imported here: search.py imports this package (circular at module level).
        from ..executors import LocalExecutor
        from ..fitness import MaskFitness
        from ..search import BEST_MASK_FILE, EVALUATIONS_FILE, STATE_FILE, search_masks
        from ..searchers import create_searcher
        from ..units import save_mask

        units = ctx.bundle.units
        searcher = create_searcher(self.config.searcher, len(units), self.searcher_options(), seed=ctx.seed)
        fitness = MaskFitness(ctx.bundle, ctx.data, ctx.train_cfg.replace(epochs=self.config.fitness_epochs))
        tmp = None
        if ctx.out_dir is not None:
            out = Path(ctx.out_dir).parent
        else:
            tmp = tempfile.TemporaryDirectory(prefix="layerswarm-pso-")
            out = Path(tmp.name)
        try:
            out.mkdir(parents=True, exist_ok=True)
            if (out / STATE_FILE).is_file():
                searcher.load_state_dict(read_json(out / STATE_FILE))
            start = time.perf_counter()
            mask, best = search_masks(searcher, LocalExecutor(fitness), out)
            seconds = time.perf_counter() - start
            save_mask(out / BEST_MASK_FILE, mask, units, fitness=best, searcher=self.config.searcher,
                      history=searcher.history())
            evaluations = len(read_jsonl(out / EVALUATIONS_FILE))
        finally:
            if tmp is not None:
                tmp.cleanup()
        ctx.bundle.reset()  # the fitness fine-tunes trained the model: start the final one afresh
        plan = self.plan_mask(ctx.bundle.model, ctx, mask)
        plan.info["search"] = {"fitness": best, "seconds": seconds, "evaluations": evaluations}
        return plan
