"""Speed-ups: the exact ones change nothing (bit for bit), the approximate ones do what they say."""

from __future__ import annotations

import pytest
import torch

from layerswarm.errors import LayerswarmError
from layerswarm.executors.base import Executor
from layerswarm.fitness.mask_fitness import Evaluation, MaskFitness
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.search import RunConfig
from layerswarm.searchers.base import Trial
from layerswarm.speed import (
    EarlyStopping,
    HalvingExecutor,
    MemoExecutor,
    PrefixCache,
    SpeedConfig,
    build_fitness,
    wrap_executor,
)
from layerswarm.speed.fidelity import subset_splits
from layerswarm.training import TrainConfig, fit
from layerswarm.training.config import OptimConfig
from layerswarm.units import apply_mask

CFG = TrainConfig(epochs=2, optim=OptimConfig(batch_size=16, lr=0.05))


def _fitnesses(name, digits, masks, cfg=CFG, cache=True):
    bundle = build_bundle(ModelConfig(name=name, weights="none"), digits.num_classes, cfg)
    data = digits.for_search()
    evaluate = MaskFitness(bundle, data, cfg, cache=PrefixCache(data, bundle.transform) if cache else None)
    return [evaluate(m).epochs for m in masks], evaluate


def _strip(curves):
    return [[{k: v for k, v in r.items() if k != "seconds"} for r in c] for c in curves]


@pytest.mark.parametrize("name", ["test_efficientnet", "test_resnet"])
@pytest.mark.parametrize("augment", ["rrc", "crop-flip", "none"])
def test_prefix_cache_is_bit_exact(name, augment, digits16):
    cfg = CFG.replace(augmentation=CFG.augmentation.replace(policy=augment))
    n = len(build_bundle(ModelConfig(name=name, weights="none"), 10, cfg).units)
    masks = [
        [0] * (n // 2) + [1] * (n - n // 2),
        [0] * n,
        [0] * (n - 1) + [1],
        [1] * n,
        [0, 1] + [0] * (n - 2),
        [0] * (n // 2) + [1] * (n - n // 2),
    ]
    plain, _ = _fitnesses(name, digits16, masks, cfg, cache=False)
    cached, evaluate = _fitnesses(name, digits16, masks, cfg, cache=True)
    assert _strip(cached) == _strip(plain)  # losses and accuracies equal to the last bit
    assert evaluate.cache.levels and evaluate.cache.hits >= 1  # the cache was really used and reused
    assert len({c[-1]["train_loss"] for c in plain}) > 1  # the masks do train differently


def test_prefix_cache_falls_back_where_the_model_is_no_chain(digits16):
    """ViT adds its position embedding in code after patch_embed: no cut there, same results."""
    masks = [[0, 0, 1, 1, 1, 1, 1], [0] * 7]
    plain, _ = _fitnesses("test_vit", digits16, masks, cache=False)
    cached, evaluate = _fitnesses("test_vit", digits16, masks, cache=True)
    assert _strip(cached) == _strip(plain)
    assert not evaluate.cache.levels and evaluate.cache.verified and not any(evaluate.cache.verified.values())


def test_prefix_cache_respects_its_memory_budget(digits16):
    masks = [[0] * 6, [0, 0, 0, 1, 1, 1]]
    plain, _ = _fitnesses("test_efficientnet", digits16, masks, cache=False)
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, CFG)
    data = digits16.for_search()
    evaluate = MaskFitness(bundle, data, CFG, cache=PrefixCache(data, bundle.transform, max_mb=0))
    assert _strip([evaluate(m).epochs for m in masks]) == _strip(plain)
    assert not evaluate.cache.levels and evaluate.cache.too_big


def test_no_backward_below_the_first_trainable_unit(digits16):
    """Frozen prefix: its outputs never require grad, its backward hooks never fire, no .grad."""
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, CFG)
    model = bundle.reset()
    n = len(bundle.units)
    mask = [0, 0] + [1] * (n - 2)
    frozen = apply_mask(model, bundle.units, mask)
    prefix = [model.get_submodule(m) for u in bundle.units[:2] for m in u.modules]
    trained = [model.get_submodule(m) for m in bundle.units[2].modules]
    calls = {"prefix_backward": 0, "trained_backward": 0, "prefix_out_grad": 0}

    def count(key):
        return lambda *_: calls.__setitem__(key, calls[key] + 1)

    for m in prefix:
        m.register_full_backward_hook(count("prefix_backward"))
        m.register_forward_hook(
            lambda _m, _i, out: calls.__setitem__("prefix_out_grad", calls["prefix_out_grad"] + out.requires_grad)
        )
    for m in trained:
        m.register_full_backward_hook(count("trained_backward"))
    fit(model, digits16.train, digits16.val, CFG, bundle.transform, frozen=frozen)
    assert calls["prefix_backward"] == 0 and calls["prefix_out_grad"] == 0
    assert calls["trained_backward"] > 0
    frozen_params = [p for u in bundle.units[:2] for name in u.params for p in [model.get_parameter(name)]]
    assert all(p.grad is None for p in frozen_params)


def test_same_mask_trains_to_the_same_fitness(digits16):
    """The premise of memoisation: an evaluation is a deterministic function of the mask."""
    bundle = build_bundle(ModelConfig(name="test_resnet", weights="none"), 10, CFG)
    evaluate = MaskFitness(bundle, digits16.for_search(), CFG)
    mask = [0, 1, 0, 1, 1]
    assert _strip([evaluate(mask).epochs]) == _strip([MaskFitness(bundle, digits16.for_search(), CFG)(mask).epochs])


class FakeExecutor(Executor):
    """Fitness = sum(mask) + epochs/10, curve one point per epoch; counts what it trains."""

    def __init__(self, fail: set[tuple] | None = None):
        self.calls: list[tuple] = []
        self.fail = fail or set()

    def run(self, trials):
        for t in trials:
            epochs = t.budget_epochs or 3
            self.calls.append((tuple(t.mask), epochs))
            if tuple(t.mask) in self.fail:
                yield t, Evaluation(fitness=float("-inf"), error="boom")
                continue
            curve = [{"epoch": e + 1, "val_accuracy": sum(t.mask) + (e + 1) / 10} for e in range(epochs)]
            yield t, Evaluation(fitness=curve[-1]["val_accuracy"], epochs=curve, epochs_trained=epochs)


def _trials(masks, start=0, budget=None):
    return [
        Trial(number=start + i, generation=0, index=i, mask=list(m), budget_epochs=budget) for i, m in enumerate(masks)
    ]


def test_memo_trains_each_mask_once_and_not_failures():
    inner = FakeExecutor(fail={(1, 1)})
    memo = MemoExecutor(inner, default_epochs=3)
    first = dict((t.number, ev) for t, ev in memo.run(_trials([(0, 1), (0, 1), (1, 1)])))
    second = dict((t.number, ev) for t, ev in memo.run(_trials([(0, 1), (1, 1)], start=3)))
    assert inner.calls == [((0, 1), 3), ((1, 1), 3), ((1, 1), 3)]  # duplicates once; the failure retried
    assert first[0].fitness == first[1].fitness == second[3].fitness == pytest.approx(1.3)
    assert first[1].epochs_trained == 0 and first[1].info["memo"] and second[3].seconds == 0.0
    assert second[4].error == "boom"


def test_memo_answers_a_shorter_budget_from_a_longer_curve_only_when_allowed():
    for truncatable, calls in ((True, 1), (False, 2)):
        inner = FakeExecutor()
        memo = MemoExecutor(inner, default_epochs=3, truncatable=truncatable)
        list(memo.run(_trials([(1, 0)])))
        ((_, ev),) = list(memo.run(_trials([(1, 0)], start=1, budget=1)))
        assert ev.fitness == pytest.approx(1.1) and len(inner.calls) == calls


def test_halving_promotes_the_best_and_keeps_searcher_budgets():
    inner = FakeExecutor()
    halving = HalvingExecutor(inner, low_epochs=1, keep=0.5)
    masks = [(0, 0), (1, 1), (1, 0), (0, 0)]
    out = {t.number: ev for t, ev in halving.run(_trials(masks) + _trials([(1, 1)], start=9, budget=2))}
    assert sorted(out) == [0, 1, 2, 3, 9]
    assert out[1].fitness == pytest.approx(2.3) and out[1].epochs_trained == 4  # 1 low + 3 full epochs
    assert out[2].fitness == pytest.approx(1.3)  # ranks second of four: promoted too
    assert out[0].fitness == pytest.approx(0.1) and out[0].info["fidelity"] == 1 and out[0].epochs_trained == 1
    assert out[9].fitness == pytest.approx(2.2)  # a budget the searcher chose is left alone
    assert sorted(c for c in inner.calls if c[1] == 3) == [((1, 0), 3), ((1, 1), 3)]


def test_early_stopping_stops_only_hopeless_evaluations():
    seen = []

    def evaluate(mask, epochs=None, stop=None):
        curve = []
        for e in range(epochs or 4):
            curve.append({"epoch": e + 1, "val_accuracy": mask[0] * (0.5 + 0.1 * e)})
            if stop is not None and stop(curve[-1]):
                break
        seen.append(len(curve))
        return Evaluation(fitness=curve[-1]["val_accuracy"], epochs=curve, epochs_trained=len(curve))

    es = EarlyStopping(evaluate, margin=0.05, epochs=4)
    assert es([1]).fitness == pytest.approx(0.8) and es.best == pytest.approx(0.8)
    assert es([0]).epochs_trained == 1  # 0.0 after one epoch: more than 0.05 below 0.8
    assert es([2]).epochs_trained == 4 and es.best == pytest.approx(1.6)  # 1.0 after one epoch: goes on
    assert es([1], epochs=2).epochs_trained == 1 and es.best == pytest.approx(1.6)  # low fidelity sets no bar
    assert seen == [4, 1, 4, 1]


def test_subset_splits_are_stratified_and_seeded(digits16):
    data = digits16.for_search()
    a = subset_splits(data, 0.5, 0.5, seed=0)
    assert len(a.train) == len(data.train) // 2 and len(a.val) == len(data.val) // 2
    assert torch.bincount(a.train.labels).tolist() == [4] * 10  # 8 per class -> 4 per class
    assert torch.equal(a.train.images, subset_splits(data, 0.5, 0.5, seed=0).train.images)
    assert subset_splits(data, 1.0, 1.0, seed=0).train is data.train


@pytest.mark.parametrize(
    "bad",
    [
        {"fidelity": "magic"},
        {"halving_keep": 0.0},
        {"fitness_train_fraction": 1.5},
        {"early_stop": -0.1},
        {"cache_mb": -1},
    ],
)
def test_speed_config_refuses_bad_values(bad):
    with pytest.raises(LayerswarmError):
        SpeedConfig(**bad)


def test_run_config_round_trips_speed_and_defaults_it():
    cfg = RunConfig(speed=SpeedConfig(fidelity="halving", early_stop=0.05))
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()
    del old["speed"]  # a config.json written before the speed settings existed
    assert RunConfig.from_dict(old).speed == SpeedConfig()
    assert not SpeedConfig().approximate and SpeedConfig(fitness_train_fraction=0.5).approximate


def test_wrappers_compose_in_order(digits16):
    inner = FakeExecutor()
    ex = wrap_executor(inner, SpeedConfig(fidelity="halving"), CFG)
    assert isinstance(ex, HalvingExecutor) and isinstance(ex.inner, MemoExecutor) and ex.inner.inner is inner
    assert wrap_executor(inner, SpeedConfig.off(), CFG) is inner
    bundle = build_bundle(ModelConfig(name="test_resnet", weights="none"), 10, CFG)
    assert isinstance(build_fitness(bundle, digits16.for_search(), CFG, SpeedConfig(early_stop=0.1)), EarlyStopping)
    assert build_fitness(bundle, digits16.for_search(), CFG, SpeedConfig(prefix_cache=False)).cache is None


def test_memo_is_seeded_from_a_resumed_runs_evaluations():
    """After --resume, a mask finished before the interruption is not trained again."""
    from layerswarm.executors.base import Executor
    from layerswarm.fitness.mask_fitness import Evaluation
    from layerswarm.searchers.base import Trial
    from layerswarm.speed.memo import MemoExecutor

    class Counting(Executor):
        def __init__(self):
            self.calls = []

        def run(self, trials):
            for t in trials:
                self.calls.append(t.mask)
                yield t, Evaluation(fitness=0.5, epochs=[{"val_accuracy": 0.4}, {"val_accuracy": 0.5}])

    inner = Counting()
    memo = MemoExecutor(inner, default_epochs=2)
    memo.remember(
        [
            {"mask": [1, 0], "fitness": 0.7, "val_curve": [0.6, 0.7], "error": None},
            {"mask": [0, 1], "fitness": None, "val_curve": [], "error": "NaN loss"},  # failed: retried
            {"mask": [1, 1], "fitness": 0.3, "val_curve": [0.3], "error": None},  # stopped early: retried
        ]
    )
    trials = [Trial(i, 0, i, m) for i, m in enumerate([[1, 0], [0, 1], [1, 1]])]
    results = {t.number: ev for t, ev in memo.run(trials)}
    assert results[0].fitness == 0.7 and results[0].epochs_trained == 0
    assert inner.calls == [[0, 1], [1, 1]]


def test_validating_only_after_the_last_epoch_changes_nothing_but_the_curve(digits16, monkeypatch):
    """The exact default validates a fitness evaluation once; its fitness and training are the
    same as with a validation after every epoch, and early stopping turns the curve back on."""
    import layerswarm.training.trainer as trainer

    calls = []
    real = trainer.accuracy
    monkeypatch.setattr(trainer, "accuracy", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = CFG.replace(epochs=3)
    bundle = build_bundle(ModelConfig(name="test_resnet", weights="none"), 10, cfg)
    data, mask = digits16.for_search(), [0, 1, 0, 1, 1]
    once = build_fitness(bundle, data, cfg, SpeedConfig())(mask)
    assert len(calls) == 1
    every = build_fitness(bundle, data, cfg, SpeedConfig(val_curve=True))(mask)
    assert len(calls) == 1 + 3
    assert once.fitness == every.fitness and [e["val_accuracy"] for e in once.epochs][:2] == [None, None]
    drop = ("val_accuracy", "seconds")
    assert [{k: v for k, v in e.items() if k not in drop} for e in once.epochs] == [
        {k: v for k, v in e.items() if k not in drop} for e in every.epochs
    ]
    assert (
        SpeedConfig(early_stop=0.1).validates_every_epoch and not SpeedConfig(fidelity="halving").validates_every_epoch
    )
    memo = MemoExecutor(FakeExecutor(), 3, truncatable=True)
    memo.results[((1, 0), 3)] = Evaluation(fitness=0.5, epochs=[{"val_accuracy": None}] * 2 + [{"val_accuracy": 0.5}])
    assert memo.lookup(((1, 0), 2)) is None  # no curve point to answer a shorter budget from


@pytest.mark.slow
def test_compiled_training_matches_eager_and_keeps_frozen_units_frozen(digits16):
    """``--compile`` trains the same model (up to kernel rounding), through the same loop."""
    cfg = CFG.replace(epochs=1, augmentation=CFG.augmentation.replace(policy="none"))
    mask = [0, 0, 1, 1, 1]
    results = []
    for compiled in (False, True):
        bundle = build_bundle(ModelConfig(name="test_resnet", weights="none"), 10, cfg)
        model = bundle.reset()
        frozen = apply_mask(model, bundle.units, mask)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        history = fit(
            model,
            digits16.train,
            digits16.val,
            cfg.replace(runtime=cfg.runtime.replace(compile=compiled)),
            bundle.transform,
            frozen=frozen,
        )
        after = model.state_dict()
        prefix = [k for u in bundle.units[:2] for k in u.params]
        assert all(torch.equal(before[k], after[k]) for k in prefix)
        results.append((history.epochs[-1], after))
    (eager, w_eager), (comp, w_comp) = results
    assert comp["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-3)
    assert abs(comp["val_accuracy"] - eager["val_accuracy"]) <= 0.05
    assert max((w_eager[k].float() - w_comp[k].float()).abs().max().item() for k in w_eager) < 1e-3


def test_halving_on_real_fitness_validates_once_and_a_repeated_generation_trains_nothing(digits16):
    """Halving needs no per-epoch curve: each promoted mask's rung-1 fitness is remembered
    under its own budget, so a generation asked again is served whole by the memo."""
    from layerswarm.executors import LocalExecutor

    speed = SpeedConfig(fidelity="halving", halving_epochs=1, halving_keep=0.5)
    bundle = build_bundle(ModelConfig(name="test_resnet", weights="none"), 10, CFG)
    evaluate = build_fitness(bundle, digits16.for_search(), CFG, speed)
    ex = wrap_executor(LocalExecutor(evaluate), speed, CFG)
    masks = [[0, 1, 0, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 1, 1, 1]]
    first = {t.number: ev for t, ev in ex.run(_trials(masks))}
    promoted = [ev for ev in first.values() if len(ev.epochs) == CFG.epochs]
    assert len(promoted) == 2 and all(ev.info["continued_from"] == 1 for ev in promoted)
    # every mask one epoch, the promoted two continue from there: one more epoch each
    assert sum(ev.epochs_trained for ev in first.values()) == 4 * 1 + 2 * 1
    again = {t.number - 10: ev for t, ev in ex.run(_trials(masks, start=10))}
    assert sum(ev.epochs_trained for ev in again.values()) == 0
    assert {n: ev.fitness for n, ev in again.items()} == {n: ev.fitness for n, ev in first.items()}


@pytest.mark.parametrize("name,cache", [("test_resnet", False), ("test_efficientnet", True)])
def test_a_promoted_mask_continues_its_paused_run_bit_for_bit(name, cache, digits16):
    """Rung 1 then the rest equals the uninterrupted run: curve and every weight."""
    bundle = build_bundle(ModelConfig(name=name, weights="none"), 10, CFG)
    data = digits16.for_search()
    mask = [0, 1] + [1] * (len(bundle.units) - 2)

    def fitness(pause_mb):
        return MaskFitness(
            bundle, data, CFG, cache=PrefixCache(data, bundle.transform) if cache else None, pause_mb=pause_mb
        )

    straight = fitness(0)(mask)
    weights = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    evaluate = fitness(1024)
    low = evaluate(mask, 1)
    assert list(evaluate.paused) == [tuple(mask)] and low.epochs_trained == 1
    other = evaluate([1] * len(mask))  # another mask trains in between, on the same model
    assert other.fitness is not None
    continued = evaluate(mask)
    assert continued.info["continued_from"] == 1 and continued.epochs_trained == 1 and not evaluate.paused
    assert _strip([continued.epochs]) == _strip([straight.epochs])
    after = bundle.model.state_dict()
    assert all(torch.equal(after[k], weights[k]) for k in weights)
    # without the paused state the same request trains from the pretrained weights: same result
    assert _strip([fitness(1024)(mask).epochs]) == _strip([straight.epochs])


def test_fit_continues_a_paused_run_with_dropout_momentum_and_batch_order(digits16):
    from layerswarm.training.augment import BatchTransform
    from layerswarm.training.trainer import TrainState

    def model():
        torch.manual_seed(3)
        return torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(3 * 16 * 16, 32),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.5),
            torch.nn.Linear(32, 10),
        )

    transform = BatchTransform((0.5,) * 3, (0.5,) * 3, "crop-flip")
    cfg = CFG.replace(epochs=3)
    whole = model()
    fit(whole, digits16.train, digits16.val, cfg, transform)
    paused, state = model(), TrainState()
    fit(paused, digits16.train, digits16.val, cfg.replace(epochs=1), transform, state=state)
    torch.manual_seed(99)  # whatever ran in between must not matter
    assert state.epoch == 1
    fit(paused, digits16.train, digits16.val, cfg, transform, state=state.to("cpu"))
    assert all(
        torch.equal(a, b) for a, b in zip(whole.state_dict().values(), paused.state_dict().values(), strict=True)
    )


def test_pause_memory_is_bounded(digits16):
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, CFG)
    evaluate = MaskFitness(bundle, digits16.for_search(), CFG, pause_mb=1)  # room for about two
    masks = [[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]]
    for m in masks:
        evaluate(m, 1)
    held = sum(sum(t.nbytes for t in w.values()) + s.nbytes for w, s in evaluate.paused.values())
    assert 0 < held <= 2**20 and len(evaluate.paused) < 3 and tuple(masks[-1]) in evaluate.paused
    assert not MaskFitness(
        bundle, digits16.for_search(), CFG.replace(optim=CFG.optim.replace(schedule="cosine")), pause_mb=64
    ).pause_bytes


def test_three_rungs_continue_one_after_another(digits16):
    cfg = CFG.replace(epochs=3)
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, cfg)
    mask = [0, 0, 1, 1, 1, 1]
    straight = MaskFitness(bundle, digits16.for_search(), cfg)(mask)
    evaluate = MaskFitness(bundle, digits16.for_search(), cfg, pause_mb=64)
    rungs = [evaluate(mask, 1), evaluate(mask, 2), evaluate(mask)]
    assert [r.epochs_trained for r in rungs] == [1, 1, 1]
    assert [r.info.get("continued_from") for r in rungs] == [None, 1, 2]
    assert _strip([rungs[-1].epochs]) == _strip([straight.epochs]) and not evaluate.paused
