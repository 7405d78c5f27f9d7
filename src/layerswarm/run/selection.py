"""Final selection (``--final-select K``): before the final fine-tune, re-evaluate the K best
distinct masks of the search with fresh seeds, and fine-tune the best by the mean of all its
evaluations, or, with ``--select-epochs E`` other than the fitness budget, by that evaluation
alone.

The search's best is the maximum of many noisy fitnesses, biased upward and never re-checked.
Each of the top K masks (by search fitness, ties to the earlier) is evaluated again
``select_repeats`` times at the fitness budget (or ``select_epochs``), with seeds the search never used (repeat
indices after its ``fitness_repeats``: :class:`~layerswarm.fitness.mask_fitness.MaskFitness`). A mask's
score is the mean of all its evaluations: (R f_search + S f_selection) / (R + S), its standard
error that of a weighted mean of two independent estimates. A selection budget other than the
fitness' measures something else (a 10-epoch accuracy is not a 5-epoch one, and ranks masks better:
docs/concepts/fitness.md), so then a mask's score is its selection fitness alone. The evaluations
are lines of ``evaluations.jsonl`` with ``phase: "selection"`` (so a resumed run re-runs none of
them), the outcome is ``best_mask.json``'s ``selection`` and its ``mask`` the one fine-tuned.
In a level space (``--space lr``) the candidates are plans (their ``levels``), and
``lr_multipliers`` follows the choice.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from ..fitness.noise import distinct_masks, plan_key
from ..io import append_jsonl, read_jsonl
from ..searchers import Trial
from .driver import EVALUATIONS_FILE, make_executor, record_evaluation

log = logging.getLogger(__name__)

PHASE = "selection"


def top_masks(records: list[dict], k: int) -> list[dict]:
    """The first search evaluation of each of the ``k`` best distinct masks, best first (ties: asked first)."""
    ranked = sorted(distinct_masks(records).values(), key=lambda r: (-r["fitness"], r["number"]))
    return ranked[:k]


def selection_config(cfg: Any) -> Any:
    """``cfg`` as the final selection evaluates with it: the search's fitness at ``select_epochs``
    (default: the fitness budget), every mask trained to the end (no successive halving or early stop)."""
    plain = cfg.replace(fitness=cfg.fitness.replace(epochs=cfg.search.selection.epochs or cfg.fitness.epochs))
    if cfg.speed is not None:
        plain = plain.replace(speed=cfg.speed.replace(fidelity="full", early_stop=None))
    return plain


def select_final(cfg: Any, bundle: Any, data: Any, out: str | Path, on_epoch=None) -> dict | None:
    """Re-evaluate the top ``cfg.search.selection.top`` masks (resumably) and return the selection:
    ``{"mask": chosen, "candidates": [...]}``; ``None`` when selection is off or nothing finished."""
    k, repeats = cfg.search.selection.top, cfg.search.selection.repeats
    plain = selection_config(cfg)
    epochs = plain.fitness.epochs
    path = Path(out) / EVALUATIONS_FILE
    records = read_jsonl(path)
    candidates = top_masks(records, k) if k > 0 else []
    if not candidates:
        return None
    done = {plan_key(r): r for r in records if r.get("phase") == PHASE and r.get("fitness") is not None}
    todo = [
        Trial(number=i, generation=-1, index=i, mask=list(c["mask"]), levels=c.get("levels"))
        for i, c in enumerate(candidates)
        if plan_key(c) not in done
    ]
    if todo:
        executor = make_executor(plain, bundle, data, on_epoch, repeats=repeats, seed_offset=cfg.search.fitness.repeats)
        try:
            for trial, ev in executor.run(todo):
                record = {**record_evaluation(trial, ev, repeats), "phase": PHASE}
                append_jsonl(path, record)
                if record["fitness"] is not None:
                    done[plan_key(record)] = record
                log.info(
                    "selection %d/%d: mask %s fitness %s over %d fresh seeds",
                    trial.index + 1,
                    len(candidates),
                    "".join(map(str, trial.unit_levels)),
                    record["fitness"],
                    repeats,
                )
        finally:
            executor.close()
    other_budget = epochs != cfg.fitness.epochs  # then the two fitnesses measure different things
    rows = [_score(c, done.get(plan_key(c)), cfg.search.fitness.repeats, other_budget) for c in candidates]
    chosen = max(rows, key=lambda r: r["mean"])  # max keeps the first of equals: the search's order
    levels = {} if chosen.get("levels") is None else {"levels": chosen["levels"]}
    return {"mask": chosen["mask"], **levels, "candidates": rows, "select_repeats": repeats, "select_epochs": epochs}


def _score(search: dict, selection: dict | None, r: int, alone: bool = False) -> dict:
    """A candidate's search and selection fitness and its score ("mean"): the mean of all its
    evaluations, or the selection's ``alone`` (it ran another budget than the search's fitness)."""
    levels = {} if search.get("levels") is None else {"levels": list(search["levels"])}
    row = {
        "mask": list(search["mask"]),
        **levels,
        "search_fitness": search["fitness"],
        "search_se": search.get("fitness_se"),
        "selection_fitness": None,
        "selection_se": None,
        "mean": search["fitness"],
        "mean_se": search.get("fitness_se"),
    }
    if selection is not None and alone:
        row.update(
            selection_fitness=selection["fitness"],
            selection_se=selection.get("fitness_se"),
            mean=selection["fitness"],
            mean_se=selection.get("fitness_se"),
        )
    elif selection is not None:
        s = selection.get("repeats", 1)
        row.update(
            selection_fitness=selection["fitness"],
            selection_se=selection.get("fitness_se"),
            mean=(r * search["fitness"] + s * selection["fitness"]) / (r + s),
            mean_se=math.sqrt(
                (r * (search.get("fitness_se") or 0.0)) ** 2 + (s * (selection.get("fitness_se") or 0.0)) ** 2
            )
            / (r + s),
        )
    return row


def record_selection(out: str | Path, selection: dict) -> tuple[list[int], float]:
    """Make the chosen mask ``best_mask.json``'s (the one fine-tuned and exported), keeping the
    search's best as ``search_best``; returns the chosen plan (mask, or levels) and its search
    fitness."""
    from ..io import atomic_write_json, read_json
    from ..searchers.space import make_space
    from .driver import BEST_MASK_FILE, plan_fields

    path = Path(out) / BEST_MASK_FILE
    best = read_json(path)
    chosen = next(r for r in selection["candidates"] if plan_key(r) == plan_key(selection))
    keys = ("mask", "levels", "lr_multipliers", "fitness", "fitness_se")
    search_best = best.get("search_best") or {k: best.get(k) for k in keys if k in best}
    plan = plan_key(chosen)
    space = make_space(best.get("space", "mask"), best.get("ladder"))
    best.update(
        mask=chosen["mask"],
        **plan_fields(space, list(plan)),
        fitness=chosen["search_fitness"],
        fitness_se=chosen["search_se"],
        search_best=search_best,
        selection=selection,
    )
    atomic_write_json(path, best)
    if plan != plan_key(search_best):
        log.info(
            "final selection: mask %s (mean %.4f) replaces the search's best %s",
            "".join(map(str, plan)),
            chosen["mean"],
            "".join(map(str, plan_key(search_best))),
        )
    return list(plan), chosen["search_fitness"]
