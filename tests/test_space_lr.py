"""``--space lr``: a level of a learning-rate ladder per unit, from the fitness to the final
fine-tune, export and report; frozen units frozen for real, resume equal to an uninterrupted run."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import layerswarm
from layerswarm.cli import main
from layerswarm.data import DataConfig
from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.errors import LayerswarmError
from layerswarm.fitness.evaluation import Evaluation, Executor
from layerswarm.fitness.mask_fitness import LevelFitness, MaskFitness
from layerswarm.io import read_json, read_jsonl
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.config import RunConfig
from layerswarm.run.search import run_search
from layerswarm.run.search_config import AnswerConfig, SearchConfig, SearcherConfig, SelectionConfig
from layerswarm.searchers import Trial
from layerswarm.speed import MemoExecutor
from layerswarm.strategies import StrategyContext, create_strategy
from layerswarm.training import TrainConfig
from layerswarm.training.config import OptimConfig
from layerswarm.training.optim import plan_param_groups
from layerswarm.training.trainer import trainable_param_groups
from layerswarm.units import apply_mask

LADDER = [0.0, 0.1, 1.0, 3.0]
# one SGD step on all 80 training images, no momentum or decay: the step is -lr x m x gradient
ONE_STEP = TrainConfig(
    epochs=1,
    optim=OptimConfig(
        batch_size=80, lr=0.1, momentum=0.0, weight_decay=0.0, optimizer="sgd", schedule="constant", warmup_epochs=0
    ),
)


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _unit_keys(model, unit) -> set[str]:
    keys = set(unit.params)
    for path in unit.modules:
        keys |= {f"{path}.{k}" for k in model.get_submodule(path).state_dict()}
    return keys


def test_a_plan_trains_each_unit_at_lr_times_its_multiplier(digits16):
    """From the same weights the first gradient is the same, so one step moves a unit at x3 three
    times as far as at x1; the head keeps the run's rate; a frozen unit stays bit-identical."""
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), digits16.num_classes, ONE_STEP)
    evaluate = MaskFitness(bundle, digits16.for_search(), ONE_STEP)
    start = _state(bundle.reset())
    n = len(bundle.units)
    moved = {}
    for rate in (1.0, 3.0):
        plan = [0.0, rate] + [1.0] * (n - 2)
        evaluate(plan)
        after = _state(bundle.model)
        moved[rate] = {k: after[k] - start[k] for k in after if after[k].is_floating_point()}
        frozen = _unit_keys(bundle.model, bundle.units[0])
        assert all(torch.equal(after[k], start[k]) for k in frozen), "a frozen unit changed"
    scaled = bundle.units[1].params
    assert any(moved[1.0][k].abs().max() > 0 for k in scaled)
    for k in scaled:
        assert torch.allclose(moved[3.0][k], 3 * moved[1.0][k], rtol=1e-3, atol=1e-7), k
    head = [k for k, _ in bundle.model.named_parameters() if k.startswith(tuple(f"{h}." for h in bundle.info.head))]
    for k in head:  # the head's step is the run's, whatever the units' rates
        assert torch.allclose(moved[3.0][k], moved[1.0][k], rtol=1e-4, atol=1e-7), k


def test_a_mask_is_the_plan_of_zeros_and_ones(digits16):
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), digits16.num_classes, ONE_STEP)
    model = bundle.reset()
    mask = [0, 1, 0, 1, 1, 0]
    apply_mask(model, bundle.units, mask)
    groups = plan_param_groups(model, bundle.units, [float(b) for b in mask], 0.1)
    assert [[id(p) for p in g["params"]] for g in groups] == [
        [id(p) for p in trainable_param_groups(model)[0]["params"]]
    ]
    groups = plan_param_groups(model, bundle.units, [0, 3, 0, 0.1, 1, 0], 0.1)
    assert [(g.get("lr"), g.get("lr_multiplier")) for g in groups] == [
        (None, None),
        (0.1 * 0.1, 0.1),
        (0.1 * 3, 3.0),
    ]
    assert [id(p) for p in groups[2]["params"]] == [
        id(p) for n, p in model.named_parameters() if n in bundle.units[1].params
    ]
    evaluate = MaskFitness(bundle, digits16.for_search(), ONE_STEP)
    as_levels = LevelFitness(evaluate, (0.0, 1.0))
    assert as_levels([0, 1, 0, 1, 1, 0]).fitness == evaluate(mask).fitness
    with pytest.raises(LayerswarmError, match="number >= 0"):
        evaluate([0, -1, 0, 1, 1, 0])


class _Counting(Executor):
    def __init__(self) -> None:
        self.plans: list[list[int]] = []

    def run(self, trials):
        for t in trials:
            self.plans.append(t.unit_levels)
            yield t, Evaluation(fitness=float(sum(t.unit_levels)), epochs=[{"val_accuracy": 0.5}])


def test_the_memo_keys_on_levels_not_on_the_mask():
    inner = _Counting()
    memo = MemoExecutor(inner, default_epochs=1)
    same_mask = [
        Trial(number=i, generation=0, index=i, mask=[0, 1], levels=levels)
        for i, levels in enumerate([[0, 1], [0, 3], [0, 3]])
    ]
    fitness = [ev.fitness for _, ev in memo.run(same_mask)]
    assert inner.plans == [[0, 1], [0, 3]] and fitness == [1.0, 3.0, 3.0]
    resumed = MemoExecutor(_Counting(), default_epochs=1)
    resumed.remember([{"mask": [0, 1], "levels": [0, 3], "fitness": 0.5, "val_curve": [0.5]}])
    assert [ev.info.get("memo") for _, ev in resumed.run(same_mask[1:2])] == [True]
    assert [ev.info.get("memo") for _, ev in resumed.run(same_mask[:1])] == [None]


def test_the_mask_strategy_trains_a_best_mask_json_with_its_multipliers(digits16, tmp_path):
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), digits16.num_classes, ONE_STEP)
    path = tmp_path / "best_mask.json"
    path.write_text(json.dumps({"mask": [0, 1, 1, 0, 1, 1], "lr_multipliers": [0, 0.1, 1, 0, 3, 1]}))
    bundle.reset()
    plan = create_strategy("mask", {"mask_file": str(path)}).plan(
        StrategyContext(bundle, digits16.for_search(), ONE_STEP)
    )
    assert plan.mask == [0, 1, 1, 0, 1, 1] and plan.info["lr_multipliers"] == [0, 0.1, 1, 0, 3, 1]
    assert sorted(g.get("lr_multiplier", 1.0) for g in plan.param_groups) == [0.1, 1.0, 3.0]
    with pytest.raises(LayerswarmError, match="0 exactly where"):
        create_strategy("mask", {"mask": [0, 1, 1, 0, 1, 1], "lr_multipliers": [1, 1, 1, 0, 1, 1]}).plan(
            StrategyContext(bundle, digits16.for_search(), ONE_STEP)
        )


TINY = [
    "search",
    "--model",
    "test_efficientnet",
    "--weights",
    "none",
    "--data",
    "digits",
    "--image-size",
    "16",
    "--train-per-class",
    "8",
    "--val-per-class",
    "4",
    "--batch-size",
    "16",
    "--lr",
    "0.1",
    "--fitness-epochs",
    "1",
    "--final-epochs",
    "1",
    "--quiet",
]


@pytest.fixture(scope="module")
def lr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lr") / "run"
    code = main(
        [
            *TINY,
            "--space",
            "lr",
            "--ladder",
            ",".join(f"{r:g}" for r in LADDER),
            "--searcher",
            "random",
            "--budget",
            "8",
            "--init",
            "baselines",
            "--baselines",
            "none",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_search_space_lr_end_to_end(lr_run, capsys):
    out = lr_run
    config = read_json(out / "config.json")
    assert config["search"]["method"]["space"] == "lr" and config["search"]["method"]["ladder"] == LADDER
    records = read_jsonl(out / "evaluations.jsonl")
    assert records and all(r["mask"] == [int(v > 0) for v in r["levels"]] for r in records)
    assert {v for r in records for v in r["levels"]} == {0, 1, 2, 3}, "the search never used some levels"
    best = read_json(out / "best_mask.json")
    top = max(records, key=lambda r: r["fitness"])  # ties: the first asked, as the searcher keeps
    assert best["levels"] == top["levels"] and best["mask"] == top["mask"]
    assert best["lr_multipliers"] == [LADDER[v] for v in best["levels"]]
    assert (best["space"], best["ladder"]) == ("lr", LADDER)
    final = read_json(out / "final" / "metrics.json")
    assert final["mask"] == best["mask"] and final["lr_multipliers"] == best["lr_multipliers"]
    # the final fine-tune froze the frozen units for real: their weights are the starting ones
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, TrainConfig())
    start, saved = _state(bundle.reset(0)), load_file(str(out / "final" / "model.safetensors"))
    frozen = [u for u, b in zip(bundle.units, best["mask"], strict=True) if not b]
    trained = [u for u, b in zip(bundle.units, best["mask"], strict=True) if b]
    assert frozen and trained, "the test needs a plan with both"
    assert all(torch.equal(saved[k], start[k]) for u in frozen for k in u.params)
    assert all(not torch.equal(saved[k], start[k]) for u in trained for k in u.params[:1])
    assert "fine-tuned at lr x" in (out / "report.html").read_text()  # the report's units table


def test_export_and_param_groups_follow_the_multipliers(lr_run, capsys):
    out = lr_run
    best = read_json(out / "best_mask.json")
    assert main(["export", str(out)]) == 0
    assert "lr multipliers per unit" in capsys.readouterr().out
    spec = read_json(out / "mask_export.json")
    assert spec["lr_multipliers"] == best["lr_multipliers"]
    assert [g["lr_multiplier"] for g in spec["param_groups"]] == sorted(
        {1.0, *(r for r in best["lr_multipliers"] if r)}
    )
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, TrainConfig())
    model = bundle.model
    expected = {n: r for u, r in zip(bundle.units, best["lr_multipliers"], strict=True) for n in u.params if r}
    expected |= {n: 1.0 for n, _ in model.named_parameters() if not any(n in u.params for u in bundle.units)}
    names = {id(p): n for n, p in model.named_parameters()}
    for source in (out / "mask_export.json", out / "best_mask.json", out):
        groups = layerswarm.param_groups(model, source, lr=0.05)
        got = {names[id(p)]: g["lr_multiplier"] for g in groups for p in g["params"]}
        assert got == expected, source
        assert all(g["lr"] == pytest.approx(0.05 * g["lr_multiplier"]) for g in groups)
    torch.optim.SGD(layerswarm.param_groups(model, out, lr=0.05), lr=0.05)  # what the docstring promises


def _config() -> RunConfig:
    return RunConfig(
        model=ModelConfig(name="test_efficientnet", weights="none"),
        data=DataConfig(
            data="digits", image=ImageConfig(size=16), splits=SplitConfig(train_per_class=8, val_per_class=4)
        ),
        fitness=TrainConfig(epochs=1, optim=OptimConfig(batch_size=16, lr=0.1)),
        final=TrainConfig(epochs=1, optim=OptimConfig(batch_size=16, lr=0.1)),
        search=SearchConfig(
            method=SearcherConfig(
                name="pso",
                options={"particles": 3, "generations": 3},
                space="lr",
                ladder=LADDER,
                init="baselines",
                patience=0,
            ),
            selection=SelectionConfig(top=2, repeats=2),
            outcome=AnswerConfig(baselines="none", answer="mask"),
        ),
    )


class _Stop(Exception):
    pass


def test_a_resumed_level_search_equals_the_uninterrupted_one(tmp_path, digits16):
    cfg = _config()
    straight = run_search(cfg, tmp_path / "straight", data=digits16, report=False)
    seen = []

    def stop_after_four(record: dict) -> None:
        seen.append(record)
        if len(seen) == 4:  # mid-generation: the baselines' batch, then one of the swarm's three
            raise _Stop

    with pytest.raises(_Stop):
        run_search(cfg, tmp_path / "resumed", data=digits16, report=False, on_evaluation=stop_after_four)
    with pytest.raises(LayerswarmError, match="search.method.ladder"):
        run_search(
            _config().replace(search=cfg.search.replace(method=cfg.search.method.replace(ladder=[0.0, 1.0, 2.0]))),
            tmp_path / "resumed",
            data=digits16,
            resume=True,
        )
    resumed = run_search(cfg, tmp_path / "resumed", data=digits16, resume=True, report=False)

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    a, b = (read_jsonl(tmp_path / d / "evaluations.jsonl") for d in ("resumed", "straight"))
    assert strip(a) == strip(b) and len({r["fitness"] for r in a}) > 1
    assert any(r.get("phase") == "selection" and "levels" in r for r in a)  # the final selection ran on plans
    assert read_json(tmp_path / "resumed" / "search_state.json") == read_json(
        tmp_path / "straight" / "search_state.json"
    )
    assert read_json(tmp_path / "resumed" / "best_mask.json") == read_json(tmp_path / "straight" / "best_mask.json")
    assert resumed["lr_multipliers"] == straight["lr_multipliers"]
    assert resumed["test_accuracy"] == straight["test_accuracy"]


def test_space_options_refuse_bad_input_in_one_line(capsys, tmp_path):
    for argv, problem in (
        (["--ladder", "0,1,3"], "--space lr"),
        (["--space", "lr", "--ladder", "0,0.3,3"], "hold 1"),
        (["--space", "lr", "--ladder", "0,x"], "not a list of numbers"),
        (
            ["--space", "lr", "--ladder", "0,0.1,0.3,1,3", "--searcher", "exhaustive"],
            "4096 plans",
        ),  # 5^6 plans
    ):
        code = main([*TINY, *argv, "--out", str(tmp_path / "o")])
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and len(err) == 1 and problem in err[0], (argv, err)
        assert not (tmp_path / "o").exists()


def test_a_study_over_the_level_space_finds_the_known_plan_and_resumes(tmp_path):
    """create_study(space="lr"): trials are ladder rates; the objective reads the rate the
    optimizer groups give each unit, so its optimum is one plan, which the study must find."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    )
    target = [3.0, 0.0, 0.1]

    def objective(trial) -> float:
        groups = trial.apply(model, base_lr=0.5)
        rate = {id(p): g["lr"] / 0.5 for g in groups for p in g["params"]}
        got = [rate.get(id(next(model[i].parameters())), 0.0) for i in range(3)]
        return -sum(abs(LADDER.index(a) - LADDER.index(b)) for a, b in zip(got, target, strict=True))

    def study(out):
        return layerswarm.create_study(
            model,
            searcher="ga",
            out=out,
            units=["0", "1", "2"],
            head=["3"],
            space="lr",
            ladder=LADDER,
            options={"trials": 40, "population": 8},
        )

    first = study(tmp_path / "s")
    first.optimize(objective, n_trials=13)
    study(tmp_path / "s").optimize(objective)  # resumed from its folder
    straight = study(tmp_path / "t")
    straight.optimize(objective)
    records = read_jsonl(tmp_path / "s" / "evaluations.jsonl")
    assert {r for rec in records for r in rec["lr_multipliers"]} == set(LADDER)
    assert [r["lr_multipliers"] for r in records] == [
        r["lr_multipliers"] for r in read_jsonl(tmp_path / "t" / "evaluations.jsonl")
    ]
    best = read_json(tmp_path / "s" / "best_mask.json")
    assert best["lr_multipliers"] == target and best["mask"] == [1, 0, 1]
    assert read_json(tmp_path / "s" / "config.json")["ladder"] == LADDER
    with pytest.raises(LayerswarmError, match="ladder"):
        layerswarm.create_study(
            model,
            searcher="ga",
            out=tmp_path / "s",
            units=["0", "1", "2"],
            head=["3"],
            space="lr",
            ladder=[0.0, 1.0],
            options={"trials": 40, "population": 8},
        )
