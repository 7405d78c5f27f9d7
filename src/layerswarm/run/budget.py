"""The fitness budget in optimizer steps (``--fitness-steps``) as whole epochs of this dataset.

An epoch means something else on every dataset size (500 training images in batches of 64 are
8 steps, 5,000 are 79), so a budget can be given in steps. It is resolved once the data is
loaded, to ceil(steps / steps per epoch) epochs of the images a fitness evaluation trains on
(``--fitness-train-fraction`` included), so that the memo, the prefix cache and successive
halving keep working in epochs. ``config.json`` records both: ``search.fitness.steps`` and
the ``fitness.epochs`` it resolved to.
"""

from __future__ import annotations

import math
from typing import Any

from ..data.imageset import DatasetSplits
from ..errors import LayerswarmError
from ..speed.fidelity import subset_splits
from ..training.optim import steps_per_epoch


def fitness_steps_per_epoch(cfg: Any, data: DatasetSplits) -> int:
    """Optimizer steps in one fitness epoch of ``cfg`` (a RunConfig) on ``data``."""
    fraction = cfg.speed.fitness_train_fraction if cfg.speed is not None else 1.0
    train = subset_splits(data.for_search(), fraction, 1.0, cfg.fitness.seed).train
    return steps_per_epoch(len(train), cfg.fitness.optim.batch_size)


def resolve_fitness_steps(cfg: Any, data: DatasetSplits) -> Any:
    """``cfg`` with ``fitness.epochs`` = ceil(search.fitness.steps / steps per epoch); unchanged
    without a step budget."""
    steps = cfg.search.fitness.steps
    if steps is None:
        return cfg
    if steps < 1:
        raise LayerswarmError(f"fitness_steps={steps} must be at least 1 optimizer step")
    epochs = math.ceil(steps / fitness_steps_per_epoch(cfg, data))
    return cfg.replace(fitness=cfg.fitness.replace(epochs=epochs))
