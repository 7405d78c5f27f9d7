"""Search speed-ups: memoisation, the frozen-prefix activation cache (exact), and
multi-fidelity, early stopping and subset fitness (approximate). See docs/concepts/speed.md."""

from __future__ import annotations

from collections.abc import Callable

from ..data.imageset import SearchSplits
from ..fitness.evaluation import Evaluation, Executor
from ..fitness.mask_fitness import MaskFitness
from ..models.bundle import ModelBundle
from ..training import TrainConfig
from .config import FIDELITIES, SpeedConfig
from .fidelity import EarlyStopping, HalvingExecutor, subset_splits
from .memo import BudgetSpent, MemoExecutor
from .prefix_cache import PrefixCache

__all__ = [
    "FIDELITIES",
    "BudgetSpent",
    "EarlyStopping",
    "HalvingExecutor",
    "MemoExecutor",
    "PrefixCache",
    "SpeedConfig",
    "build_fitness",
    "wrap_executor",
]


def build_fitness(
    bundle: ModelBundle,
    data: SearchSplits,
    cfg: TrainConfig,
    speed: SpeedConfig | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    repeats: int = 1,
    seed_offset: int = 0,
    score: str = "accuracy",
) -> Callable[..., Evaluation]:
    """The fitness function ``evaluate(mask, epochs)`` with the evaluator-side speed-ups of
    ``speed`` (prefix cache, subset fitness, early stopping); ``None``: plain MaskFitness.
    ``repeats``, ``seed_offset``, ``score``: see :class:`MaskFitness`."""
    if speed is None:
        return MaskFitness(bundle, data, cfg, on_epoch=on_epoch, repeats=repeats, seed_offset=seed_offset, score=score)
    data = subset_splits(data, speed.fitness_train_fraction, speed.fitness_val_fraction, cfg.seed)
    if not speed.validates_every_epoch:
        cfg = cfg.replace(
            evaluation=cfg.evaluation.replace(val_every=cfg.epochs)
        )  # exact: validation does not change training
    # BatchNorm re-estimation runs the whole network on raw images: not with the prefix swapped out
    use_cache = speed.prefix_cache and speed.cache_mb and not cfg.evaluation.bn_recalibrate
    cache = PrefixCache(data, bundle.transform, speed.cache_mb) if use_cache else None
    pause_mb = speed.pause_mb if speed.fidelity == "halving" else 0
    evaluate = MaskFitness(
        bundle,
        data,
        cfg,
        on_epoch=on_epoch,
        cache=cache,
        pause_mb=pause_mb,
        repeats=repeats,
        seed_offset=seed_offset,
        score=score,
    )
    return EarlyStopping(evaluate, speed.early_stop, cfg.epochs) if speed.early_stop is not None else evaluate


def wrap_executor(
    executor: Executor, speed: SpeedConfig | None, fitness: TrainConfig, repeats: int = 1, score: str = "accuracy"
) -> Executor:
    """``executor`` with the batch-level speed-ups of ``speed``: memoisation, then halving.
    ``repeats``, ``score``: how the fitness the memo's results hold was computed."""
    if speed is None:
        return executor
    if speed.memo:
        executor = MemoExecutor(executor, fitness.epochs, truncatable=fitness.truncatable, repeats=repeats, score=score)
    if speed.fidelity == "halving":
        executor = HalvingExecutor(executor, speed.halving_epochs, speed.halving_keep)
    return executor
