"""Frozen-prefix activation cache: run the frozen input-side layers once, not every epoch.

When the first units of a mask are frozen they keep their pretrained weights and run in eval
mode, so their output is a fixed function of their input. The cache stores that output and
trains only the rest of the network on it (the prefix modules are swapped for
``nn.Identity`` while training). Nothing changes numerically: the suffix receives the very
tensors the full model would have computed, batch for batch.

Augmentation. Random crops and flips are drawn on the *input*, so the prefix output of an
image depends on its draw; caching per (image, augmentation) would need every possible view
((2p+1)^2 x 2 = 578 per image at 64 px) and is useless. But a fitness evaluation draws its
order, crops and flips from a generator seeded with the run's seed
(:class:`~layerswarm.training.trainer.ImageBatches`), so every evaluation sees exactly the
same ``maxEpoch`` augmented batches. The cache stores the prefix output of those batches:
``maxEpoch`` views per image, the same ones the plain loop draws, so the cache is exact with
augmentation on (and trivially with it off). The price is memory: ``maxEpoch x N_train +
N_val`` activation maps per cached depth, bounded by ``cache_mb`` (least recently used
depths are dropped; a depth that does not fit falls back to a shallower one or to none).

Which modules form the prefix is found, not assumed: the modules the forward pass calls one
after another (``nn.Sequential`` containers expanded) in call order, each depth verified once
on a probe batch (full model == suffix(prefix(x))) before it is used. A model whose forward is
not such a chain (functional code between modules, e.g. ViT's position embedding after the
patch embedding) fails the check at that depth and is simply trained without the cache there.
A model that knows its own chain says so (``cache_stages``, ``run_stages``, ``skip_stages``:
the text classifier, whose layers need the attention mask its family prepares), and is
verified the same way.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data.imageset import SearchSplits
from ..models.modules import replace_module
from ..training.augment import BatchTransform
from ..training.config import TrainConfig
from ..training.trainer import ImageBatches, memory_format
from ..units.mask import train_mode

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]

# Modules whose output depends on train/eval mode even without parameters of their own.
_MODE_DEPENDENT: tuple[type, ...] = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase)
try:  # timm's stochastic depth
    from timm.layers import DropPath

    _MODE_DEPENDENT += (DropPath,)
except ImportError:  # pragma: no cover
    pass


def _candidates(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Children in registration order, ``nn.Sequential`` containers expanded."""
    out = []
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        out.extend(_candidates(child, f"{path}.") if type(child) is nn.Sequential else [(path, child)])
    return out


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Everything in eval mode, then each module's own mode back (``model.train()`` would
    also switch the frozen units back to training mode)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode


def module_chain(model: nn.Module, probe: torch.Tensor) -> list[str]:
    """Module paths in the order one forward pass first calls them, up to the first repeat."""
    calls: list[str] = []
    handles = [m.register_forward_pre_hook(lambda _m, _a, p=path: calls.append(p)) for path, m in _candidates(model)]
    try:
        with eval_mode(model):
            model(probe)
    finally:
        for h in handles:
            h.remove()
    chain: list[str] = []
    for path in calls:
        if path in chain:
            break
        chain.append(path)
    return chain


def is_frozen(module: nn.Module) -> bool:
    """No trainable parameter, and nothing whose output depends on being in training mode."""
    if any(p.requires_grad for p in module.parameters()):
        return False
    return all(
        not m.training or not (isinstance(m, _MODE_DEPENDENT) or next(m.buffers(False), None) is not None)
        for m in module.modules()
    )


@contextmanager
def without(model: nn.Module, paths: list[str]) -> Iterator[None]:
    """``model`` with the modules at ``paths`` replaced by ``nn.Identity`` (restored after)."""
    originals = [(p, model.get_submodule(p)) for p in paths]
    try:
        for p, _ in originals:
            replace_module(model, p, nn.Identity())
        yield
    finally:
        for p, m in originals:
            replace_module(model, p, m)


class ModuleChain:
    """A forward that calls single-tensor modules one after another: found by hooks, run by
    calling them, skipped by swapping them for ``nn.Identity``. Each stage is one module."""

    def __init__(self, model: nn.Module, probe: torch.Tensor) -> None:
        self.stages = [[path] for path in module_chain(model, probe)]

    def run(self, model: nn.Module, start: int, stop: int, x: torch.Tensor) -> torch.Tensor:
        """The output of stages ``start..stop-1`` on ``x`` (the output of stage ``start - 1``)."""
        for (path,) in self.stages[start:stop]:
            x = model.get_submodule(path)(x)
        return x

    def skipping(self, model: nn.Module, depth: int):
        """While open, ``model`` takes the output of its first ``depth`` stages as its input."""
        return without(model, [path for (path,) in self.stages[:depth]])


class OwnChain:
    """The chain a model declares itself (``cache_stages``, ``run_stages``, ``skip_stages``):
    stages of one or more modules, with the model's own way of running and skipping them."""

    def __init__(self, model: nn.Module) -> None:
        self.stages = model.cache_stages()

    def run(self, model: nn.Module, start: int, stop: int, x: torch.Tensor) -> torch.Tensor:
        return model.run_stages(start, stop, x)

    def skipping(self, model: nn.Module, depth: int):
        return model.skip_stages(depth)


@dataclass
class Level:
    """Prefix outputs after ``depth`` chain modules: per epoch the training batches in the
    order the plain loop draws them, and the validation batches."""

    depth: int
    train: list[list[Batch]] = field(default_factory=list)
    val: list[Batch] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(x.nbytes + y.nbytes for batches in [*self.train, self.val] for x, y in batches)


class CachedBatches:
    """Feeds :func:`~layerswarm.training.fit` the cached activations, epoch after epoch."""

    def __init__(self, level: Level) -> None:
        self.level, self.epoch = level, 0

    def train_epoch(self) -> Iterator[Batch]:
        batches = self.level.train[self.epoch]
        self.epoch += 1
        yield from batches

    def val_batches(self) -> Iterator[Batch]:
        yield from self.level.val

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]


class PrefixCache:
    """Cached prefix activations of one fitness setting (data, transform, seed, batch size)."""

    def __init__(self, data: SearchSplits, transform: BatchTransform, max_mb: int = 2048) -> None:
        self.data, self.transform, self.max_bytes = data, transform, max_mb * 2**20
        self.chain: ModuleChain | OwnChain | None = None
        self.levels: OrderedDict[int, Level] = OrderedDict()  # least recently used first
        self.verified: dict[int, bool] = {}
        self.too_big: set[int] = set()
        self.hits = 0

    def _probe(self, device: torch.device) -> torch.Tensor:
        return self.transform(self.data.val.inputs[:2].to(device), train=False)

    def frozen_depth(self, model: nn.Module) -> int:
        """Leading chain modules that are frozen under the current mask and modes."""
        if self.chain is None:
            self.chain = (
                OwnChain(model)
                if hasattr(model, "cache_stages")
                else ModuleChain(model, self._probe(next(model.parameters()).device))
            )
        depth = 0
        for stage in self.chain.stages:
            if not all(is_frozen(model.get_submodule(path)) for path in stage):
                break
            depth += 1
        return depth

    def _verify(self, model: nn.Module, depth: int) -> bool:
        """Full model == suffix(prefix(x)) on a probe batch, in eval mode (once per depth)."""
        if depth not in self.verified:
            x = self._probe(next(model.parameters()).device)
            with eval_mode(model):
                full, features = model(x), self.chain.run(model, 0, depth, x)
                try:
                    with self.chain.skipping(model, depth):
                        cut = model(features)
                except Exception:  # noqa: BLE001 - the suffix cannot run on its own: no cache here
                    cut = None
            self.verified[depth] = (
                cut is not None and full.shape == cut.shape and torch.allclose(full, cut, rtol=1e-4, atol=1e-5)
            )
            if not self.verified[depth]:
                log.info(
                    "prefix cache: the model is not a plain chain up to %s; training without the cache there",
                    self.chain.stages[depth - 1][-1],
                )
        return self.verified[depth]

    def _build(self, model: nn.Module, depth: int, cfg: TrainConfig) -> Level | None:
        """Level ``depth`` for ``cfg.epochs`` epochs, from the deepest usable shallower level."""
        device = next(model.parameters()).device
        source = next(
            (lv for d, lv in reversed(sorted(self.levels.items())) if d < depth and len(lv.train) >= cfg.epochs), None
        )
        start = source.depth if source else 0
        # Estimate the size from one probe image before spending the time.
        with torch.no_grad():
            per_image = self.chain.run(model, 0, depth, self._probe(device)[:1]).nbytes
        if per_image * (cfg.epochs * len(self.data.train) + len(self.data.val)) > self.max_bytes:
            self.too_big.add(depth)
            return None
        if source is None:
            raw = ImageBatches(self.data.train, self.data.val, self.transform, cfg, device)
            epochs = [list(raw.train_epoch()) for _ in range(cfg.epochs)]  # same draws, same order as fit()
            val = list(raw.val_batches())
        else:
            epochs, val = source.train[: cfg.epochs], source.val
        level = Level(depth)
        with torch.no_grad():
            level.train = [[(self.chain.run(model, start, depth, x), y) for x, y in batches] for batches in epochs]
            level.val = [(self.chain.run(model, start, depth, x), y) for x, y in val]
        while self.levels and sum(lv.nbytes for lv in self.levels.values()) + level.nbytes > self.max_bytes:
            self.levels.popitem(last=False)
        self.levels[depth] = level
        return level

    def _level(self, model: nn.Module, depth: int, cfg: TrainConfig) -> Level | None:
        """The deepest usable level at or above ``depth``: built if missing and it fits."""
        level = self.levels.get(depth)
        if level is not None and len(level.train) >= cfg.epochs:
            self.levels.move_to_end(depth)
            self.hits += 1
            return level
        if depth not in self.too_big and self._verify(model, depth):
            built = self._build(model, depth, cfg)
            if built is not None:
                return built
        return next(
            (lv for d, lv in reversed(sorted(self.levels.items())) if d < depth and len(lv.train) >= cfg.epochs), None
        )

    @contextmanager
    def inputs(
        self, model: nn.Module, frozen: list[str], cfg: TrainConfig
    ) -> Iterator[tuple[CachedBatches | None, list[str]]]:
        """``(inputs, frozen)`` for :func:`fit`: cached batches with the prefix swapped out of
        ``model`` (and its paths dropped from ``frozen``), or ``(None, frozen)`` without a cache."""
        model.to(memory_format=memory_format(cfg, next(model.parameters()).device))  # as fit() will run it
        train_mode(model, frozen)  # the modes fit() trains in decide what is frozen
        depth = self.frozen_depth(model)
        level = self._level(model, depth, cfg) if depth else None
        if level is None:
            yield None, frozen
            return
        cut = [path for stage in self.chain.stages[: level.depth] for path in stage]
        rest = [f for f in frozen if not any(f == p or f.startswith(f"{p}.") for p in cut)]
        with self.chain.skipping(model, level.depth):
            yield CachedBatches(level), rest
