"""A whole run: load data, search a mask on train/val, fine-tune it, test it once.

Files in the output folder (each written atomically, so a run can be resumed):
``config.json``, ``evaluations.jsonl`` (one line per fitness evaluation),
``search_state.json`` (searcher state after every evaluation), ``best_mask.json`` and
``final/`` (``model.safetensors``, ``metrics.json``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .bundle import ModelConfig, build_bundle
from .config_utils import JsonConfig
from .data import DataConfig, DatasetSplits, load_dataset
from .driver import (  # noqa: F401  (the driver's names, as this module always offered them)
    BEST_MASK_FILE,
    EVALUATIONS_FILE,
    STATE_FILE,
    SearchConfig,
    make_executor,
    run_searcher,
    search_masks,
)
from .errors import LayerswarmError
from .finetune import run_finetune
from .io import atomic_write_json, read_json
from .searchers import create_searcher
from .speed import SpeedConfig
from .strategies import create_strategy
from .training import TrainConfig

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


def _paper_final() -> TrainConfig:
    return TrainConfig(epochs=110)


@dataclass
class RunConfig(JsonConfig):
    """The full resolved configuration of a run, written to ``config.json``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    fitness: TrainConfig = field(default_factory=TrainConfig)  # maxEpoch = 5 short fine-tunes
    final: TrainConfig = field(default_factory=_paper_final)  # the 110-epoch final fine-tune
    search: SearchConfig = field(default_factory=SearchConfig)
    seed: int = 0
    speed: SpeedConfig = field(default_factory=SpeedConfig)  # exact speed-ups on, approximate off

    required = ("model", "data", "fitness", "final", "search")
    ignored = ("command", "versions", "device", "resumed", "kind")  # config.json's record of the run


def _check_resume(out: Path, cfg: RunConfig) -> None:
    try:  # through the dataclasses: settings added since the run was saved take their defaults
        saved = RunConfig.from_dict(read_json(out / CONFIG_FILE)).to_dict()
    except (KeyError, TypeError, ValueError) as err:
        raise LayerswarmError(f"'{out}/{CONFIG_FILE}' is not a layerswarm run configuration ({err}): use a new --out folder") from err
    if saved != cfg.to_dict():
        raise LayerswarmError(
            f"'{out}' holds a run with a different configuration: use a new --out folder, or --resume {out} alone"
        )


def run_search(
    cfg: RunConfig,
    out_dir: str | Path,
    data: DatasetSplits | None = None,
    resume: bool = False,
    on_evaluation: Callable[[dict], None] | None = None,
    on_final_epoch: Callable[[dict], None] | None = None,
    on_fitness_epoch: Callable[[dict], None] | None = None,
    report: bool = True,
) -> dict:
    """Search a mask with ``cfg.search`` on train/val, then fine-tune it and test it once."""
    out = Path(out_dir)
    if resume:
        if not (out / CONFIG_FILE).is_file():
            raise LayerswarmError(f"nothing to resume in '{out}': no {CONFIG_FILE} (start with layerswarm search --out {out})")
        _check_resume(out, cfg)
    elif (out / CONFIG_FILE).exists():
        raise LayerswarmError(f"'{out}' already holds a run: pass --resume {out} to continue it, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / CONFIG_FILE, cfg.to_dict())

    data = data if data is not None else load_dataset(cfg.data)
    bundle = build_bundle(cfg.model, data.num_classes, cfg.fitness, seed=cfg.seed)
    searcher = create_searcher(cfg.search.searcher, len(bundle.units), cfg.search.options, seed=cfg.seed)
    if resume and (out / STATE_FILE).is_file():
        searcher.load_state_dict(read_json(out / STATE_FILE))
    executor = make_executor(cfg, bundle, data, on_fitness_epoch)
    mask, fitness = run_searcher(searcher, executor, out, bundle.units, on_evaluation)

    final_metrics_path = out / "final" / "metrics.json"
    if resume and final_metrics_path.is_file():
        final = read_json(final_metrics_path)
    else:
        strategy = create_strategy("mask", {"mask": mask})
        final = run_finetune(bundle, data, strategy, cfg.final, out / "final", seed=cfg.seed, on_epoch=on_final_epoch)
    if report:  # report.html + figures/; a failure is logged, never loses the finished run
        from .report import try_write_report
        try_write_report(out)
    return {"mask": mask, "fitness": fitness, "units": [u.name for u in bundle.units],
            "test_accuracy": final["test_accuracy"], "out_dir": str(out)}
