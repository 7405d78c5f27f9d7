"""A whole run: load data, search a mask on train/val, fine-tune it, test it once.

Files in the output folder (each written atomically, so a run can be resumed):
``config.json``, ``evaluations.jsonl`` (one line per fitness evaluation),
``search_state.json`` (searcher state after every evaluation), ``best_mask.json`` and
``final/`` (``model.safetensors``, ``metrics.json``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .bundle import ModelBundle, ModelConfig, build_bundle
from .config_utils import JsonConfig, help_field
from .data import DataConfig, DatasetSplits, load_dataset
from .errors import LayerswarmError
from .executors import Executor, FitnessSpec, create_executor
from .finetune import run_finetune
from .fitness import Evaluation
from .io import append_jsonl, atomic_write_json, atomic_write_text, read_json, read_jsonl
from .searchers import Searcher, Trial, create_searcher
from .speed import SpeedConfig, wrap_executor
from .strategies import create_strategy
from .training import TrainConfig
from .units import save_mask

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
EVALUATIONS_FILE = "evaluations.jsonl"
STATE_FILE = "search_state.json"
BEST_MASK_FILE = "best_mask.json"


@dataclass
class SearchConfig(JsonConfig):
    searcher: str = help_field("pso", "searcher name (pso, random, ...)")
    options: dict = help_field(None, "searcher options, e.g. PSO particles/generations/c1/c2", default_factory=dict)
    retries: int = help_field(1, "retries of an evaluation that raises before it counts as failed")
    backend: str = help_field("local", "where evaluations run: local or ray")
    address: str | None = help_field(None, "Ray cluster address (auto, ray://HOST:10001); default: start Ray here")
    cpus_per_trial: int | None = help_field(None, "CPU cores per evaluation, also its torch thread count; default: torch's "
                                            "own (all cores) locally, 1 per Ray task. CPU results depend on the thread "
                                            "count: give both backends the same number to get equal results")
    gpus_per_trial: float = help_field(0.0, "GPUs per evaluation under Ray (0.5: two evaluations share a GPU)")


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

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(), "data": self.data.to_dict(), "fitness": self.fitness.to_dict(),
            "final": self.final.to_dict(), "search": self.search.to_dict(), "seed": self.seed,
            "speed": self.speed.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        return cls(
            model=ModelConfig.from_dict(d["model"]), data=DataConfig.from_dict(d["data"]),
            fitness=TrainConfig.from_dict(d["fitness"]), final=TrainConfig.from_dict(d["final"]),
            search=SearchConfig.from_dict(d["search"]), seed=d.get("seed", 0),
            speed=SpeedConfig.from_dict(d.get("speed", {})),
        )


def _record(trial: Trial, ev: Evaluation) -> dict:
    finite = ev.fitness != float("-inf")
    return {
        "number": trial.number,
        "generation": trial.generation,
        "particle": trial.index,
        "position": trial.position,
        "mask": list(trial.mask),
        "fitness": ev.fitness if finite else None,
        "seconds": round(ev.seconds, 3),
        "epochs_trained": ev.epochs_trained,
        "val_curve": [e.get("val_accuracy") for e in ev.epochs],  # None: not validated
        "error": ev.error,
    }


def search_masks(
    searcher: Searcher,
    executor: Executor,
    out_dir: str | Path,
    on_evaluation: Callable[[dict], None] | None = None,
) -> tuple[list[int], float]:
    """Drive ask/tell to the end, logging each evaluation and saving state after each one.

    Resumable: evaluations already in ``evaluations.jsonl`` are told again, not re-run.
    """
    out = Path(out_dir)
    records = read_jsonl(out / EVALUATIONS_FILE)
    _drop_torn_tail(out / EVALUATIONS_FILE, records)
    done = {r["number"]: r for r in records}
    _seed_memo(executor, records)
    while not searcher.is_done():
        pending = searcher.pending() if hasattr(searcher, "pending") else []
        trials = pending or searcher.ask()
        atomic_write_json(out / STATE_FILE, searcher.state_dict())
        todo = []
        for trial in trials:
            if trial.number in done:  # finished before an interruption: reuse its result
                fitness = done[trial.number]["fitness"]
                searcher.tell(trial.number, float("-inf") if fitness is None else fitness)
            else:
                todo.append(trial)
        for trial, ev in executor.run(todo):
            record = _record(trial, ev)
            append_jsonl(out / EVALUATIONS_FILE, record)
            done[trial.number] = record
            searcher.tell(trial.number, ev.fitness)
            atomic_write_json(out / STATE_FILE, searcher.state_dict())
            if ev.error:
                log.error("evaluation %d (generation %d, particle %d) failed: %s",
                          trial.number, trial.generation, trial.index, ev.error)
            if on_evaluation is not None:
                on_evaluation(record)
    atomic_write_json(out / STATE_FILE, searcher.state_dict())
    return searcher.best()


def _drop_torn_tail(path: Path, records: list[dict]) -> None:
    """A kill while appending can leave half a line; the next append would glue onto it and
    hide every later line from :func:`read_jsonl`. Rewrite the file with the whole lines."""
    whole = "".join(json.dumps(r) + "\n" for r in records)
    if path.is_file() and path.read_text(encoding="utf-8") != whole:
        atomic_write_text(path, whole)


def _seed_memo(executor: Executor, records: list[dict]) -> None:
    """Hand a resumed run's finished evaluations to the fitness memo, wherever it is wrapped."""
    while executor is not None:
        if hasattr(executor, "remember"):
            executor.remember(records)
            return
        executor = getattr(executor, "inner", None)


def _check_resume(out: Path, cfg: RunConfig) -> None:
    try:  # through the dataclasses: settings added since the run was saved take their defaults
        saved = RunConfig.from_dict(read_json(out / CONFIG_FILE)).to_dict()
    except (KeyError, TypeError, ValueError) as err:
        raise LayerswarmError(f"'{out}/{CONFIG_FILE}' is not a layerswarm run configuration ({err}): use a new --out folder") from err
    if saved != cfg.to_dict():
        raise LayerswarmError(
            f"'{out}' holds a run with a different configuration: use a new --out folder, or --resume {out} alone"
        )


def make_executor(cfg: RunConfig, bundle: ModelBundle, data: DatasetSplits, on_epoch=None) -> Executor:
    spec = FitnessSpec(cfg.model, cfg.fitness, data.num_classes, seed=cfg.seed, speed=cfg.speed)  # workers rebuild the same bundle
    s = cfg.search
    executor = create_executor(s.backend, spec, data.for_search(), bundle=bundle, on_epoch=on_epoch, retries=s.retries,
                               cpus_per_trial=s.cpus_per_trial,
                               gpus_per_trial=s.gpus_per_trial, address=s.address)
    return wrap_executor(executor, cfg.speed, cfg.fitness)  # memoisation, successive halving


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
    try:
        mask, fitness = search_masks(searcher, executor, out, on_evaluation)
    finally:
        executor.close()
    save_mask(out / BEST_MASK_FILE, mask, bundle.units, fitness=fitness, searcher=cfg.search.searcher,
              history=searcher.history())

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
