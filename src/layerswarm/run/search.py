"""A whole run: load data, search a mask on train/val, fine-tune it, test it once.

Files in the output folder (each written atomically, so a run can be resumed):
``config.json``, ``evaluations.jsonl`` (one line per fitness evaluation),
``search_state.json`` (searcher state after every evaluation), ``best_mask.json`` and
``final/`` (``model.safetensors``, ``metrics.json``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..data import DatasetSplits, load_dataset
from ..errors import LayerswarmError
from ..io import atomic_write_json, read_json, read_jsonl
from ..models.bundle import build_bundle
from ..searchers import create_searcher
from ..searchers.space import space_of
from ..strategies import create_strategy
from ..training import resolve_device
from .baselines import compare_run, parse_baselines
from .budget import resolve_fitness_steps
from .config import RunConfig
from .driver import (  # noqa: F401  (the driver's names, as this module always offered them)
    BEST_MASK_FILE,
    EVALUATIONS_FILE,
    STATE_FILE,
    make_executor,
    run_searcher,
    search_masks,
)
from .failures import check_answerable
from .finetune import run_finetune
from .lock import lock_run_folder, one_writer
from .selection import record_selection, select_final

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
FINAL_CHECKPOINT = "checkpoint.pt"  # the final fine-tune's state after its last epoch (layerswarm.run.checkpoint)


# Settings a resume may change (the rest would mix two runs' results): the final fine-tune's
# before it has started, and where or how often evaluations are tried.
RESUME_SAFE_ALWAYS = (
    "search.executor.retries",
    "search.executor.address",
    "search.outcome.baselines",
    "search.outcome.answer",
    "search.executor.max_failed_share",
)


def _resume_safe(key: str, final_started: bool) -> bool:
    return key in RESUME_SAFE_ALWAYS or (key.startswith("final.") and not final_started)


def final_started(out: Path) -> bool:
    """The final fine-tune has begun: its checkpoint or its result is on disk."""
    return (out / "final").is_dir() and any((out / "final").iterdir())


def _check_resume(out: Path, cfg: RunConfig, started: bool | None = None) -> dict[str, tuple]:
    """The safe changes ``cfg`` makes to the run saved in ``out`` (dotted key -> (old, new));
    any other change is refused, naming each one."""
    from .rundir import differences

    try:  # through the dataclasses: settings added since the run was saved take their defaults
        saved = RunConfig.from_dict(read_json(out / CONFIG_FILE)).to_dict()
    except (KeyError, TypeError, ValueError) as err:
        raise LayerswarmError(
            f"'{out}/{CONFIG_FILE}' is not a layerswarm run configuration ({err}): use a new --out folder"
        ) from err
    started = final_started(out) if started is None else started
    changes = differences(saved, cfg.to_dict())
    refused = {k: v for k, v in changes.items() if not _resume_safe(k, started)}
    if refused:
        named = "; ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in refused.items())
        when = (
            "once the final fine-tune has started"
            if started and any(k.startswith("final.") for k in refused)
            else "on resume"
        )
        raise LayerswarmError(
            f"'{out}' holds a run with a different configuration: {named} cannot change {when} "
            f"(safe: the final fine-tune's settings before it starts, --retries, "
            f"--max-failed-share, --address); "
            f"drop those options, or start a new run with another --out"
        )
    return changes


@one_writer  # the run folder's lock (taken once the folder exists) is released on return
def run_search(
    cfg: RunConfig,
    out_dir: str | Path,
    data: DatasetSplits | None = None,
    resume: bool = False,
    on_evaluation: Callable[[dict], None] | None = None,
    on_final_epoch: Callable[[dict], None] | None = None,
    on_fitness_epoch: Callable[[dict], None] | None = None,
    report: bool = True,
    overwrite: bool = False,
    meta: dict | None = None,
) -> dict:
    """Search a mask with ``cfg.search`` on train/val, then fine-tune it and test it once.

    Everything is checked before anything is written: the folder appears (and ``config.json``
    with ``meta``: the command line, versions; see :mod:`layerswarm.run.rundir`) only once the
    data, the model, its units and the searcher are known to be good. ``overwrite`` replaces
    a run already in ``out_dir``; ``resume`` continues it, applying only safe changes. One process
    at a time writes a folder (:mod:`layerswarm.run.lock`).
    """
    from ..models.factory import pretrained_input
    from .rundir import check_classes, check_epochs, check_out_dir, clear_run, config_record

    out = Path(out_dir)
    # the input size, crop and interpolation the model was pretrained with, saved in config.json
    cfg = cfg.replace(data=cfg.data.resolved(pretrained_input(cfg.model.name)))
    changes, previous = {}, None
    check_epochs(fitness_epochs=cfg.fitness.epochs, final_epochs=cfg.final.epochs)
    if resume:
        if not (out / CONFIG_FILE).is_file():
            raise LayerswarmError(
                f"nothing to resume in '{out}': no {CONFIG_FILE} (start with layerswarm search --out {out})"
            )
        changes = _check_resume(out, cfg)
        previous = read_json(out / CONFIG_FILE)
    else:
        check_out_dir(out, overwrite)

    data = data if data is not None else load_dataset(cfg.data)
    check_classes(data.num_classes, data.classes)
    cfg = resolve_fitness_steps(cfg, data)  # --fitness-steps: whole epochs of this training split
    if cfg.search.fitness.steps is not None:
        log.info("fitness budget: %d optimizer steps = %d epochs", cfg.search.fitness.steps, cfg.fitness.epochs)
    bundle = build_bundle(cfg.model, data.num_classes, cfg.fitness, seed=cfg.seed)
    log.info(
        "input %s, recipe %s, device %s", cfg.data.describe_input(data.input_config), cfg.fitness.recipe, bundle.device
    )
    space = space_of(cfg.search.method)  # --space lr: a level of the ladder per unit
    searcher = create_searcher(
        cfg.search.method.name,
        len(bundle.units),
        cfg.search.method.options,
        seed=cfg.seed,
        init=cfg.search.method.init,
        patience=cfg.search.method.patience,
        space=space,
    )
    parse_baselines(cfg.search.outcome.baselines, len(bundle.units))  # a misspelt baseline fails here, before any file
    if resume and (out / STATE_FILE).is_file():
        searcher.load_state_dict(read_json(out / STATE_FILE))
    # The work starts: only now does the folder appear (or the old run's files go).
    out.mkdir(parents=True, exist_ok=True)
    lock_run_folder(out)
    if overwrite and not resume:
        clear_run(out)
    atomic_write_json(out / CONFIG_FILE, config_record(cfg.to_dict(), meta, bundle.device, previous, changes))
    log.info("layerswarm search: %s on %s -> %s%s", cfg.model.name, cfg.data.data, out, " (resumed)" if resume else "")
    if changes:
        log.info("resume: applied %s", ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
    executor = make_executor(cfg, bundle, data, on_fitness_epoch)
    plan, fitness = run_searcher(
        searcher, executor, out, bundle.units, on_evaluation, cfg.search.executor.max_failed_share
    )
    selection = select_final(cfg, bundle, data, out)  # --final-select: the top K again, fresh seeds
    if selection is not None:
        plan, fitness = record_selection(out, selection)
    # never a mask no evaluation scored
    check_answerable(read_jsonl(out / EVALUATIONS_FILE), fitness, cfg.fitness.optim.lr)
    mask = space.mask(plan)
    # in a level space, the plan's multipliers: its units train at lr x multiplier
    rates = {} if space.name == "mask" else {"lr_multipliers": space.multipliers(plan)}

    final_bundle = bundle  # the final fine-tune runs on its own device (its transform: run_finetune)
    if resolve_device(cfg.final.runtime.device) != bundle.device:
        final_bundle = build_bundle(cfg.model, data.num_classes, cfg.final, seed=cfg.seed)
    final_metrics_path = out / "final" / "metrics.json"
    if resume and final_metrics_path.is_file():
        final = read_json(final_metrics_path)
    else:
        strategy = create_strategy("mask", {"mask": mask, **rates})
        final = run_finetune(
            final_bundle,
            data,
            strategy,
            cfg.final,
            out / "final",
            seed=cfg.seed,
            on_epoch=on_final_epoch,
            checkpoint=out / "final" / FINAL_CHECKPOINT,
        )
    # --baselines: the strategies a user would pick, same final recipe, split and seed (DIR/baselines/)
    comparison = compare_run(cfg, final_bundle, data, out, final)
    if report:  # report.html + figures/; a failure is logged, never loses the finished run
        from ..report import try_write_report

        try_write_report(out)
    return {
        "mask": mask,
        **rates,
        "fitness": fitness,
        "units": [u.name for u in bundle.units],
        "test_accuracy": final["test_accuracy"],
        "out_dir": str(out),
        "baselines": comparison,
    }
