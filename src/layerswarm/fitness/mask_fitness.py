"""Fitness of a mask: validation accuracy after a short fine-tune from the pretrained weights.

A mask is the simplest learning-rate plan: each unit's multiplier of the run's learning rate, 0
frozen, 1 trained at that rate. :class:`MaskFitness` takes any plan (``--space lr`` hands it
multipliers such as 0.3 or 3: :class:`LevelFitness` reads them off the ladder); a frozen unit is
frozen exactly as in a mask, the others train in parameter groups at ``lr x multiplier``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from ..data.imageset import SearchSplits
from ..models.bundle import ModelBundle
from ..training import TrainConfig, fit
from ..training.linear_head import LinearHead, fit_linear_head
from ..training.optim import plan_param_groups
from ..training.trainer import TrainState
from ..units import apply_mask, frozen_modules, validate_lr_multipliers
from .evaluation import Evaluation, curve_score, middle_epoch
from .noise import repeats_se

# Evaluation lives in layerswarm.fitness.evaluation
__all__ = ["Evaluation", "LevelFitness", "MaskFitness"]

REPEAT_SEED_STRIDE = 1000  # repeat j of an evaluation: head and batch-order seeds + 1000 j


def mean(values) -> float:
    values = list(values)
    return math.fsum(values) / len(values)


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """Epoch by epoch, the mean of each number every run has (None where one lacks it)."""
    out = []
    for rows in zip(*curves, strict=False):  # an early-stopped run ends the common curve
        keys = [k for k in rows[0] if k != "val_se"]
        out.append(
            {
                k: mean(r[k] for r in rows) if all(isinstance(r.get(k), (int, float)) for r in rows) else None
                for k in keys
            }
        )
    return out


class MaskFitness:
    """f(mask) = validation accuracy after ``cfg.epochs`` epochs (maxEpoch) with that mask (or
    learning-rate plan: a multiplier per unit, see the module doc);
    ``score`` 'trend': that plus its rise since epoch E // 2 (:func:`~layerswarm.fitness.evaluation.curve_score`).

    Holds only :class:`SearchSplits`: the test split cannot reach the search. ``cache`` (a
    :class:`~layerswarm.speed.prefix_cache.PrefixCache`; not imported here, as the speed-ups
    build on this module) trains on cached activations of the frozen prefix instead of
    recomputing it: same fitness, less time.

    ``repeats`` R > 1: the fitness is the mean of R evaluations whose head and batch order come
    from other seeds (repeat j: seeds + 1000 j; ``seed_offset`` shifts j, so that a final
    selection draws fresh ones); every evaluation carries ``fitness_se`` (:mod:`layerswarm.fitness.noise`).

    Paused runs (``pause_mb`` > 0, a length-independent lr schedule): an evaluation asked for
    fewer epochs than ``cfg.epochs`` (a low rung of successive halving) keeps its end state in
    host memory; asked for the same mask with more epochs later, it continues from there
    instead of from the pretrained weights. The result is the one a run from scratch gives.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        data: SearchSplits,
        cfg: TrainConfig,
        on_epoch: Callable[[dict], None] | None = None,
        cache: Any = None,
        pause_mb: int = 0,
        repeats: int = 1,
        seed_offset: int = 0,
        score: str = "accuracy",
    ) -> None:
        self.bundle = bundle
        self.score = score
        self.data = data
        # eager: compiling would recompile for every mask (guards on requires_grad) and never pay off
        self.cfg = cfg.replace(runtime=cfg.runtime.replace(compile=False))
        self.on_epoch = on_epoch  # progress bars / TensorBoard; called after every epoch
        self.cache = cache
        # repeats j = seed_offset .. seed_offset + repeats - 1 (repeat 0 is the plain evaluation)
        self.repeats, self.seed_offset = repeats, seed_offset
        plain = repeats == 1 and seed_offset == 0  # only a plain evaluation is paused and continued
        self.pause_bytes = pause_mb * 2**20 if self.cfg.truncatable and plain else 0
        # head_init "warm": the head fitted for each mask's frozen units, fitted at its first evaluation
        self.warm_heads: dict[tuple[int, ...], LinearHead] = {}
        # plan -> (weights, training state) of a paused low-budget run; least recently used first
        self.paused: OrderedDict[tuple[float, ...], tuple[dict, TrainState]] = OrderedDict()

    def __call__(
        self, mask: list[float], epochs: int | None = None, stop: Callable[[dict], bool] | None = None
    ) -> Evaluation:
        """The mean validation accuracy over the repeats, with its standard error (layerswarm.fitness.noise)."""
        start = time.perf_counter()
        cfg = self.cfg if epochs is None else self.cfg.replace(epochs=epochs)
        runs = [self._run(mask, cfg, j, stop) for j in range(self.seed_offset, self.seed_offset + self.repeats)]
        if len(runs) == 1:
            ev = runs[0]
        else:
            ev = Evaluation(
                fitness=mean(r.fitness for r in runs),
                epochs=mean_curve([r.epochs for r in runs]),
                epochs_trained=sum(r.epochs_trained for r in runs),
                info={**runs[0].info, "repeats": [r.fitness for r in runs]},
            )
        n = ev.val_images = len(self.data.val)
        scored = curve_score(ev.epochs, self.score, n) if self.score != "accuracy" else None
        image_se = scored[1] if scored is not None else None  # an early-stopped curve may lack its middle epoch
        ev.fitness_se = repeats_se([r.fitness for r in runs], n, image_se)
        if len(runs) > 1:  # each epoch's se over the repeats, for a shorter budget answered from this curve
            for i, e in enumerate(ev.epochs):
                if e.get("val_accuracy") is not None:
                    e["val_se"] = repeats_se([r.epochs[i]["val_accuracy"] for r in runs], n)
        ev.seconds = time.perf_counter() - start
        return ev

    def _run(self, plan: list[float], cfg: TrainConfig, repeat: int, stop: Callable[[dict], bool] | None) -> Evaluation:
        """One evaluation of ``plan`` (a mask, or a multiplier per unit); repeat j > 0 draws its
        head and batch order from seeds shifted by 1000 j."""
        if repeat:
            cfg = cfg.replace(seed=cfg.seed + REPEAT_SEED_STRIDE * repeat)
        middle = middle_epoch(cfg.epochs) if self.score == "trend" else 0
        if (
            middle and middle % cfg.evaluation.val_every
        ):  # the score needs the middle epoch validated (validating trains nothing)
            cfg = cfg.replace(evaluation=cfg.evaluation.replace(val_every=math.gcd(middle, cfg.evaluation.val_every)))
        units = self.bundle.units
        plan = validate_lr_multipliers(plan, len(units), source="the plan")
        model = self.bundle.reset(self.bundle.seed + REPEAT_SEED_STRIDE * repeat if repeat else None)
        mask = [int(m > 0) for m in plan]
        if cfg.optim.head_init == "warm":
            self._warm_head(model, mask).load_into(model)
        frozen = apply_mask(model, units, mask)
        key = tuple(plan)
        state = self._resume(model, key, cfg.epochs)
        done = state.epoch
        feed = self.cache.inputs(model, frozen, cfg) if self.cache is not None else nullcontext((None, frozen))
        with feed as (inputs, frozen):
            # a mask's: one group, every trainable parameter at lr
            groups = plan_param_groups(model, units, plan, cfg.optim.lr)
            history = fit(
                model,
                self.data.train,
                self.data.val,
                cfg,
                self.bundle.transform,
                frozen=frozen,
                head=self.bundle.info.head,
                param_groups=groups,
                on_epoch=self.on_epoch,
                inputs=inputs,
                stop=stop,
                state=state,
            )
        stopped = len(history.epochs) < cfg.epochs
        info: dict[str, bool | int] = {"early_stopped": True} if stopped else {}
        if done:
            info["continued_from"] = done
        if len(history.epochs) == cfg.epochs < self.cfg.epochs:  # a low rung: a later one may continue it
            self._pause(model, key, state)
        scored = curve_score(history.epochs, self.score) if len(history.epochs) == cfg.epochs else None
        fitness = history.final_val_accuracy if scored is None else scored[0]  # an early-stopped run: its last value
        return Evaluation(fitness=fitness, epochs=history.epochs, epochs_trained=len(history.epochs) - done, info=info)

    def _warm_head(self, model, mask: list[int]) -> LinearHead:
        """The head fitted on the pretrained features as ``mask``'s fine-tune computes them (its
        frozen units' BatchNorm layers on the source's statistics, the others on the target's),
        once per mask: the plans of one mask at other rates start from the same head."""
        key = tuple(mask)
        if key not in self.warm_heads:
            self.warm_heads[key] = fit_linear_head(
                model,
                self.bundle.info.head,
                self.data.train,
                self.data.val,
                self.bundle.transform,
                self.cfg.evaluation.eval_batch_size,
                frozen=frozen_modules(self.bundle.units, mask),
            )
        return self.warm_heads[key]

    def _resume(self, model, mask: tuple[float, ...], epochs: int) -> TrainState:
        """The paused state of ``mask`` (weights loaded into ``model``) if it has fewer than
        ``epochs`` epochs, else a fresh one."""
        paused = self.paused.get(mask)
        if paused is None or paused[1].epoch >= epochs:
            return TrainState()
        weights, state = self.paused.pop(mask)  # continuing moves it on: it is not paused there any more
        model.load_state_dict(weights, strict=False)  # the rest is pretrained, as reset() left it
        return state  # fit loads the optimizer state onto the model's device

    def _pause(self, model, mask: tuple[float, ...], state: TrainState) -> None:
        if not self.pause_bytes:
            return
        # only what training can change: trainable parameters and the buffers of modules in training mode
        changed = {
            f"{name}.{k}" if name else k
            for name, m in model.named_modules()
            if m.training
            for k, _ in m.named_buffers(recurse=False)
        }
        changed |= {n for n, p in model.named_parameters() if p.requires_grad}
        weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items() if k in changed}
        entry = (weights, state.to("cpu"))

        def nbytes(e: tuple[dict, TrainState]) -> int:
            return sum(t.nbytes for t in e[0].values()) + e[1].nbytes

        while self.paused and sum(map(nbytes, self.paused.values())) + nbytes(entry) > self.pause_bytes:
            self.paused.popitem(last=False)  # least recently paused first
        if nbytes(entry) <= self.pause_bytes:
            self.paused[mask] = entry


class LevelFitness:
    """``evaluate(levels, epochs)`` of a level space: each unit's level read off ``ladder`` as
    its learning-rate multiplier, then scored by ``evaluate`` (a :class:`MaskFitness`, possibly
    wrapped)."""

    def __init__(self, evaluate: Callable[..., Evaluation], ladder: tuple[float, ...]) -> None:
        self.evaluate, self.ladder = evaluate, tuple(ladder)

    def __call__(self, levels: list[int], epochs: int | None = None) -> Evaluation:
        return self.evaluate([self.ladder[level] for level in levels], epochs)
