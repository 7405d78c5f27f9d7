"""Final fine-tunes of the masks the searchers found, each distinct mask once, cached."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LayerswarmError
from ..io import append_jsonl, read_jsonl
from .runner import RaceRun
from .table import full_mask, mask_key


def final_tests(
    run_cfg: Any,
    masks: Sequence[Sequence[int]],
    cache_path: str | Path,
    on_result: Callable[[dict], None] | None = None,
) -> dict[str, dict]:
    """Final fine-tune (``run_cfg.final``) and test accuracy of each distinct mask, cached.

    Results are appended to the JSONL ``cache_path`` keyed by mask bits, so a mask found by
    several searchers or seeds is trained once, and an interrupted run resumes.
    """
    from ..data import load_dataset
    from ..models.bundle import build_bundle
    from ..run.finetune import run_finetune
    from ..strategies import create_strategy

    done = {r["mask"]: r for r in read_jsonl(cache_path)}
    todo = sorted({mask_key(m) for m in masks} - set(done))
    if todo:
        data = load_dataset(run_cfg.data)
        bundle = build_bundle(run_cfg.model, data.num_classes, run_cfg.final, seed=run_cfg.seed)
        final = run_cfg.final.replace(
            evaluation=run_cfg.final.evaluation.replace(test_every=run_cfg.final.epochs)
        )  # test once, at the end
        for key in todo:
            metrics = run_finetune(
                bundle, data, create_strategy("mask", {"mask": [int(b) for b in key]}), final, seed=run_cfg.seed
            )
            row = {
                "mask": key,
                "test_accuracy": metrics["test_accuracy"],
                "val_accuracy": metrics["val_accuracy"],
                "epochs": run_cfg.final.epochs,
                "seconds": round(metrics["seconds"], 1),
            }
            append_jsonl(cache_path, row)
            done[key] = row
            if on_result is not None:
                on_result(row)
    return {mask_key(m): done[mask_key(m)] for m in masks}


def best_masks_by_searcher(
    runs: list[RaceRun], seeds: int, num_units: int, frozen: Sequence[int]
) -> dict[str, list[list[int]]]:
    """Full best masks of seeds ``0..seeds-1`` per searcher (the masks to fine-tune and test)."""
    out: dict[str, list[list[int]]] = {}
    for run in runs:
        if run.seed < seeds and run.best_mask:
            out.setdefault(run.searcher, []).append(full_mask(run.best_mask, num_units, frozen))
    return out


def add_final_tests(
    summary: dict[str, Any],
    runs: list[RaceRun],
    run_cfg: Any,
    seeds: int,
    cache_path: str | Path,
    on_result: Callable[[dict], None] | None = None,
) -> None:
    """Fine-tune the best mask of seeds ``0..seeds-1`` of every searcher (each distinct mask
    once) and add the mean test accuracy per searcher to ``summary``."""
    num_units = len(summary["table"]["units"]) if "table" in summary else None
    if num_units is None:
        raise LayerswarmError("final tests need the unit names of the race's table")
    frozen = summary["race"]["frozen_units"]
    masks = best_masks_by_searcher(runs, seeds, num_units, frozen)
    results = final_tests(run_cfg, [m for ms in masks.values() for m in ms], cache_path, on_result)
    for name, ms in masks.items():
        accs = [results[mask_key(m)]["test_accuracy"] for m in ms]
        summary["searchers"][name]["final_masks"] = [mask_key(m) for m in ms]
        summary["searchers"][name]["final_test_accuracy"] = float(np.mean(accs))
        summary["searchers"][name]["final_test_accuracies"] = accs
    summary["final"] = {"epochs": run_cfg.final.epochs, "seeds": seeds, "max_test": run_cfg.data.splits.max_test}
