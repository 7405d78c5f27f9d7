"""create_study: searches with the user's own objective, its records and its plans.

The objectives here never touch layerswarm's trainer: they apply the trial to the model and
score what the model then trains, against a target plan, so the optimum is known.
"""

from __future__ import annotations

import json

import pytest
import timm
import torch
import transformers
from torch import nn

import layerswarm
from layerswarm.cli import main
from layerswarm.deploy.export import apply_mask, export_mask
from layerswarm.errors import LayerswarmError
from layerswarm.io import read_json, read_jsonl
from layerswarm.report import write_report
from layerswarm.searchers import SEARCHERS
from layerswarm.study import Plan, find_units, load_plan


def tiny_bert(layers: int = 2) -> nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def tiny_timm() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("test_efficientnet", num_classes=3)


def agreement(model: nn.Module, target: list[int]):
    """An objective: the number of units whose training, as the model says after
    ``trial.apply``, agrees with ``target``; its optimum is ``target`` and nothing else."""

    def objective(trial: layerswarm.Trial) -> float:
        trial.apply(model)
        grads = {n: p.requires_grad for n, p in model.named_parameters()}
        return float(sum(grads[u.params[0]] == bool(bit) for u, bit in zip(trial.units, target, strict=True)))

    return objective


@pytest.mark.parametrize(
    "build, target",
    [
        (tiny_timm, [0, 1, 0, 1, 1, 0]),
        (tiny_bert, [0, 1, 0, 1]),
    ],
)
def test_a_study_finds_the_known_optimum_of_a_users_objective(build, target, tmp_path):
    model = build()
    study = layerswarm.create_study(
        model,
        searcher="pso",
        direction="maximize",
        out=tmp_path,
        options={"particles": 8, "generations": 10},
        seed=0,
    )
    assert len(study.units) == len(target)
    study.optimize(agreement(model, target))
    assert study.best_trial.mask == target
    assert study.best_value == len(target)
    assert len(study.trials) == 80 and study.is_done
    best = read_json(tmp_path / "best_mask.json")
    assert best["mask"] == target and best["value"] == len(target)
    assert best["lr_multipliers"] == [float(b) for b in target]
    assert load_plan(tmp_path).mask == target


def test_minimize_sees_the_smallest_value(tmp_path):
    model = tiny_bert()
    target = [1, 1, 0, 0]
    agree = agreement(model, target)
    study = layerswarm.create_study(model, searcher="exhaustive", direction="minimize", out=tmp_path)
    study.optimize(lambda trial: len(target) - agree(trial))
    assert study.best_trial.mask == target and study.best_value == 0.0
    records = read_jsonl(tmp_path / "evaluations.jsonl")
    assert all(r["fitness"] == -r["value"] for r in records)  # the searcher maximised minus the value


@pytest.mark.parametrize("searcher", sorted(SEARCHERS))
def test_every_searcher_runs_a_study(searcher):
    model = tiny_bert()
    target = [1, 0, 0, 1]
    study = layerswarm.create_study(model, searcher=searcher, budget=16, seed=1)
    study.optimize(agreement(model, target))
    values = [t.value for t in study.trials]
    assert study.is_done and 16 <= len(values) <= 20  # the budget, rounded up to whole generations
    assert study.best_value == max(values) == len(target)
    assert study.best_trial.mask == target


def test_a_failed_objective_is_recorded_and_the_study_goes_on(tmp_path):
    model = tiny_timm()
    agree = agreement(model, [0, 0, 0, 0, 1, 1])

    def objective(trial):
        if trial.mask[0]:
            raise ValueError("loss is nan")
        return agree(trial)

    study = layerswarm.create_study(model, "random", out=tmp_path, budget=12, seed=0)
    study.optimize(objective)
    records = read_jsonl(tmp_path / "evaluations.jsonl")
    failed = [r for r in records if r["mask"][0]]
    assert len(records) == 12 and failed and len(failed) < 12
    assert all(
        r["state"] == "fail" and r["fitness"] is None and r["error"] == "ValueError: loss is nan" for r in failed
    )
    assert all(t.state == "fail" for t in study.trials if t.mask[0])
    assert study.best_trial.mask[0] == 0


def test_tell_takes_values_and_refuses_misuse(tmp_path):
    model = tiny_bert()
    study = layerswarm.create_study(model, "pso", options={"particles": 2, "generations": 1})
    first, second = study.ask(), study.ask()
    with pytest.raises(LayerswarmError, match="tell trials"):
        study.ask()  # the generation is handed out: tell it first
    study.tell(first, 0.5)
    with pytest.raises(LayerswarmError, match="not running"):
        study.tell(first, 0.7)
    told = study.tell(second.number, "not a number")
    assert told.state == "fail" and "not a number" in told.error
    assert study.best_trial.number == first.number and study.best_value == 0.5
    with pytest.raises(LayerswarmError, match="budget is spent"):
        study.ask()
    with pytest.raises(LayerswarmError, match="no trial has completed"):
        layerswarm.create_study(model, "random").best_trial  # noqa: B018


def _rows(out) -> list[tuple]:
    return [
        (r["number"], r["generation"], r["particle"], r["mask"], r["value"])
        for r in read_jsonl(out / "evaluations.jsonl")
    ]


def test_a_study_resumed_from_its_folder_equals_an_uninterrupted_one(tmp_path):
    model = tiny_timm()
    objective = agreement(model, [1, 0, 0, 1, 0, 1])
    settings = {"searcher": "pso", "options": {"particles": 4, "generations": 4}, "seed": 3}
    whole = tmp_path / "whole"
    layerswarm.create_study(model, out=whole, **settings).optimize(objective)

    parts = tmp_path / "parts"
    layerswarm.create_study(model, out=parts, **settings).optimize(objective, n_trials=6)  # mid-generation

    def interrupted(trial):
        if trial.number == 9:
            raise KeyboardInterrupt
        return objective(trial)

    with pytest.raises(KeyboardInterrupt):
        layerswarm.create_study(model, out=parts, **settings).optimize(interrupted)
    resumed = layerswarm.create_study(model, out=parts, **settings)
    assert len(resumed.trials) == 9
    resumed.optimize(objective)
    assert _rows(parts) == _rows(whole)
    assert read_json(parts / "best_mask.json")["mask"] == read_json(whole / "best_mask.json")["mask"]
    with pytest.raises(LayerswarmError, match="holds a study with seed=3, not 4"):
        layerswarm.create_study(model, out=parts, **{**settings, "seed": 4})
    with pytest.raises(LayerswarmError, match="holds a study with model"):
        layerswarm.create_study(tiny_bert(), out=parts, **settings)


def test_a_folder_of_the_command_line_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": {"name": "resnet18"}}))
    with pytest.raises(LayerswarmError, match="not a study"):
        layerswarm.create_study(tiny_timm(), out=tmp_path)


def test_report_and_export_read_a_study(tmp_path, capsys):
    model = tiny_timm()
    target = [1, 1, 0, 0, 1, 0]
    study = layerswarm.create_study(model, "exhaustive", out=tmp_path)
    study.optimize(agreement(model, target))
    html = write_report(tmp_path).read_text()
    assert "".join(map(str, target)) in html and "EfficientNet" in html
    assert main(["export", str(tmp_path)]) == 0
    spec = read_json(tmp_path / "mask_export.json")
    assert spec["mask"] == target and spec["lr_multipliers"] == [float(b) for b in target]
    plan = Plan.from_mask(study.units, target, study.head)
    assert spec["frozen_modules"] == plan.frozen_modules
    fresh = tiny_timm()
    for source in (tmp_path / "mask_export.json", tmp_path / "best_mask.json"):
        assert apply_mask(fresh, source) == plan.frozen_modules
        frozen = {p for u, bit in zip(study.units, target, strict=True) if not bit for p in u.params}
        assert {n for n, p in fresh.named_parameters() if not p.requires_grad} == frozen
    assert export_mask(tmp_path) == tmp_path / "mask_export.json"


def test_units_of_any_module():
    timm_units, timm_head = find_units(tiny_timm())
    assert timm_head == ["classifier"] and timm_units[1].name == "blocks.0"
    bert_units, bert_head = find_units(tiny_bert(3))
    assert [u.name for u in bert_units] == [
        "bert.embeddings",
        "bert.encoder.layer.0",
        "bert.encoder.layer.1",
        "bert.encoder.layer.2",
        "bert.pooler",
    ]
    assert bert_head == ["classifier"]
    coarse, _ = find_units(tiny_bert(3), granularity="stage")
    assert [u.name for u in coarse] == ["bert.embeddings", "bert.encoder", "bert.pooler"]
    plain = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    assert [u.name for u in find_units(plain)[0]] == ["0", "2", "3"]

    class Wrapper(nn.Module):  # a LightningModule's self.net: split as what it wraps
        def __init__(self):
            super().__init__()
            self.net = tiny_timm()

    wrapped, head = find_units(Wrapper())
    assert [u.name for u in wrapped] == [f"net.{u.name}".replace("+", "+net.") for u in timm_units]
    assert head == ["net.classifier"]

    bert = tiny_bert()
    units, head = find_units(bert, units=["bert.embeddings", "bert.encoder.layer.*", ["bert.pooler.*"]])
    assert [len(u.params) for u in units] == [5, 32, 2] and head == ["classifier"]
    for patterns, problem in (
        (["bert.embeddings", "nothing.here"], "matches no parameter"),
        (["bert", "bert.pooler"], "matches unit 0 and unit 1"),
        (["bert.embeddings"], "is in no unit"),
    ):
        with pytest.raises(LayerswarmError, match=problem):
            find_units(bert, units=patterns)


def test_apply_freezes_keeps_frozen_modules_in_eval_and_groups_by_multiplier():
    model = tiny_timm()
    units, head = find_units(model)
    plan = Plan(units, [0.0, 0.5, 0.0, 1.0, 2.0, 0.0], head)
    groups = plan.apply(model, base_lr=0.1)
    assert [(g["lr_multiplier"], g["lr"]) for g in groups] == [(0.5, 0.05), (1.0, 0.1), (2.0, 0.2)]
    by_name = {id(p): n for n, p in model.named_parameters()}
    assert {by_name[id(p)] for p in groups[1]["params"]} == set(units[3].params) | {
        "classifier.weight",
        "classifier.bias",
    }
    frozen = {p for u, m in zip(units, plan.lr_multipliers, strict=True) if m == 0 for p in u.params}
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == frozen

    # a plain training loop that calls model.train() every step: frozen tensors, buffers
    # included, stay bit-identical; trained ones move
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    for step in range(3):
        model.train()
        x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, step % 3])
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = model.state_dict()
    frozen_keys = {k for k in before for m in plan.frozen_modules if k.startswith(f"{m}.")}
    assert frozen_keys and all(torch.equal(before[k], after[k]) for k in frozen_keys)
    assert all(
        not torch.equal(before[k], after[k]) for k in before if k.startswith("blocks.3.") and "running_mean" in k
    )
    assert all(not model.get_submodule(m).training for m in plan.frozen_modules)

    # a new plan replaces the old one's hooks: a unit it trains runs in train mode again
    Plan.from_mask(units, [1] * len(units), head).apply(model)
    model.train()
    model(torch.randn(2, 3, 16, 16))
    assert all(m.training for m in model.modules())
    with pytest.raises(LayerswarmError, match="does not fit this model"):
        plan.apply(tiny_bert())
    head_params = sum(p.numel() for p in model.get_classifier().parameters())
    assert sum(u.num_params for u in units) + head_params == sum(p.numel() for p in model.parameters())
