"""TensorBoard logging of a search run (``layerswarm search --tensorboard``).

Layout under the log folder (open it with ``tensorboard --logdir DIR``)::

    search/             search/fitness per evaluation; search/best_fitness and
                        search/mean_fitness per generation; the config as text; hparams
    evals/eval-0007-g2-p3/  fitness/train_loss, fitness/train_accuracy, fitness/val_accuracy
                        per epoch of that evaluation (one TensorBoard run each, so curves overlay)
    final/              final/train_loss, final/train_accuracy, final/val_accuracy,
                        final/test_accuracy, final/lr per epoch of the final fine-tune
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from ..errors import LayerswarmError
from .listeners import RunListener

EPOCH_SCALARS = ("train_loss", "train_accuracy", "val_accuracy", "test_accuracy", "lr")


def _writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # tensorboard lives in the optional 'report' extra
        raise LayerswarmError(
            f"--tensorboard needs the tensorboard package ({err.name} is missing): pip install 'layerswarm[report]'"
        ) from err
    return SummaryWriter(log_dir=str(path))


def flat_hparams(config: dict, prefix: str = "") -> dict[str, Any]:
    """Nested config -> flat ``{"fitness.optim.lr": 0.01, ...}`` with values TensorBoard accepts."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_hparams(value, name + "."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:  # None, lists: hparams take scalars and strings only
            out[name] = json.dumps(value)
    return out


class TensorBoardLogger(RunListener):
    """A :class:`RunListener` writing event files; see the module docstring for the layout.

    Per-epoch records of a fitness fine-tune arrive before the evaluation they belong to
    (evaluations run one at a time in this process) and are written under its name when it
    finishes; evaluations run elsewhere (Ray) fall back to the validation curve they report.
    """

    def __init__(self, log_dir: str | Path, config: dict | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.config = config or {}
        self.search = _writer(self.log_dir / "search")
        if config:
            self.search.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)
        self._final: Any = None  # a SummaryWriter once the final fine-tune starts
        self._pending_epochs: list[dict] = []
        self._generation: int | None = None
        self._gen_fitness: list[float] = []
        self.best = -math.inf

    def on_fitness_epoch(self, record: dict) -> None:
        self._pending_epochs.append(dict(record))

    def on_evaluation(self, record: dict) -> None:
        epochs, self._pending_epochs = self._pending_epochs, []
        if not epochs:
            epochs = [{"epoch": i + 1, "val_accuracy": v} for i, v in enumerate(record.get("val_curve") or [])]
        name = f"eval-{record['number']:04d}-g{record['generation'] + 1}-p{record['particle'] + 1}"
        writer = _writer(self.log_dir / "evals" / name)
        for e in epochs:
            for key in ("train_loss", "train_accuracy", "val_accuracy"):
                if e.get(key) is not None:
                    writer.add_scalar(f"fitness/{key}", e[key], int(e["epoch"]))
        writer.close()

        gen = int(record.get("generation", 0))
        if self._generation is not None and gen != self._generation:
            self._write_generation()
        self._generation = gen
        fitness = record.get("fitness")
        value = -math.inf if fitness is None else float(fitness)
        self._gen_fitness.append(value)
        self.best = max(self.best, value)
        if fitness is not None:
            self.search.add_scalar("search/fitness", value, int(record["number"]))
        self.search.flush()

    def _write_generation(self) -> None:
        """Best-so-far and mean (finite) fitness of the generation just finished."""
        if self._generation is None or not self._gen_fitness:
            return
        step = self._generation + 1
        finite = [f for f in self._gen_fitness if math.isfinite(f)]
        if math.isfinite(self.best):
            self.search.add_scalar("search/best_fitness", self.best, step)
        if finite:
            self.search.add_scalar("search/mean_fitness", statistics.fmean(finite), step)
        self._gen_fitness = []

    def on_final_epoch(self, record: dict) -> None:
        if self._final is None:
            self._final = _writer(self.log_dir / "final")
        writer = self._final
        for key in EPOCH_SCALARS:
            if record.get(key) is not None:
                writer.add_scalar(f"final/{key}", record[key], int(record["epoch"]))
        writer.flush()

    def close(self, result: dict | None = None) -> None:
        self._write_generation()
        if self.config:
            metrics = {}
            if math.isfinite(self.best):
                metrics["hparam/best_fitness"] = self.best
            if result and result.get("fitness") is not None and math.isfinite(result["fitness"]):
                metrics["hparam/best_fitness"] = float(result["fitness"])
            if result and result.get("test_accuracy") is not None:
                metrics["hparam/test_accuracy"] = float(result["test_accuracy"])
            # run_name ".": the hparams go into search/, next to the curves, not a new timestamped run
            self.search.add_hparams(
                flat_hparams(self.config), metrics or {"hparam/best_fitness": float("nan")}, run_name="."
            )
        self.search.close()
        if self._final is not None:
            self._final.close()
