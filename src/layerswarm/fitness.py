"""Fitness of a mask: validation accuracy after a short fine-tune from the pretrained weights."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .bundle import ModelBundle
from .data.imageset import SearchSplits
from .training import TrainConfig, fit
from .units import apply_mask


@dataclass
class Evaluation:
    """The outcome of one fitness evaluation."""

    fitness: float
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    epochs_trained: int = 0
    error: str | None = None


class MaskFitness:
    """f(mask) = validation accuracy after ``cfg.epochs`` epochs (maxEpoch) with that mask.

    Holds only :class:`SearchSplits`: the test split cannot reach the search.
    """

    def __init__(self, bundle: ModelBundle, data: SearchSplits, cfg: TrainConfig) -> None:
        self.bundle = bundle
        self.data = data
        self.cfg = cfg

    def __call__(self, mask: list[int], epochs: int | None = None) -> Evaluation:
        start = time.perf_counter()
        cfg = self.cfg if epochs is None else self.cfg.replace(epochs=epochs)
        model = self.bundle.reset()
        frozen = apply_mask(model, self.bundle.units, mask)
        history = fit(model, self.data.train, self.data.val, cfg, self.bundle.transform, frozen=frozen)
        return Evaluation(
            fitness=history.final_val_accuracy,
            epochs=history.epochs,
            seconds=time.perf_counter() - start,
            epochs_trained=cfg.epochs,
        )
