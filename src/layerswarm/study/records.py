"""A study's run folder: the files ``layerswarm search`` writes, so that ``layerswarm report``
draws a study and ``layerswarm export`` reads it, and a new study on the folder resumes it.

* ``config.json``: the study's settings (``kind: "study"``), the command line and versions;
* ``units.json``: the units (their parameters and modules), the head and every parameter
  name, so that ``export`` needs no model;
* ``evaluations.jsonl``: one line per told trial, as the search's lines plus the objective's
  ``value`` and the plan's ``lr_multipliers``;
* ``search_state.json``: the searcher after every tell; ``best_mask.json``: the best trial.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..errors import LayerswarmError
from ..fitness.evaluation import Evaluation
from ..io import append_jsonl, atomic_write_json, read_json, read_jsonl
from ..run.driver import BEST_MASK_FILE, EVALUATIONS_FILE, STATE_FILE, record_evaluation
from ..run.rundir import CONFIG_FILE, config_record, differences, settings_only
from ..searchers import Searcher
from ..searchers import Trial as SearcherTrial
from ..units import Unit, save_mask
from .plan import Plan
from .trial import Trial

UNITS_FILE = "units.json"
STUDY_KIND = "study"


class StudyFolder:
    """Reads and writes the files of one study's ``out`` folder (each write atomic)."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out)
        if self.path.exists() and not self.path.is_dir():
            raise LayerswarmError(f"out '{self.path}' is a file: pass a folder")

    def open(self, settings: dict[str, Any], units: list[Unit], head: list[str], names: list[str]) -> bool:
        """Start the study's folder, or check that it holds this very study; True: a resume."""
        config_path = self.path / CONFIG_FILE
        if not config_path.is_file():
            self._write_units(units, head, names)
            atomic_write_json(config_path, config_record(settings, {"command": list(sys.argv)}))
            return False
        previous = read_json(config_path)
        if previous.get("kind") != STUDY_KIND:
            raise LayerswarmError(
                f"out '{self.path}' holds a run of the command line, not a study: pass another folder"
            )
        changed = differences(settings_only(previous), settings_only(settings))
        if changed:
            key, (old, new) = next(iter(changed.items()))
            raise LayerswarmError(
                f"out '{self.path}' holds a study with {key}={old!r}, not {new!r}: "
                "resume it with the same settings, or pass another folder"
            )
        saved = [u["name"] for u in read_json(self.path / UNITS_FILE)["units"]]
        if saved != [u.name for u in units]:
            raise LayerswarmError(
                f"out '{self.path}' holds a study of other units ({len(saved)}, "
                f"here {len(units)}): resume it with the same model, or pass another folder"
            )
        return True

    def _write_units(self, units: list[Unit], head: list[str], names: list[str]) -> None:
        atomic_write_json(
            self.path / UNITS_FILE,
            {
                "units": [{**u.to_dict(), "modules": list(u.modules)} for u in units],
                "head": list(head),
                "parameters": list(names),
            },
        )

    def records(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / EVALUATIONS_FILE)

    def load_searcher(self, searcher: Searcher) -> None:
        path = self.path / STATE_FILE
        if path.is_file():
            searcher.load_state_dict(read_json(path))

    def save_searcher(self, searcher: Searcher) -> None:
        atomic_write_json(self.path / STATE_FILE, searcher.state_dict())

    def append(self, trial: Trial) -> None:
        append_jsonl(self.path / EVALUATIONS_FILE, evaluation_record(trial))

    def save_best(self, best: Trial, direction: str, searcher: Searcher) -> None:
        save_mask(
            self.path / BEST_MASK_FILE,
            best.mask,
            best.units,
            fitness=best.fitness,
            value=best.value,
            direction=direction,
            lr_multipliers=list(best.lr_multipliers),
            number=best.number,
            searcher=searcher.name,
            history=searcher.history(),
        )


def evaluation_record(trial: Trial) -> dict[str, Any]:
    """The ``evaluations.jsonl`` line of a told trial: the search's keys (so the report reads
    it), the objective's ``value`` and the plan's ``lr_multipliers``."""
    asked = SearcherTrial(
        trial.number,
        trial.generation,
        trial.particle,
        trial.mask,
        trial.position,
        info=dict(trial.info),
    )
    fitness = trial.fitness if trial.fitness is not None else float("-inf")
    ev = Evaluation(fitness=fitness, seconds=trial.seconds, error=trial.error)
    return {
        **record_evaluation(asked, ev),
        "value": trial.value,
        "lr_multipliers": list(trial.lr_multipliers),
        "state": trial.state,
    }


def load_units(run_dir: str | Path) -> tuple[list[Unit], list[str], list[str]]:
    """``(units, head, parameter names)`` of the study in ``run_dir`` (its ``units.json``)."""
    path = Path(run_dir) / UNITS_FILE
    if not path.is_file():
        raise LayerswarmError(
            f"'{run_dir}' holds no study (no {UNITS_FILE}): pass the out folder of layerswarm.create_study"
        )
    data = read_json(path)
    units = [
        Unit(
            index=u["index"],
            name=u["name"],
            params=list(u["params"]),
            modules=list(u.get("modules", [])),
            num_params=int(u.get("num_params", 0)),
        )
        for u in data["units"]
    ]
    return units, list(data.get("head", [])), list(data.get("parameters", []))


def load_plan(run_dir: str | Path) -> Plan:
    """The best plan of the study in ``run_dir`` (its ``best_mask.json``), to apply to a model."""
    units, head, _ = load_units(run_dir)
    path = Path(run_dir) / BEST_MASK_FILE
    if not path.is_file():
        raise LayerswarmError(f"'{run_dir}' has no completed trial yet (no {BEST_MASK_FILE}): run the study first")
    best = read_json(path)
    return Plan(units, best.get("lr_multipliers") or [float(b) for b in best["mask"]], head)
