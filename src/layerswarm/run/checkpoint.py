"""A fine-tune that survives an interruption: a checkpoint after every epoch, resumed exactly.

:class:`Checkpoint` is the file behind :func:`~layerswarm.training.fit`'s ``checkpoint`` hook:
after each epoch ``fit`` hands it the weights and the :class:`~layerswarm.training.trainer.TrainState`
(optimizer, lr schedule, batch generator, torch's RNG, epoch records, keep_best's best epoch),
written atomically to one file (``torch.save`` of tensors and plain values only, read back with
``weights_only=True``). Started again, ``fit`` continues after the last saved epoch and ends with
the same weights and records as a run that was never stopped (tests/test_final_resume.py).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import LayerswarmError
from ..io import atomic_write_bytes
from ..training import TrainConfig
from ..training.trainer import TrainState

FORMAT = 1


class Checkpoint:
    """The training state of one fine-tune in the file ``path``; ``cfg`` and ``frozen`` are the
    fine-tune's: a file written with other settings is refused, never continued."""

    def __init__(self, path: str | Path, cfg: TrainConfig, frozen: list[str] | None = None) -> None:
        self.path = Path(path)
        self.fingerprint = {"format": FORMAT, "config": cfg.to_dict(), "frozen": sorted(frozen or [])}

    def restore(self, model: nn.Module) -> TrainState | None:
        if not self.path.is_file():
            return None
        saved = self._load()
        if saved.get("fingerprint") != self.fingerprint:
            raise LayerswarmError(
                f"checkpoint '{self.path}' was written by a fine-tune with other settings: delete it "
                "to start this one from its first epoch"
            )
        model.load_state_dict(saved["model"])
        return TrainState(**saved["state"], best=saved.get("best"))

    def on_epoch_end(self, model: nn.Module, state: TrainState) -> None:
        on_cpu = vars(state.to("cpu"))
        payload = {
            "fingerprint": self.fingerprint,
            "model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
            "state": {k: v for k, v in on_cpu.items() if k != "best"},
            "best": on_cpu["best"],  # beside the state, where the file has always held it
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())

    def remove(self) -> None:
        """Drop the file once the fine-tune's results are saved (it holds the optimizer too)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _load(self) -> dict:
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - a truncated or foreign file: say which and how to go on
            raise LayerswarmError(
                f"checkpoint '{self.path}' cannot be read ({type(err).__name__}): delete it to run "
                "the fine-tune from its first epoch"
            ) from err
