"""--patience: a search ends after P batches without a better fitness, exactly where its
uninterrupted run without patience would have been after the same evaluations."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from layerswarm.errors import LayerswarmError
from layerswarm.io import read_jsonl
from layerswarm.run.search import run_search
from layerswarm.searchers import create_searcher
from layerswarm.searchers.patience import PatientSearcher, batches_without_gain
from test_search_run import tiny_config


def test_batches_without_gain_counts_from_the_last_rise():
    rows = [{"best_fitness": f} for f in (0.5, 0.6, 0.6, 0.7, 0.7, 0.7)]
    assert [batches_without_gain(rows[:i]) for i in range(1, 7)] == [0, 0, 1, 0, 1, 2]
    assert batches_without_gain([]) == 0


def _stop_generation(records: list[dict], patience: int) -> int | None:
    """The generation after which a run with ``patience`` stops, read from a run without it."""
    best, last, generations = float("-inf"), 0, sorted({r["generation"] for r in records})
    for g in generations:
        top = max(r["fitness"] for r in records if r["generation"] == g)
        if top > best:
            best, last = top, g
        if g - last >= patience:
            return g
    return None


def fitness_of(trial) -> float:
    """A fixed preference per unit (a mask asked again scores the same, as a memo answers it)."""
    return sum(bit * (-1) ** i / (i + 1) for i, bit in enumerate(trial.mask))


def test_a_patient_swarm_is_the_first_generations_of_the_same_swarm():
    whole = create_searcher("pso", 9, {"particles": 3, "generations": 30}, seed=4)
    patient = create_searcher("pso", 9, {"particles": 3, "generations": 30}, seed=4, patience=2)
    asked = []
    while not patient.is_done():
        batch, same = patient.ask(), whole.ask()
        assert [t.mask for t in batch] == [t.mask for t in same]
        for t, u in zip(batch, same, strict=True):
            patient.tell(t.number, fitness_of(t))
            whole.tell(u.number, fitness_of(u))
        asked.append(batch)
    assert len(asked) < 30 and not whole.is_done()  # it stopped early, the budget was not spent
    assert batches_without_gain(patient.history()) == 2 and patient.best() == whole.best()
    with pytest.raises(RuntimeError, match="no better fitness for 2"):
        patient.ask()
    resumed = create_searcher("pso", 9, {"particles": 3, "generations": 30}, seed=4, patience=2)
    resumed.load_state_dict(patient.state_dict())
    assert resumed.is_done() and resumed.best() == patient.best()


def test_patience_zero_is_the_searcher_itself_and_negative_is_refused():
    assert not isinstance(create_searcher("pso", 5, None, 0, patience=0), PatientSearcher)
    with pytest.raises(LayerswarmError, match="patience"):
        create_searcher("pso", 5, None, 0, patience=-1)


def test_a_search_run_with_patience_stops_where_its_records_say(tmp_path, digits16, caplog):
    cfg = tiny_config(particles=2, generations=8)
    run_search(cfg, tmp_path / "whole", data=digits16, report=False)
    whole = read_jsonl(tmp_path / "whole" / "evaluations.jsonl")
    stop = _stop_generation(whole, 1)
    assert stop is not None and stop < 7, "this tiny swarm must have a generation without a better fitness"
    patient = cfg.replace(search=cfg.search.replace(method=cfg.search.method.replace(patience=1)))
    with caplog.at_level("INFO", logger="layerswarm"):
        result = run_search(patient, tmp_path / "patient", data=digits16, report=False)
    assert f"search ended after {stop + 1} generations: no better fitness for the last 1 (--patience)" in caplog.text
    records = read_jsonl(tmp_path / "patient" / "evaluations.jsonl")
    prefix = [r for r in whole if r["generation"] <= stop]
    assert [(r["mask"], r["fitness"]) for r in records] == [(r["mask"], r["fitness"]) for r in prefix]
    best = max(prefix, key=lambda r: r["fitness"])  # first of equals: the searcher's strict >
    assert result["fitness"] == best["fitness"]
    # benchmarks/patience_replay.py reads the same stop and mask from the run without patience
    spec = importlib.util.spec_from_file_location(
        "patience_replay", Path(__file__).parents[1] / "benchmarks" / "patience_replay.py"
    )
    replay = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replay)
    replayed = replay.replay(tmp_path / "whole", 1)
    assert (replayed["stop"], replayed["mask"]) == (stop, "".join(map(str, result["mask"])))
    # a resume of the stopped run evaluates nothing more
    run_search(patient, tmp_path / "patient", data=digits16, resume=True, report=False)
    assert read_jsonl(tmp_path / "patient" / "evaluations.jsonl") == records
