"""The one training loop: every fitness evaluation and every final fine-tune runs here."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..data.imageset import ImageSet
from ..errors import LayerswarmError
from ..run.failpoints import nan_loss_step
from ..units.mask import train_mode
from .augment import BatchTransform
from .config import TrainConfig
from .hooks import TrainHooks
from .optim import (
    make_optimizer,
    make_scheduler,
    recalibrate_frozen_bn,
    recipe_param_groups,
    steps_per_epoch,
    trainable_param_groups,  # noqa: F401  (strategies import it from here)
)


class NonFiniteLossError(RuntimeError):
    """Training diverged (NaN or inf loss)."""


@dataclass
class History:
    """Per-epoch metrics of one training run."""

    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_seen: int = 0

    @property
    def final_val_accuracy(self) -> float:
        return self.epochs[-1]["val_accuracy"] if self.epochs else float("nan")

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "seconds": self.seconds, "images_seen": self.images_seen}


@dataclass
class TrainState:
    """Where a paused :func:`fit` stands, beyond the model's weights (the caller keeps those):
    continuing from it trains exactly as the uninterrupted run would have (tests/test_speed.py).
    Tensors may sit on any device: ``fit`` loads them onto the model's."""

    optimizer: dict | None = None
    scheduler: dict | None = None
    inputs: dict | None = None  # the batch source's position: epoch and generator
    rng: list[torch.Tensor] = field(default_factory=list)  # torch's CPU (and CUDA) generators: dropout
    history: list[dict] = field(default_factory=list)  # one record per epoch done
    # keep_best's best validated epoch so far: {"val_accuracy", "epoch", "model": state dict}
    best: dict | None = None

    @property
    def epoch(self) -> int:
        """Epochs done."""
        return len(self.history)

    def to(self, device: str | torch.device) -> TrainState:
        """A copy with the optimizer's tensors on ``device`` (paused states wait in host memory);
        generator states are CPU tensors wherever the run is."""
        move = lambda obj: _map_tensors(obj, lambda t: t.detach().to(device, copy=True))  # noqa: E731
        return TrainState(
            move(self.optimizer),
            copy.deepcopy(self.scheduler),
            copy.deepcopy(self.inputs),
            [r.clone() for r in self.rng],
            copy.deepcopy(self.history),
            move(self.best),
        )

    @property
    def nbytes(self) -> int:
        tensors: list[torch.Tensor] = []
        _map_tensors([self.optimizer, self.inputs, self.best], tensors.append)
        return sum(t.nbytes for t in tensors)


class EpochCheckpoint(Protocol):
    """What :func:`fit` needs of a checkpoint (``layerswarm.run.checkpoint.Checkpoint`` keeps one
    in a file): the state to continue from, and each finished epoch's state to keep."""

    def restore(self, model: nn.Module) -> TrainState | None:
        """The saved state, its weights loaded into ``model``; None: nothing saved, start afresh."""

    def on_epoch_end(self, model: nn.Module, state: TrainState) -> None:
        """Keep ``model`` and ``state`` after a finished epoch. ``state`` holds the optimizer's own
        tensors and the live history: save or copy them now, training goes on with them."""


def _map_tensors(obj, fn):
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def _rng_states(device: torch.device) -> list[torch.Tensor]:
    return [torch.get_rng_state()] + ([torch.cuda.get_rng_state(device)] if device.type == "cuda" else [])


def _set_rng_states(states: list[torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(states[0])
    if device.type == "cuda" and len(states) > 1:
        torch.cuda.set_rng_state(states[1], device)


def resolve_device(name: str) -> torch.device:
    """``torch.device`` for ``name`` (``auto``: CUDA, then MPS, then CPU), or a one-line error
    if it is not available here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise LayerswarmError(f"unknown device '{name}': use cpu, cuda, cuda:N or mps") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LayerswarmError(f"device '{name}' is not available (no CUDA GPU found): use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LayerswarmError(
                f"device '{name}' is not available ({torch.cuda.device_count()} GPUs): use "
                f"cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise LayerswarmError(f"device '{name}' is not available (no MPS): use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise LayerswarmError(f"unsupported device '{name}': use cpu, cuda, cuda:N or mps")
    return device


class ImageBatches:
    """Where :func:`fit` gets its batches: uint8 images held in memory, shuffled, augmented and
    normalised on the device (no per-epoch decode, no DataLoader workers); token ids of texts
    the same way, passed through unchanged.

    One seeded generator draws the epoch order and then each batch's crops and flips, so with
    the same seed every run sees the same sequence of batches. The frozen-prefix activation
    cache (``layerswarm.speed.prefix_cache``) relies on exactly that.
    """

    def __init__(
        self, train: ImageSet, val: ImageSet, transform: BatchTransform, cfg: TrainConfig, device: torch.device
    ) -> None:
        self.train, self.val, self.transform, self.cfg = train.to(device), val, transform, cfg
        self.device = device
        self.generator = torch.Generator(device=device.type if device.type != "mps" else "cpu").manual_seed(cfg.seed)
        self.memory_format = memory_format(cfg, device)
        self.epoch = 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Continue at ``state``'s epoch; without a generator state (a cached run paused it),
        replay the draws of the epochs before it."""
        if "generator" in state:
            self.generator.set_state(state["generator"])
            self.epoch = state["epoch"]
        else:
            while self.epoch < state["epoch"]:
                for _ in self.train_epoch():
                    pass

    def train_epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(inputs, labels)`` of one shuffled, augmented epoch."""
        n, bs = len(self.train), self.cfg.optim.batch_size
        self.epoch += 1
        order = torch.randperm(n, generator=self.generator, device=self.device)
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            if len(idx) < 2 and n >= 2:
                continue  # a batch of one breaks BatchNorm in training mode
            x = self.transform(self.train.inputs[idx], train=True, generator=self.generator)
            yield formatted(x, self.memory_format), self.train.labels[idx]

    def val_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return eval_batches(
            self.val, self.transform, self.cfg.evaluation.eval_batch_size, self.device, self.memory_format
        )


def formatted(x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    """``x`` in memory format ``fmt`` where it has one (images; token ids are 2-d)."""
    return x.contiguous(memory_format=fmt) if x.ndim == 4 else x


def memory_format(cfg: TrainConfig, device: torch.device) -> torch.memory_format:
    return (
        torch.channels_last if cfg.runtime.channels_last and device.type in ("cuda", "cpu") else torch.contiguous_format
    )


def eval_batches(
    data: ImageSet,
    transform: BatchTransform,
    batch_size: int,
    device: torch.device,
    fmt: torch.memory_format = torch.contiguous_format,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(inputs, labels)`` of ``data`` in order, without augmentation."""
    for start in range(0, len(data), batch_size):
        images = data.inputs[start : start + batch_size].to(device, non_blocking=True)
        labels = data.labels[start : start + batch_size].to(device, non_blocking=True)
        yield formatted(transform(images, train=False), fmt), labels


def accuracy(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Top-1 accuracy over ``batches`` in eval mode (restores the previous mode).

    ``inference_mode`` runs the same kernels as ``no_grad`` (identical results) with less
    autograd bookkeeping: about 1.3x faster evaluation on a CPU here.
    """
    was_training = model.training
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in batches:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    model.train(was_training)
    return correct / max(total, 1)


def evaluate(model: nn.Module, data: ImageSet, transform: BatchTransform, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``data`` (eval mode; restores the previous mode)."""
    weight = next((p for p in model.parameters() if p.ndim == 4), None)
    channels_last = (
        weight is not None and not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)
    )  # feed the memory format the model was trained in
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return accuracy(model, eval_batches(data, transform, batch_size, next(model.parameters()).device, fmt))


def fit(
    model: nn.Module,
    train: ImageSet,
    val: ImageSet,
    cfg: TrainConfig,
    transform: BatchTransform,
    frozen: list[str] | None = None,
    param_groups: list[dict] | None = None,
    test: ImageSet | None = None,
    hooks: TrainHooks | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    inputs: ImageBatches | None = None,
    stop: Callable[[dict], bool] | None = None,
    state: TrainState | None = None,
    head: list[str] | None = None,
    checkpoint: EpochCheckpoint | None = None,
) -> History:
    """Train ``model`` in place for ``cfg.epochs`` epochs and return per-epoch metrics.

    Only parameters with ``requires_grad`` are optimised (``param_groups`` may set per-group
    learning rates); modules in ``frozen`` stay in eval mode, and autograd never runs a
    backward pass through a frozen prefix (nothing before the first trainable parameter
    requires grad). ``test`` is evaluated only when given, which the search never does.
    ``inputs`` replaces the default :class:`ImageBatches` (the frozen-prefix cache feeds
    cached activations to a model whose prefix it removed); ``stop(record)`` returning True
    ends training after that epoch (early stopping of a fitness evaluation). ``state``: continue
    a paused run of this model, mask and config from it (its weights already loaded into
    ``model``), and leave it where this run ends, so that the caller can pause again.
    ``checkpoint``: continue from its saved state, if any (instead of ``state``), and hand it the
    state after every epoch, so that a run stopped at any point resumes to the same result.
    """
    if checkpoint is not None:
        if state is not None:
            raise TypeError("fit takes a state or a checkpoint to continue from, not both")
        state = checkpoint.restore(model)
    frozen = list(frozen or [])
    hooks = hooks or TrainHooks()
    device = next(model.parameters()).device
    groups = param_groups if param_groups is not None else trainable_param_groups(model)
    optimizer = make_optimizer(recipe_param_groups(groups, model, head or [], cfg), cfg)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch(len(train), cfg.optim.batch_size))
    inputs = inputs or ImageBatches(train, val, transform, cfg, device)
    torch.manual_seed(cfg.seed)  # dropout / drop-path draws
    history = History()
    best = None  # keep_best's best validated epoch: TrainState.best
    if state is not None and state.epoch:
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        inputs.load_state_dict(state.inputs)
        _set_rng_states(state.rng, device)
        history.epochs, best = list(state.history), state.best
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.runtime.amp and device.type == "cuda")
    model.to(memory_format=memory_format(cfg, device))
    # compiled forward; it shares the parameters, so ``model`` is what gets trained and saved
    forward = torch.compile(model) if cfg.runtime.compile and getattr(model, "compile_safe", True) else model

    def validate(epoch: int) -> bool:  # early stopping (``stop``) and keep_best read every epoch
        return (
            (epoch + 1) % max(cfg.evaluation.val_every, 1) == 0
            or epoch + 1 == cfg.epochs
            or stop is not None
            or cfg.evaluation.keep_best
        )

    # A diverged run ends at its first non-finite loss; an accelerator's is read once an epoch,
    # not at every step (a host sync per batch would stall its pipeline).
    check_each_step = device.type == "cpu"
    nan_step = nan_loss_step()  # failpoint loss=nan@N (layerswarm.run.failpoints); None: unset
    per_epoch = steps_per_epoch(len(train), cfg.optim.batch_size)
    start = time.perf_counter()
    for epoch in range(len(history.epochs), cfg.epochs):
        hooks.on_epoch_start(epoch, model, optimizer)
        train_mode(model, frozen + hooks.frozen_modules())
        # Sums stay on the device: no host sync per batch (it would stall a GPU pipeline).
        loss_sum, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        for step, (x, y) in enumerate(inputs.train_epoch(), start=epoch * per_epoch + 1):
            with autocast:
                logits = forward(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.optim.label_smoothing)
            if step == nan_step:
                loss = loss * math.nan
            if check_each_step and not math.isfinite(value := loss.item()):
                raise NonFiniteLossError(f"non-finite loss {value} at step {step} (epoch {epoch + 1})")
            penalty = hooks.penalty(model)
            optimizer.zero_grad(set_to_none=True)
            (loss if penalty is None else loss + penalty).backward()
            hooks.after_backward(model)
            optimizer.step()
            scheduler.step()  # per step: warm-up and cosine move every batch
            hooks.after_step(model)
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
        if not math.isfinite(loss_sum.item()):
            raise NonFiniteLossError(f"non-finite loss {loss_sum.item()} in epoch {epoch + 1}")
        if cfg.evaluation.bn_recalibrate and (validate(epoch) or test is not None):
            recalibrate_frozen_bn(
                model,
                frozen,
                (
                    x
                    for x, _ in eval_batches(
                        train, transform, cfg.evaluation.eval_batch_size, device, memory_format(cfg, device)
                    )
                ),
            )
        record = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum.item() / max(seen, 1),
            "train_accuracy": correct.item() / max(seen, 1),
            # None between validations: a search's fitness needs only the last epoch's
            "val_accuracy": accuracy(forward, inputs.val_batches()) if validate(epoch) else None,
        }
        if test is not None and ((epoch + 1) % cfg.evaluation.test_every == 0 or epoch + 1 == cfg.epochs):
            record["test_accuracy"] = evaluate(model, test, transform, cfg.evaluation.eval_batch_size)
        record["seconds"] = time.perf_counter() - start
        history.epochs.append(record)
        history.images_seen += seen
        if cfg.evaluation.keep_best and (best is None or record["val_accuracy"] > best["val_accuracy"]):
            best = {
                "val_accuracy": record["val_accuracy"],
                "epoch": epoch + 1,
                "model": copy.deepcopy(model.state_dict()),
            }
        if on_epoch is not None:
            on_epoch(record)
        if checkpoint is not None:  # after on_epoch: an epoch whose report failed is not kept
            checkpoint.on_epoch_end(model, _state_of(optimizer, scheduler, inputs, device, history.epochs, best))
        if stop is not None and stop(record):
            break
    if cfg.evaluation.keep_best and best is not None:
        model.load_state_dict(best["model"])
    if state is not None:
        vars(state).update(vars(_state_of(optimizer, scheduler, inputs, device, history.epochs, best)))
    history.seconds = time.perf_counter() - start
    return history


def _state_of(optimizer, scheduler, inputs: ImageBatches, device: torch.device, history: list, best) -> TrainState:
    """Where training stands now (the optimizer's tensors are its own, not copies)."""
    return TrainState(
        optimizer.state_dict(), scheduler.state_dict(), inputs.state_dict(), _rng_states(device), history, best
    )
