"""Each strategy does what its name says, on a tiny model and tiny real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layerswarm.cli import main
from layerswarm.errors import LayerswarmError
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.finetune import run_finetune
from layerswarm.strategies import STRATEGIES, StrategyContext, create_strategy
from layerswarm.strategies.child_tuning import fisher_information, top_fraction_masks
from layerswarm.strategies.groups import head_param_names, pretrained_named_params
from layerswarm.training import TrainConfig, fit
from layerswarm.training.config import AugmentConfig, OptimConfig

CFG = TrainConfig(
    epochs=1,
    optim=OptimConfig(batch_size=16, lr=0.05, momentum=0.0, weight_decay=0.0),
    augmentation=AugmentConfig(policy="none"),
)


def _bundle(data, cfg=CFG, name="test_efficientnet", weights="none", seed=0):
    return build_bundle(ModelConfig(name=name, weights=weights), data.num_classes, cfg, seed=seed)


def _plan(strategy, bundle, data, cfg=CFG, seed=0, out_dir=None):
    bundle.reset()
    return strategy.plan(StrategyContext(bundle, data.for_search(), cfg, seed=seed, out_dir=out_dir))


def _fit(bundle, data, plan, cfg=CFG, on_epoch=None):
    return fit(
        bundle.model,
        data.train,
        data.val,
        cfg,
        bundle.transform,
        frozen=plan.frozen,
        param_groups=plan.param_groups,
        hooks=plan.hooks,
        on_epoch=on_epoch,
    )


def _unit_state(model, unit):
    """A unit's parameters and its modules' buffers (BatchNorm statistics)."""
    state = model.state_dict()
    names = set(unit.params) | {f"{m}.{k}" for m in unit.modules for k in model.get_submodule(m).state_dict()}
    return {k: state[k].clone() for k in names}


def _changed(before, after):
    return any(not torch.equal(before[k], after[k]) for k in before)


def test_every_issue_strategy_is_registered():
    expected = {
        "scratch",
        "linear",
        "full",
        "last-k",
        "first-k",
        "random-mask",
        "mask",
        "gradual",
        "discriminative",
        "l2sp",
        "child-f",
        "child-d",
        "pso",
    }
    assert expected <= set(STRATEGIES)


def test_scratch_uses_random_weights_and_trains_everything(digits16):
    strategy = create_strategy("scratch")
    assert strategy.weights == "none"
    bundle = _bundle(digits16)
    plan = _plan(strategy, bundle, digits16)
    assert plan.frozen == [] and all(p.requires_grad for p in bundle.model.parameters())


@pytest.mark.parametrize(
    ("name", "k", "expected"), [("last-k", 2, [0, 0, 0, 0, 1, 1]), ("first-k", 2, [1, 1, 0, 0, 0, 0])]
)
def test_block_strategies_train_exactly_their_block(digits16, name, k, expected):
    bundle = _bundle(digits16)
    plan = _plan(create_strategy(name, {"k": k}), bundle, digits16)
    assert plan.mask == expected
    before = [_unit_state(bundle.model, u) for u in bundle.units]
    _fit(bundle, digits16, plan)
    for unit, bit, b in zip(bundle.units, expected, before, strict=True):
        assert _changed(b, _unit_state(bundle.model, unit)) == bool(bit), unit.name


def test_block_k_out_of_range_is_a_one_line_error(digits16):
    bundle = _bundle(digits16)
    with pytest.raises(LayerswarmError, match="outside 0..6"):
        _plan(create_strategy("last-k", {"k": 7}), bundle, digits16)


def test_random_mask_is_the_papers_uniform_draw(digits16):
    bundle = _bundle(digits16)
    n = len(bundle.units)
    masks = {}
    for seed in range(6):
        plan = _plan(create_strategy("random-mask"), bundle, digits16, seed=seed)
        draws = np.random.default_rng(seed).random(n)
        assert plan.mask == [int(d >= 0.5) for d in draws]
        masks[seed] = tuple(plan.mask)
        for unit, bit in zip(bundle.units, plan.mask, strict=True):
            assert all(dict(bundle.model.named_parameters())[p].requires_grad == bool(bit) for p in unit.params)
    assert len(set(masks.values())) > 1  # repeats draw different masks
    fixed = create_strategy("random-mask", {"seed": 3})
    assert _plan(fixed, bundle, digits16, seed=0).mask == list(masks[3])


def test_gradual_unfreezing_opens_units_top_down_in_stages(digits16):
    cfg = CFG.replace(epochs=4)
    bundle = _bundle(digits16, cfg)
    strategy = create_strategy("gradual", {"units_per_stage": 2, "unit_lr_factor": 0.1})
    plan = _plan(strategy, bundle, digits16, cfg)
    # every parameter is in the optimizer from the start; units at a tenth of the head's lr
    groups = plan.param_groups
    assert groups[0]["lr"] == cfg.optim.lr and all(g["lr"] == pytest.approx(cfg.optim.lr * 0.1) for g in groups[1:])
    assert sum(len(g["params"]) for g in groups) == len(list(bundle.model.parameters()))
    units, model = bundle.units, bundle.model
    snapshots = [[_unit_state(model, u) for u in units]]
    head = {n: p.detach().clone() for n, p in model.named_parameters() if n in head_param_names(bundle)}
    _fit(bundle, digits16, plan, cfg, on_epoch=lambda r: snapshots.append([_unit_state(model, u) for u in units]))
    changed = [[_changed(a, b) for a, b in zip(snapshots[e], snapshots[e + 1], strict=True)] for e in range(4)]
    # epoch 1: head only; epoch 2: top 2 units; epoch 3: top 4; epoch 4: all 6 (closed ones untouched,
    # BatchNorm statistics included)
    assert changed[0] == [False] * 6
    assert changed[1] == [False] * 4 + [True] * 2
    assert changed[2] == [False] * 2 + [True] * 4
    assert changed[3] == [True] * 6
    assert plan.hooks.opened_at == [3, 3, 2, 2, 1, 1]
    assert any(not torch.equal(head[n], p) for n, p in model.named_parameters() if n in head)


def test_gradual_default_opens_everything_by_the_last_epoch(digits16):
    cfg = CFG.replace(epochs=3)
    bundle = _bundle(digits16, cfg)
    plan = _plan(create_strategy("gradual"), bundle, digits16, cfg)
    _fit(bundle, digits16, plan, cfg)
    assert plan.hooks.opened_at == [2, 2, 2, 1, 1, 1]


def test_discriminative_rates_per_parameter_group(digits16):
    bundle = _bundle(digits16)
    plan = _plan(create_strategy("discriminative", {"decay": 0.5}), bundle, digits16)
    model, units = bundle.model, bundle.units
    names = {id(p): n for n, p in model.named_parameters()}
    head, *unit_groups = plan.param_groups
    assert head["lr"] == CFG.optim.lr and {names[id(p)] for p in head["params"]} == set(head_param_names(bundle))
    for j, (unit, group) in enumerate(zip(units, unit_groups, strict=True)):
        assert group["lr"] == pytest.approx(CFG.optim.lr * 0.5 ** (len(units) - j))
        assert [names[id(p)] for p in group["params"]] == unit.params
    # the optimizer the trainer builds carries those rates
    seen = []
    _fit(bundle, digits16, plan, on_epoch=lambda r: seen.append(r["lr"]))
    assert seen == [CFG.optim.lr]


@pytest.mark.parametrize("name", ["gradual", "discriminative"])
def test_the_head_learns_at_the_recipes_head_rate_unless_given(digits16, name):
    """Under a recipe with a head multiplier (bert: 20x) the new head of these strategies learns
    at lr x head_lr_mult like every strategy's head, and the units keep their rates below it."""
    cfg = CFG.replace(optim=CFG.optim.replace(head_lr_mult=20.0))
    bundle = _bundle(digits16, cfg)
    head, *units = _plan(create_strategy(name), bundle, digits16, cfg).param_groups
    assert head["lr"] == pytest.approx(cfg.optim.lr * 20.0)
    assert all(g["lr"] < head["lr"] for g in units)
    given, *_ = _plan(create_strategy(name, {"head_lr": 0.003}), bundle, digits16, cfg).param_groups
    assert given["lr"] == 0.003
    # the optimizer the trainer builds carries it, not multiplied again (it multiplies only groups
    # without a rate of their own)
    seen = []
    _fit(
        bundle,
        digits16,
        _plan(create_strategy(name), bundle, digits16, cfg),
        cfg,
        on_epoch=lambda r: seen.append(r["lr"]),
    )
    assert seen == [pytest.approx(cfg.optim.lr * 20.0)]


def test_l2sp_gradient_is_alpha_times_distance_and_replaces_weight_decay(digits16):
    bundle = _bundle(digits16)
    plan = _plan(create_strategy("l2sp", {"alpha": 0.3, "beta": 0.05}), bundle, digits16)
    assert all(g["weight_decay"] == 0.0 for g in plan.param_groups)
    model = bundle.model
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.zero_grad(set_to_none=True)
    plan.hooks.penalty(model).backward()
    head = set(head_param_names(bundle))
    for name, p in model.named_parameters():
        if name in head:
            expected = 0.05 * p.detach()
        else:
            expected = 0.3 * (p.detach() - bundle.initial_state[name])
        torch.testing.assert_close(p.grad, expected, msg=name)


def test_l2sp_penalty_is_zero_at_the_pretrained_point_without_head(digits16):
    bundle = _bundle(digits16)
    plan = _plan(create_strategy("l2sp", {"alpha": 1.0, "beta": 0.0}), bundle, digits16)
    assert plan.hooks.penalty(bundle.model).item() == 0.0


def test_child_f_updates_about_p_f_of_the_weights_per_step(digits16):
    cfg = CFG.replace(epochs=1, optim=CFG.optim.replace(batch_size=len(digits16.train)))  # one step
    bundle = _bundle(digits16, cfg)
    plan = _plan(create_strategy("child-f", {"p_f": 0.3}), bundle, digits16, cfg)
    named = pretrained_named_params(bundle.model, bundle)
    # the hook keeps a Bernoulli(p) subset of each gradient, scaled by 1/p
    for _, p in named:
        p.grad = torch.ones_like(p)
    plan.hooks.after_backward(bundle.model)
    values = torch.cat([p.grad.flatten() for _, p in named])
    kept_values = values[values != 0]
    torch.testing.assert_close(kept_values, torch.full_like(kept_values, 1 / 0.3))
    assert (values != 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    # one SGD step (no momentum, no decay) moves about 30% of the pretrained weights
    before = {n: p.detach().clone() for n, p in named}
    _fit(bundle, digits16, plan, cfg)
    moved = torch.cat([(p.detach() != before[n]).flatten() for n, p in named if p.grad is not None])
    had_grad = torch.cat([(p.grad != 0).flatten() for _, p in named if p.grad is not None])
    assert moved.float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert not (moved & ~had_grad).any()


def test_child_d_fisher_is_mean_squared_gradient_over_training_data(digits16):
    bundle = _bundle(digits16)
    model = bundle.reset()
    named = pretrained_named_params(model, bundle)
    fisher = fisher_information(model, named, digits16.train, bundle.transform, batch_size=40)
    # by hand: two batches of 40, squared batch gradients averaged, model in eval mode
    model.eval()
    acc = [torch.zeros_like(p) for _, p in named]
    for start in (0, 40):
        model.zero_grad()
        x = bundle.transform(digits16.train.images[start : start + 40], train=False)
        F.cross_entropy(model(x), digits16.train.labels[start : start + 40]).backward()
        for a, (_, p) in zip(acc, named, strict=True):
            a += p.grad**2
    for f, a in zip(fisher, acc, strict=True):
        torch.testing.assert_close(f, a / 2)
    masks = top_fraction_masks(fisher, 0.25)
    kept = torch.cat([m.flatten() for m in masks]).bool()
    flat = torch.cat([f.flatten() for f in fisher])
    assert kept.float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert flat[kept].min() >= flat[~kept].max()


def test_child_d_updates_only_its_child_network(digits16):
    # weight decay and momentum on: they would move masked weights if only the gradient were masked
    cfg = CFG.replace(epochs=2, optim=CFG.optim.replace(momentum=0.9, weight_decay=5e-3))
    bundle = _bundle(digits16, cfg)
    plan = _plan(create_strategy("child-d", {"p_d": 0.2}), bundle, digits16, cfg)
    assert plan.info["child_fraction"] == pytest.approx(0.2, abs=0.01)
    named = pretrained_named_params(bundle.model, bundle)
    before = {n: p.detach().clone() for n, p in named}
    _fit(bundle, digits16, plan, cfg)
    for (name, p), mask in zip(named, plan.hooks.masks, strict=True):
        outside = mask == 0
        assert torch.equal(p.detach()[outside], before[name][outside]), name
    moved = torch.cat([(p.detach() != before[n]).flatten() for n, p in named])
    assert 0.1 < moved.float().mean().item() <= 0.2 + 0.01


def test_child_f_moves_no_weight_outside_the_steps_child_with_momentum_and_weight_decay(digits16):
    cfg = CFG.replace(
        epochs=1, optim=CFG.optim.replace(batch_size=20, momentum=0.9, weight_decay=5e-3)
    )  # several steps
    bundle = _bundle(digits16, cfg)
    plan = _plan(create_strategy("child-f", {"p_f": 0.3}), bundle, digits16, cfg)
    named = pretrained_named_params(bundle.model, bundle)
    steps, masked_moves, kept_moves = [], [], []
    after_step = plan.hooks.after_step

    def checked_after_step(model):
        before = [b.clone() for b in plan.hooks.before]
        after_step(model)
        for (_, p), keep, old in zip(named, plan.hooks.keep, before, strict=True):
            masked_moves.append(int((p.detach()[~keep] != old[~keep]).sum()))
            kept_moves.append(int((p.detach()[keep] != old[keep]).sum()))
        steps.append(1)

    plan.hooks.after_step = checked_after_step
    _fit(bundle, digits16, plan, cfg)
    assert len(steps) >= 3
    assert sum(masked_moves) == 0  # bit-identical outside each step's child
    assert sum(kept_moves) > 0  # and the child does train


def test_pso_strategy_searches_on_train_val_then_trains_its_mask(digits16, tmp_path):
    cfg = CFG.replace(epochs=1)
    bundle = _bundle(digits16, cfg)
    strategy = create_strategy("pso", {"particles": 2, "generations": 2, "fitness_epochs": 1})
    metrics = run_finetune(bundle, digits16, strategy, cfg, tmp_path / "final", seed=0)
    evaluations = [json.loads(line) for line in (tmp_path / "evaluations.jsonl").read_text().splitlines()]
    assert len(evaluations) == 4 and metrics["search"]["evaluations"] == 4
    best = json.loads((tmp_path / "best_mask.json").read_text())
    assert metrics["mask"] == best["mask"]
    assert best["fitness"] == max(e["fitness"] for e in evaluations)
    assert metrics["wall_seconds"] >= metrics["search"]["seconds"]
    # the search's fine-tunes left no trace: the final run equals a plain mask fine-tune
    again = run_finetune(bundle, digits16, create_strategy("mask", {"mask": best["mask"]}), cfg, None, seed=0)
    assert again["test_accuracy"] == metrics["test_accuracy"]
    assert again["epochs"][-1]["train_loss"] == metrics["epochs"][-1]["train_loss"]


def test_pso_search_resumes_from_its_files(digits16, tmp_path):
    cfg = CFG.replace(epochs=1)
    bundle = _bundle(digits16, cfg)
    options = {"particles": 2, "generations": 2, "fitness_epochs": 1}
    first = run_finetune(bundle, digits16, create_strategy("pso", options), cfg, tmp_path / "a" / "final")
    # interrupted after the first generation: keep only its evaluations and state
    lines = (tmp_path / "a" / "evaluations.jsonl").read_text().splitlines()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "evaluations.jsonl").write_text("\n".join(lines[:2]) + "\n")
    resumed = run_finetune(bundle, digits16, create_strategy("pso", options), cfg, tmp_path / "b" / "final")
    assert resumed["mask"] == first["mask"] and resumed["test_accuracy"] == first["test_accuracy"]
    assert (tmp_path / "b" / "evaluations.jsonl").read_text().splitlines()[:2] == lines[:2]


def test_bad_strategy_option_is_refused(digits16):
    with pytest.raises(ValueError, match="unknown"):
        create_strategy("l2sp", {"gamma": 1})
    bundle = _bundle(digits16)
    with pytest.raises(LayerswarmError, match="p_f"):
        _plan(create_strategy("child-f", {"p_f": 0.0}), bundle, digits16)


def test_strategies_command_lists_every_strategy_and_its_options(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in STRATEGIES:
        assert name in out
    assert "--option l2sp.alpha=" in out and "--option child-d.p_d=" in out
    assert main(["strategies", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {s["name"] for s in listed} == set(STRATEGIES)
    assert next(s for s in listed if s["name"] == "scratch")["weights"] == "none"


def test_linear_probe_on_an_intermediate_unit_trains_only_its_head_and_reloads(digits16, tmp_path):
    from layerswarm.deploy.predict import Predictor

    bundle = _bundle(digits16)
    cfg = CFG.replace(epochs=3, optim=CFG.optim.replace(lr=0.2))
    later = bundle.model.get_submodule(bundle.units[3].modules[0])
    calls = []
    handle = later.register_forward_hook(lambda *_: calls.append(1))
    before = {k: v.clone() for k, v in bundle.reset().state_dict().items()}
    metrics = run_finetune(bundle, digits16, create_strategy("linear", {"unit": 2}), cfg, out_dir=tmp_path, seed=0)
    handle.remove()
    assert metrics["features_from"] == bundle.units[2].name and metrics["mask"] == [0] * len(bundle.units)
    assert calls == []  # the units after the tapped one never run
    after = bundle.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # backbone and its BatchNorm statistics untouched
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert losses[-1] < losses[0]  # the new head learns
    assert not any(m._forward_hooks for m in bundle.model.modules())  # no hook left on the shared model

    # the saved probe predicts exactly what the trained one computed
    predictor = Predictor(tmp_path)
    images = digits16.test.images[:8]
    from layerswarm.models.probe import IntermediateProbe

    assert isinstance(predictor.model, IntermediateProbe) and predictor.model.tap == bundle.units[2].modules[-1]
    state = {k: v for k, v in predictor.model.state_dict().items()}
    probe = IntermediateProbe.rebuild(bundle.model, predictor.meta["probe"], digits16.num_classes)
    probe.head.load_state_dict({k[len("head.") :]: v for k, v in state.items() if k.startswith("head.")})
    with torch.no_grad():
        expected = torch.softmax(probe.eval()(bundle.transform(images, train=False)), dim=1)
    assert torch.equal(predictor.probabilities(images), expected)


def test_linear_probe_unit_out_of_range_is_a_one_line_error(digits16):
    bundle = _bundle(digits16)
    with pytest.raises(LayerswarmError, match=r"linear.unit=9 is not a unit .*6 units.*0\.\.5") as err:
        _plan(create_strategy("linear", {"unit": 9}), bundle, digits16)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad", ["abc", 2.5, True])
def test_linear_probe_unit_must_be_an_integer(bad):
    with pytest.raises(LayerswarmError, match="not a unit index"):
        create_strategy("linear", {"unit": bad})


def test_probe_pools_channels_last_outputs_over_positions():
    from layerswarm.models.probe import pool

    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(pool(x), x.mean(dim=(2, 3))) and pool(x, channels_last=True).shape == (2, 5)
    tokens = torch.randn(2, 7, 6)
    assert torch.equal(pool(tokens), tokens.mean(dim=1))
    with pytest.raises(LayerswarmError, match="pick another unit"):
        pool((x, x))


def test_linear_probe_ignores_compile_and_trains_the_same(digits16):
    """The probe's forward leaves the backbone through an exception: fit keeps it eager."""
    runs = []
    for compiled in (False, True):
        bundle = _bundle(digits16)
        cfg = CFG.replace(epochs=2, runtime=CFG.runtime.replace(compile=compiled))
        runs.append(run_finetune(bundle, digits16, create_strategy("linear", {"unit": 3}), cfg, seed=0)["epochs"])
    strip = [[{k: v for k, v in e.items() if k != "seconds"} for e in r] for r in runs]
    assert strip[0] == strip[1]
