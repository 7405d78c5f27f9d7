"""A fine-tune that survives an interruption: a checkpoint after every epoch, resumed exactly.

:func:`fit_checkpointed` runs the trainer's :func:`~layerswarm.training.fit` one epoch at a
time through its pausing interface (``state=TrainState``, ``stop``): after each epoch the
weights, the optimizer, the lr schedule, the batch generator, torch's RNG and the epoch
records are written atomically to one file (``torch.save`` of tensors and plain values only,
read back with ``weights_only=True``). Started again, it continues after the last saved epoch
and ends with the same weights and records as a run that was never stopped (tested in
tests/test_final_resume.py). The training itself is the trainer's, unchanged: stopping after
every epoch only adds a validation pass, whose value is dropped where the uninterrupted run
would not have validated (accuracy reads no random numbers, so training is not affected).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import LayerswarmError
from ..io import atomic_write_bytes
from ..training import TrainConfig, fit
from ..training.trainer import History, TrainState

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1


def _validates(cfg: TrainConfig, epoch: int) -> bool:
    """Would an uninterrupted ``fit`` without ``stop`` validate after ``epoch`` (0-based)?"""
    return (epoch + 1) % max(cfg.val_every, 1) == 0 or epoch + 1 == cfg.epochs or cfg.keep_best


def _fingerprint(cfg: TrainConfig, frozen: list[str] | None) -> dict:
    return {"format": FORMAT, "config": cfg.to_dict(), "frozen": sorted(frozen or [])}


def save_checkpoint(
    path: Path, model: torch.nn.Module, state: TrainState, fingerprint: dict, best: dict | None
) -> None:
    cpu = lambda t: t.detach().to("cpu", copy=True)  # noqa: E731
    payload = {
        "fingerprint": fingerprint,
        "model": {k: cpu(v) for k, v in model.state_dict().items()},
        "state": state.to("cpu").__dict__,
        "best": best,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file: say which and how to go on
        raise LayerswarmError(
            f"checkpoint '{path}' cannot be read ({type(err).__name__}): delete it to run "
            "the fine-tune from its first epoch"
        ) from err


def fit_checkpointed(
    model: torch.nn.Module,
    train,
    val,
    cfg: TrainConfig,
    transform,
    *,
    checkpoint: str | Path,
    frozen: list[str] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    **kwargs,
) -> History:
    """:func:`~layerswarm.training.fit` with a checkpoint at ``checkpoint`` after every epoch,
    continuing from it when it exists. Takes ``fit``'s arguments (not ``state`` or ``stop``)."""
    if "state" in kwargs or "stop" in kwargs:
        raise TypeError("fit_checkpointed drives fit's state and stop itself")
    path = Path(checkpoint)
    fingerprint = _fingerprint(cfg, frozen)
    state, best = TrainState(), None
    if path.is_file():
        saved = load_checkpoint(path)
        if saved.get("fingerprint") != fingerprint:
            raise LayerswarmError(
                f"checkpoint '{path}' was written by a fine-tune with other settings: delete it "
                "to start this one from its first epoch"
            )
        model.load_state_dict(saved["model"])
        state, best = TrainState(**saved["state"]), saved.get("best")

    def record_epoch(record: dict) -> None:
        if not _validates(cfg, record["epoch"] - 1):
            record["val_accuracy"] = None  # as the uninterrupted run: validated only to stop here
        if on_epoch is not None:
            on_epoch(record)

    history = History(epochs=list(state.history))
    seconds = 0.0
    while state.epoch < cfg.epochs:
        history = fit(
            model,
            train,
            val,
            cfg,
            transform,
            frozen=frozen,
            on_epoch=record_epoch,
            state=state,
            stop=lambda _record: True,
            **kwargs,
        )
        seconds += history.seconds
        last = state.history[-1]
        if (
            cfg.keep_best
            and last.get("val_accuracy") is not None
            and (best is None or last["val_accuracy"] > best["val_accuracy"])
        ):
            best = {
                "val_accuracy": last["val_accuracy"],
                "epoch": last["epoch"],
                "model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
            }
        save_checkpoint(path, model, state, fingerprint, best)
    if cfg.keep_best and best is not None:  # as fit does at the end: the best validated epoch's weights
        model.load_state_dict(best["model"])
    history.epochs, history.seconds = list(state.history), seconds
    return history


def remove_checkpoint(checkpoint: str | Path) -> None:
    """Drop the checkpoint once the fine-tune's results are saved (it holds the optimizer too)."""
    try:
        os.unlink(checkpoint)
    except FileNotFoundError:
        pass
