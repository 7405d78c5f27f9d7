"""Fitness of a mask: validation accuracy after a short fine-tune from the pretrained weights."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .bundle import ModelBundle
from .data.imageset import SearchSplits
from .training import TrainConfig, fit
from .units import apply_mask

if TYPE_CHECKING:
    from .speed.prefix_cache import PrefixCache


@dataclass
class Evaluation:
    """The outcome of one fitness evaluation."""

    fitness: float
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    epochs_trained: int = 0
    error: str | None = None
    info: dict = field(default_factory=dict)  # how it was computed: memo hit, fidelity rung, early stop


class MaskFitness:
    """f(mask) = validation accuracy after ``cfg.epochs`` epochs (maxEpoch) with that mask.

    Holds only :class:`SearchSplits`: the test split cannot reach the search. ``cache`` (a
    :class:`~layerswarm.speed.prefix_cache.PrefixCache`) trains on cached activations of the
    frozen prefix instead of recomputing it: same fitness, less time.
    """

    def __init__(self, bundle: ModelBundle, data: SearchSplits, cfg: TrainConfig,
                 on_epoch: Callable[[dict], None] | None = None, cache: PrefixCache | None = None) -> None:
        self.bundle = bundle
        self.data = data
        # eager: compiling would recompile for every mask (guards on requires_grad) and never pay off
        self.cfg = cfg.replace(compile=False)
        self.on_epoch = on_epoch  # progress bars / TensorBoard; called after every epoch
        self.cache = cache

    def __call__(self, mask: list[int], epochs: int | None = None,
                 stop: Callable[[dict], bool] | None = None) -> Evaluation:
        start = time.perf_counter()
        cfg = self.cfg if epochs is None else self.cfg.replace(epochs=epochs)
        model = self.bundle.reset()
        frozen = apply_mask(model, self.bundle.units, mask)
        feed = self.cache.inputs(model, frozen, cfg) if self.cache is not None else nullcontext((None, frozen))
        with feed as (inputs, frozen):
            history = fit(model, self.data.train, self.data.val, cfg, self.bundle.transform, frozen=frozen,
                          on_epoch=self.on_epoch, inputs=inputs, stop=stop)
        return Evaluation(
            fitness=history.final_val_accuracy,
            epochs=history.epochs,
            seconds=time.perf_counter() - start,
            epochs_trained=len(history.epochs),
            info={"early_stopped": True} if len(history.epochs) < cfg.epochs else {},
        )
