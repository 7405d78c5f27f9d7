"""--baselines: linear, full and last-k fine-tuned next to the searched mask, and a verdict."""

from __future__ import annotations

import json

import pytest

from layerswarm.cli import main
from layerswarm.deploy.export import export_mask
from layerswarm.deploy.predict import find_model_file
from layerswarm.errors import LayerswarmError
from layerswarm.fitness.noise import binomial_se
from layerswarm.run.answer import answer_record, choose_answer
from layerswarm.run.baselines import BASELINES_DIR, compare, describe, parse_baselines
from layerswarm.run.search import run_search
from test_presets import TINY, captured  # noqa: F401  (the fixture)
from test_search_run import tiny_config


def test_parse_baselines():
    assert parse_baselines("linear,full,last-k", 17) == [
        ("linear", "linear", {}),
        ("full", "full", {}),
        ("last-8", "last-k", {"k": 8}),
    ]  # half the units
    assert parse_baselines("last-k", 3) == [("last-1", "last-k", {"k": 1})]
    assert parse_baselines("last-k:2, l2sp", 17) == [("last-2", "last-k", {"k": 2}), ("l2sp", "l2sp", {})]
    assert parse_baselines("none") == [] and parse_baselines("") == []
    # NAME:VALUE sets a strategy's primary option, and names the baseline after it
    assert parse_baselines("discriminative:0.65,lp-ft,l2sp:0.1", 17) == [
        ("discriminative-0.65", "discriminative", {"decay": 0.65}),
        ("lp-ft", "lp-ft", {}),
        ("l2sp-0.1", "l2sp", {"alpha": 0.1}),
    ]
    for bad in ("linaer", "full:3", "last-k:x", "discriminative:steep", "lp-ft:1"):
        with pytest.raises(LayerswarmError):
            parse_baselines(bad, 17)


def test_compare_gives_chance_noise_and_one_verdict():
    summary = compare(0.80, {"linear": {"test_accuracy": 0.70}, "full": {"test_accuracy": 0.79}}, 10, 2000)
    assert summary["chance"] == 0.1 and summary["best_baseline"] == "full" and summary["verdict"] == "tied"
    assert summary["accuracies"]["search"]["se"] == pytest.approx(binomial_se(0.80, 2000))
    assert compare(0.85, {"full": {"test_accuracy": 0.79}}, 10, 2000)["verdict"] == "won"
    assert compare(0.70, {"full": {"test_accuracy": 0.79}}, 10, 2000)["verdict"] == "lost"
    lines = describe(summary)
    assert "chance 0.1000" in lines[0] and lines[-1].startswith(
        "the search tied within noise against the best baseline, full"
    )


def test_a_search_fine_tunes_its_baselines_the_same_way_and_resumes(tmp_path, digits16):
    cfg = tiny_config()
    cfg = cfg.replace(search=cfg.search.replace(outcome=cfg.search.outcome.replace(baselines="linear,full,last-k:2")))
    run = tmp_path / "run"
    result = run_search(cfg, run, data=digits16)
    units = len(result["units"])
    final = json.loads((run / "final" / "metrics.json").read_text())
    for name, mask in (("linear", [0] * units), ("full", [1] * units), ("last-2", [0] * (units - 2) + [1, 1])):
        metrics = json.loads((run / "baselines" / name / "final" / "metrics.json").read_text())
        assert metrics["mask"] == mask and len(metrics["epochs"]) == len(final["epochs"]) == cfg.final.epochs
        assert result["baselines"]["accuracies"][name]["test_accuracy"] == metrics["test_accuracy"]
    summary = json.loads((run / "baselines" / "summary.json").read_text())
    assert summary == result["baselines"] and summary["test_images"] == len(digits16.test)
    assert summary["accuracies"]["search"]["test_accuracy"] == result["test_accuracy"] and summary["chance"] == 0.1
    # the same split and seed: the full baseline is the final fine-tune of the all-ones mask
    if result["mask"] == [1] * units:
        assert summary["accuracies"]["full"]["test_accuracy"] == result["test_accuracy"]
    html = (run / "report.html").read_text()
    assert "Search against the baselines" in html and summary["verdict"] in html.replace("tied within noise", "tied")
    # resumed: the finished baselines are read back, not trained again
    stamp = (run / "baselines" / "linear" / "final" / "metrics.json").stat().st_mtime_ns
    again = run_search(cfg, run, data=digits16, resume=True, report=False)
    assert again["baselines"] == result["baselines"]
    assert (run / "baselines" / "linear" / "final" / "metrics.json").stat().st_mtime_ns == stamp


def test_cli_prints_the_comparison_and_the_verdict(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                *TINY,
                "--searcher",
                "pso",
                "--particles",
                "2",
                "--generations",
                "1",
                "--fitness-epochs",
                "1",
                "--final-epochs",
                "1",
                "--final-select",
                "0",
                "--init",
                "random",
                "--baselines",
                "linear,last-k:1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "linear" in printed and "last-1" in printed and "chance 0.1000" in printed and "the search " in printed


def test_cli_default_and_paper_preset(tmp_path, captured):  # noqa: F811
    assert main([*TINY, "--out", str(tmp_path / "a")]) == 0
    assert captured["cfg"].search.outcome.baselines == "linear,full,last-k"
    assert captured["cfg"].search.outcome.answer == "validation"
    assert main([*TINY, "--preset", "paper", "--out", str(tmp_path / "b")]) == 0
    assert captured["cfg"].search.outcome.baselines == "none" and captured["cfg"].search.outcome.answer == "mask"
    from layerswarm.run.config import RunConfig

    # the same from Python
    library, paper = RunConfig().search, RunConfig.from_preset("paper").search
    assert (library.outcome.baselines, library.outcome.answer) == ("linear,full,last-k", "validation")
    assert (paper.outcome.baselines, paper.outcome.answer) == ("none", "mask")


def test_the_answer_is_the_best_validated_candidate_never_the_best_tested():
    final = {"val_accuracy": 0.90, "test_accuracy": 0.70, "mask": [0, 1]}
    baselines = {
        "linear": {"val_accuracy": 0.80, "test_accuracy": 0.99, "mask": [0, 0]},
        "full": {"val_accuracy": 0.95, "test_accuracy": 0.60, "mask": [1, 1]},
        "last-1": {"val_accuracy": 0.95, "test_accuracy": 0.65, "mask": [0, 1]},
    }
    assert choose_answer(final, baselines) == "full"  # highest validation; a tie keeps the earlier one
    record = answer_record(final, baselines, BASELINES_DIR)
    assert record["model_dir"] == "baselines/full/final" and record["mask"] == [1, 1]
    assert record["test_accuracy"] == 0.60 and record["validation"]["search"] == 0.90
    assert choose_answer({**final, "val_accuracy": 0.95}, baselines) == "search"  # a tie keeps the searched mask
    assert choose_answer(final, {}) == "search"
    assert answer_record(final, {"linear": baselines["linear"]}, BASELINES_DIR)["model_dir"] == "final"


def test_answer_validation_names_the_best_validated_model_and_predict_and_export_follow_it(tmp_path, digits16):
    cfg = tiny_config()
    cfg = cfg.replace(
        search=cfg.search.replace(outcome=cfg.search.outcome.replace(baselines="linear,full", answer="validation"))
    )
    run = tmp_path / "run"
    result = run_search(cfg, run, data=digits16, report=False)
    final = json.loads((run / "final" / "metrics.json").read_text())
    vals = {"search": final["val_accuracy"]}
    for name in ("linear", "full"):
        vals[name] = json.loads((run / "baselines" / name / "final" / "metrics.json").read_text())["val_accuracy"]
    best = max(vals.values())
    expected = next(name for name, val in vals.items() if val == best)  # the first of the best
    answer = json.loads((run / "answer.json").read_text())
    assert answer == result["baselines"]["answer"] and answer["answer"] == expected and answer["validation"] == vals
    model_dir = run / answer["model_dir"]
    assert find_model_file(run) == model_dir / "model.safetensors"
    exported = json.loads(export_mask(run, tmp_path / "mask.json").read_text())
    assert exported["mask"] == json.loads((model_dir / "metrics.json").read_text())["mask"]
    assert describe(result["baselines"])[-1].startswith("answer: ")
    # resumed with --answer mask (the paper's): the searched mask's model answers again
    run_search(
        cfg.replace(search=cfg.search.replace(outcome=cfg.search.outcome.replace(answer="mask"))),
        run,
        data=digits16,
        resume=True,
        report=False,
    )
    assert not (run / "answer.json").exists() and find_model_file(run) == run / "final" / "model.safetensors"
    run_search(cfg, run, data=digits16, resume=True, report=False)  # answered again, then without baselines
    assert (run / "answer.json").is_file()
    run_search(
        cfg.replace(search=cfg.search.replace(outcome=cfg.search.outcome.replace(baselines="none"))),
        run,
        data=digits16,
        resume=True,
        report=False,
    )
    assert not (run / "answer.json").exists()


def test_predict_takes_the_answer_model_and_never_another_silently(tmp_path):
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "final" / "model.safetensors").write_bytes(b"searched")
    (run / "answer.json").write_text(json.dumps({"answer": "full", "model_dir": "baselines/full/final"}))
    with pytest.raises(LayerswarmError, match="which is missing"):  # not the searched mask's model instead
        find_model_file(run)
    (run / "baselines" / "full" / "final").mkdir(parents=True)
    (run / "baselines" / "full" / "final" / "model.safetensors").write_bytes(b"full")
    assert find_model_file(run) == run / "baselines" / "full" / "final" / "model.safetensors"
    assert find_model_file(run / "final") == run / "final" / "model.safetensors"  # a model folder itself


def test_the_baselines_of_a_warm_head_search_start_from_a_fresh_head(tmp_path, digits16):
    """--head-init warm changes the search and its final, not the hand picks: full fine-tuning starts
    from a random head as published (a warm one would be LP-FT under another name), LP-FT fits its own."""
    cfg = tiny_config()
    warm = cfg.final.replace(optim=cfg.final.optim.replace(head_init="warm"))
    cfg = cfg.replace(
        final=warm,
        search=cfg.search.replace(outcome=cfg.search.outcome.replace(baselines="full,lp-ft")),
    )
    run = tmp_path / "run"
    run_search(cfg, run, data=digits16)
    final = json.loads((run / "final" / "metrics.json").read_text())
    full = json.loads((run / "baselines" / "full" / "final" / "metrics.json").read_text())
    lp_ft = json.loads((run / "baselines" / "lp-ft" / "final" / "metrics.json").read_text())
    assert "head_l2" in final  # the searched plan's final did start from the fitted head
    assert "head_l2" not in full and full["mask"] == lp_ft["mask"]
    assert full["epochs"][0]["train_loss"] != lp_ft["epochs"][0]["train_loss"]
