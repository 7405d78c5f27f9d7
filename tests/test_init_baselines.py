"""--init baselines: a search starts from the masks a user would try by hand."""

from __future__ import annotations

from layerswarm.cli import main
from layerswarm.io import read_jsonl
from layerswarm.run.search import run_search
from layerswarm.searchers import baseline_masks
from layerswarm.training.config import OptimConfig
from test_presets import TINY, captured  # noqa: F401  (the fixture)
from test_search_run import tiny_config


def test_a_search_from_the_baselines_evaluates_them_first_and_never_ends_below(tmp_path, digits16):
    cfg = tiny_config()
    cfg = cfg.replace(search=cfg.search.replace(method=cfg.search.method.replace(init="baselines")))
    result = run_search(cfg, tmp_path / "run", data=digits16, report=False)
    evals = read_jsonl(tmp_path / "run" / "evaluations.jsonl")
    units = len(result["units"])
    expected = dict(baseline_masks(units))
    marked = {e["init"]: e for e in evals if "init" in e}
    assert {k: e["mask"] for k, e in marked.items()} == expected
    # 3 particles take 3 baselines, the other 2 are one batch before the swarm's first generation
    assert [e["init"] for e in sorted(evals, key=lambda e: e["number"])[:5]] == list(expected)[3:] + list(expected)[:3]
    assert result["fitness"] >= max(e["fitness"] for e in marked.values())
    again = run_search(cfg, tmp_path / "run", data=digits16, resume=True, report=False)  # resumes as the same search
    assert again["mask"] == result["mask"] and len(read_jsonl(tmp_path / "run" / "evaluations.jsonl")) == len(evals)


def test_search_command_defaults_to_random_and_takes_baselines(tmp_path, captured):  # noqa: F811
    # the paper's start measured best (docs/concepts/defaults.md)
    assert main([*TINY, "--out", str(tmp_path / "a")]) == 0
    assert captured["cfg"].search.method.init == "random"
    assert main([*TINY, "--preset", "paper", "--out", str(tmp_path / "b")]) == 0
    assert captured["cfg"].search.method.init == "random"
    assert main([*TINY, "--init", "baselines", "--out", str(tmp_path / "c")]) == 0
    assert captured["cfg"].search.method.init == "baselines"
    assert tiny_config().search.method.init == "random"  # the library's default, and old runs' on resume: the paper's


def test_search_config_refuses_bad_values():
    import pytest

    from layerswarm.errors import LayerswarmError
    from layerswarm.run.search_config import FitnessConfig, SearcherConfig, SelectionConfig

    for make in (
        lambda: SearcherConfig(init="hand"),
        lambda: FitnessConfig(repeats=0),
        lambda: SelectionConfig(repeats=0),
        lambda: SelectionConfig(top=-1),
        lambda: FitnessConfig(steps=0),
    ):
        with pytest.raises(LayerswarmError, match="config: .* must be"):
            make()


def test_compare_pso_strategy_starts_from_the_baselines_when_asked(tmp_path, digits16):
    from layerswarm.models.bundle import ModelConfig, build_bundle
    from layerswarm.run.finetune import run_finetune
    from layerswarm.strategies import create_strategy
    from layerswarm.training import TrainConfig

    cfg = TrainConfig(epochs=1, optim=OptimConfig(batch_size=16, lr=0.05))
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), digits16.num_classes, cfg)
    options = {"particles": 3, "generations": 1, "fitness_epochs": 1, "init": "baselines"}
    metrics = run_finetune(bundle, digits16, create_strategy("pso", options), cfg, out_dir=tmp_path / "final")
    evals = read_jsonl(tmp_path / "evaluations.jsonl")
    expected = dict(baseline_masks(len(bundle.units)))
    assert {e["init"]: e["mask"] for e in evals if "init" in e} == expected
    assert metrics["search"]["fitness"] >= max(e["fitness"] for e in evals if "init" in e)
