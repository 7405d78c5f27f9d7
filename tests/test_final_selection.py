"""--final-select K: the top K masks again with fresh seeds before the final fine-tune."""

from __future__ import annotations

import json

import pytest

from layerswarm.cli import main
from layerswarm.io import read_jsonl
from layerswarm.run.search import run_search
from layerswarm.run.selection import top_masks
from test_presets import TINY, captured  # noqa: F401  (the fixture)
from test_search_run import tiny_config


def selecting(k=2, repeats=2):
    cfg = tiny_config()
    return cfg.replace(search=cfg.search.replace(selection=cfg.search.selection.replace(top=k, repeats=repeats)))


def test_top_masks_are_distinct_best_first_ties_to_the_earlier():
    records = [
        {"number": 0, "mask": [0], "fitness": 0.5},
        {"number": 1, "mask": [1], "fitness": 0.7},
        {"number": 2, "mask": [1], "fitness": 0.7},
        {"number": 3, "mask": [2], "fitness": 0.7},
        {"number": 4, "mask": [3], "fitness": 0.9, "phase": "selection"},
        {"number": 5, "mask": [4], "fitness": None},
    ]
    assert [(r["mask"], r["number"]) for r in top_masks(records, 2)] == [([1], 1), ([2], 3)]


def test_selection_reevaluates_the_top_masks_with_fresh_seeds_and_fine_tunes_the_best_mean(tmp_path, digits16):
    run = tmp_path / "run"
    result = run_search(selecting(), run, data=digits16, report=False)
    records = read_jsonl(run / "evaluations.jsonl")
    search = [r for r in records if not r.get("phase")]
    chosen = [r for r in records if r.get("phase") == "selection"]
    assert len(search) == 6 and len(chosen) == 2
    top = top_masks(records, 2)
    assert [r["mask"] for r in chosen] == [r["mask"] for r in top]
    for r in chosen:
        assert r["repeats"] == 2 and r["epochs_trained"] == 2 * 1 and r["fitness_se"] > 0  # trained, not memoised
    best = json.loads((run / "best_mask.json").read_text())
    means = {tuple(c["mask"]): c["mean"] for c in best["selection"]["candidates"]}
    for c in best["selection"]["candidates"]:
        s = next(r for r in chosen if r["mask"] == c["mask"])
        search_f = next(r for r in top if r["mask"] == c["mask"])["fitness"]
        assert c["mean"] == pytest.approx((search_f + 2 * s["fitness"]) / 3)
    assert tuple(best["mask"]) == max(means, key=means.get) and result["mask"] == best["mask"]
    assert best["search_best"]["mask"] == top[0]["mask"]
    final = json.loads((run / "final" / "metrics.json").read_text())
    assert final["mask"] == best["mask"]  # the selected mask is the one fine-tuned
    # resumed: nothing is evaluated again, the same mask is chosen
    again = run_search(selecting(), run, data=digits16, resume=True, report=False)
    assert again["mask"] == result["mask"] and len(read_jsonl(run / "evaluations.jsonl")) == len(records)


def test_a_longer_selection_trains_longer_and_ranks_by_its_own_fitness_alone(tmp_path, digits16):
    cfg = selecting(k=2, repeats=1)
    assert cfg.fitness.epochs == 1
    cfg = cfg.replace(search=cfg.search.replace(selection=cfg.search.selection.replace(epochs=3)))
    run = tmp_path / "run"
    result = run_search(cfg, run, data=digits16, report=False)
    records = read_jsonl(run / "evaluations.jsonl")
    chosen = [r for r in records if r.get("phase") == "selection"]
    assert len(chosen) == 2
    for r in chosen:  # three epochs each, validated after every one, not the search's one
        assert r["epochs_trained"] == 3 and len(r["val_curve"]) == 3
    assert max(r["epochs_trained"] for r in records if not r.get("phase")) == 1  # (0: a memo hit)
    best = json.loads((run / "best_mask.json").read_text())
    assert best["selection"]["select_epochs"] == 3
    scores = {}
    for c in best["selection"]["candidates"]:  # the 3-epoch fitness alone: the 1-epoch one measures something else
        s = next(r for r in chosen if r["mask"] == c["mask"])
        assert c["mean"] == s["fitness"] and c["mean_se"] == s["fitness_se"]
        scores[tuple(c["mask"])] = c["mean"]
    assert tuple(result["mask"]) == max(scores, key=scores.get)
    assert json.loads((run / "final" / "metrics.json").read_text())["mask"] == best["mask"]


def test_selection_off_is_the_search_best(tmp_path, digits16):
    result = run_search(selecting(k=0), tmp_path / "run", data=digits16, report=False)
    assert not [r for r in read_jsonl(tmp_path / "run" / "evaluations.jsonl") if r.get("phase")]
    assert "selection" not in json.loads((tmp_path / "run" / "best_mask.json").read_text())
    assert result["mask"] == json.loads((tmp_path / "run" / "best_mask.json").read_text())["mask"]


def test_cli_defaults_off_and_takes_k_and_repeats(tmp_path, captured):  # noqa: F811
    # off: the swarm without it measured best (docs/concepts/defaults.md)
    assert main([*TINY, "--out", str(tmp_path / "a")]) == 0
    assert captured["cfg"].search.selection.top == 0
    assert main([*TINY, "--final-select", "3", "--out", str(tmp_path / "b")]) == 0
    assert (captured["cfg"].search.selection.top, captured["cfg"].search.selection.repeats) == (3, 1)
    assert main([*TINY, "--final-select", "5", "--select-repeats", "2", "--out", str(tmp_path / "c")]) == 0
    assert (captured["cfg"].search.selection.top, captured["cfg"].search.selection.repeats) == (5, 2)
    assert captured["cfg"].search.selection.epochs is None  # the fitness budget
    assert main([*TINY, "--final-select", "3", "--select-epochs", "4", "--out", str(tmp_path / "d")]) == 0
    assert captured["cfg"].search.selection.epochs == 4


def test_the_report_shows_the_selection_apart_from_the_search(tmp_path, digits16):
    from layerswarm.report import write_report
    from layerswarm.report.loader import load_run

    run = tmp_path / "run"
    run_search(selecting(), run, data=digits16, report=False)
    record = load_run(run, run)
    assert len(record.evaluations) == 6 and len(record.selection) == 2
    html = write_report(run).read_text()
    assert "Final selection" in html and "(fine-tuned)" in html


def test_a_branched_run_is_the_run_with_those_settings(tmp_path, digits16):
    """benchmarks/branch_run.py: a finished search continued with patience and a longer final
    selection, run by --resume, equals the run started with those settings."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "branch_run", Path(__file__).parents[1] / "benchmarks" / "branch_run.py"
    )
    branch_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(branch_run)
    cfg = tiny_config(particles=2, generations=6)
    run_search(cfg, tmp_path / "whole", data=digits16, report=False)
    after = cfg.replace(
        search=cfg.search.replace(
            method=cfg.search.method.replace(patience=1),
            selection=cfg.search.selection.replace(top=2, epochs=2, repeats=1),
        )
    )
    kept = branch_run.branch(
        tmp_path / "whole",
        tmp_path / "branch",
        1,
        {"search.final_select": 2, "search.select_epochs": 2, "search.select_repeats": 1},
    )
    assert 0 < kept < len(read_jsonl(tmp_path / "whole" / "evaluations.jsonl"))
    branched = run_search(after, tmp_path / "branch", data=digits16, resume=True, report=False)
    direct = run_search(after, tmp_path / "direct", data=digits16, report=False)
    b, d = (read_jsonl(tmp_path / name / "evaluations.jsonl") for name in ("branch", "direct"))
    assert len([r for r in b if not r.get("phase")]) == kept  # the resume searched nothing more
    assert [(r["mask"], r["fitness"], r.get("phase")) for r in b] == [
        (r["mask"], r["fitness"], r.get("phase")) for r in d
    ]
    assert branched["mask"] == direct["mask"] and branched["test_accuracy"] == direct["test_accuracy"]
