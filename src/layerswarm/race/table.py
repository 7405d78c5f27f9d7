"""The real-fitness table: every mask trained once, kept in a JSONL file, answered from there."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config_utils import with_defaults
from ..errors import LayerswarmError
from ..io import append_jsonl, read_jsonl


def mask_key(mask: Sequence[int]) -> str:
    """A mask as a bit string, unit 0 first: ``[1, 0, 1] -> "101"``."""
    return "".join(str(int(b)) for b in mask)


def all_masks(num_units: int) -> list[list[int]]:
    """All 2^L masks in a fixed order (binary counting, unit 0 the most significant bit)."""
    return [list(bits) for bits in itertools.product((0, 1), repeat=num_units)]


# What a fitness value depends on; search, speed and final settings do not change it.
_FITNESS_KEYS = ("model", "data", "fitness", "seed")


def _table_header(run_cfg: Any, units: list[str]) -> dict[str, Any]:
    config = run_cfg.to_dict()
    return {"kind": "header", "config": {k: config[k] for k in _FITNESS_KEYS}, "units": units}


def _fitness_part(header: dict[str, Any]) -> dict[str, Any]:
    """A stored header reduced to what fitness depends on (older files stored the whole config)."""
    from ..data import DataConfig
    from ..models.bundle import ModelConfig
    from ..training import TrainConfig

    config = with_defaults(header.get("config", {}), {"model": ModelConfig, "data": DataConfig, "fitness": TrainConfig})
    return {**header, "config": {k: config.get(k) for k in _FITNESS_KEYS}}


class FitnessTable:
    """The real fitness of masks, each trained once and kept in the JSONL file ``path``.

    ``run_cfg`` is a :class:`~layerswarm.run.search.RunConfig` (model, data, fitness epochs,
    seed); data and model are loaded once, and each new mask is one evaluation of the search's
    fitness (:func:`~layerswarm.speed.build_fitness`, exact speed-ups only). One line per mask, appended as
    it finishes, so
    an interrupted build resumes where it stopped; a file built with another configuration
    is refused.
    """

    def __init__(self, run_cfg: Any, path: str | Path) -> None:
        from ..data import load_dataset
        from ..models.bundle import build_bundle
        from ..speed import SpeedConfig, build_fitness

        self.path = Path(path)
        rows = read_jsonl(self.path)
        data = load_dataset(run_cfg.data)
        bundle = build_bundle(run_cfg.model, data.num_classes, run_cfg.fitness, seed=run_cfg.seed)
        self.units = [u.name for u in bundle.units]
        header = _table_header(run_cfg, self.units)
        if rows and _fitness_part(rows[0]) != _fitness_part(header):
            raise LayerswarmError(
                f"'{self.path}' holds a fitness table for another configuration; "
                "pass another --table path or delete that file"
            )
        if not rows:
            append_jsonl(self.path, header)
        self.table: dict[str, float] = {r["mask"]: r["fitness"] for r in rows[1:]}
        # the search's fitness with its exact speed-ups (the prefix cache): the same values, sooner
        self.evaluator = build_fitness(bundle, data.for_search(), run_cfg.fitness, SpeedConfig())
        self.on_entry: Callable[[dict], None] | None = None

    def __call__(self, mask: Sequence[int]) -> float:
        key = mask_key(mask)
        if key not in self.table:
            ev = self.evaluator([int(b) for b in mask])
            row = {"kind": "entry", "mask": key, "fitness": ev.fitness, "seconds": round(ev.seconds, 3)}
            append_jsonl(self.path, row)
            self.table[key] = ev.fitness
            if self.on_entry is not None:
                self.on_entry(row)
        return self.table[key]


def build_table(
    run_cfg: Any,
    path: str | Path,
    masks: Sequence[Sequence[int]] | None = None,
    on_entry: Callable[[dict], None] | None = None,
) -> dict[str, float]:
    """Evaluate the real fitness of ``masks`` (default: all 2^L, in binary counting order,
    so that a partial table is complete over the last units) into the JSONL file ``path``."""
    table = FitnessTable(run_cfg, path)
    table.on_entry = on_entry
    for mask in masks if masks is not None else all_masks(len(table.units)):
        table(mask)
    return dict(table.table)


def load_table(path: str | Path) -> tuple[dict[str, Any], dict[str, float]]:
    """The header (configuration, unit names) and ``{mask bits: fitness}`` of a table file."""
    rows = read_jsonl(path)
    if not rows or rows[0].get("kind") != "header":
        raise LayerswarmError(f"'{path}' is not a fitness table; build one with layerswarm race --build-table")
    return rows[0], {r["mask"]: float(r["fitness"]) for r in rows[1:] if r.get("kind") == "entry"}


def table_fitness(table: dict[str, float]) -> Callable[[list[int]], float]:
    """A fitness function answered from ``table``; a missing mask is a clear error."""

    def fitness(mask: list[int]) -> float:
        key = mask_key(mask)
        if key not in table:
            raise LayerswarmError(
                f"mask {key} is not in the fitness table; finish building it (layerswarm race --build-table)"
            )
        return table[key]

    return fitness


def pin_frozen(table: dict[str, float], num_units: int, frozen: Sequence[int]) -> dict[str, float]:
    """The sub-table over the units not in ``frozen``, those pinned to 0 (keys: free bits)."""
    bad = [u for u in frozen if not 0 <= u < num_units]
    if bad:
        raise LayerswarmError(f"frozen units {bad} are not unit indices 0..{num_units - 1}")
    free = [u for u in range(num_units) if u not in set(frozen)]
    sub = {}
    for key, value in table.items():
        if all(key[u] == "0" for u in frozen):
            sub["".join(key[u] for u in free)] = value
    return sub


def full_mask(sub_mask: Sequence[int], num_units: int, frozen: Sequence[int]) -> list[int]:
    """A searched sub-mask with the pinned-frozen units put back as 0."""
    bits = iter(sub_mask)
    return [0 if u in set(frozen) else int(next(bits)) for u in range(num_units)]
