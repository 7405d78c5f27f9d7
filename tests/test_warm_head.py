"""The warm head (head_init "warm", LP-FT's first step): a logistic regression fitted on the
frozen backbone's features, from which fitness evaluations and fine-tunes start."""

from __future__ import annotations

import pytest
import torch

from layerswarm.errors import LayerswarmError
from layerswarm.fitness.mask_fitness import MaskFitness
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.finetune import run_finetune
from layerswarm.strategies import create_strategy
from layerswarm.training import TrainConfig
from layerswarm.training.config import AugmentConfig, OptimConfig
from layerswarm.training.linear_head import fit_linear_head

CFG = TrainConfig(
    epochs=1,
    optim=OptimConfig(batch_size=16, lr=0.05, momentum=0.0, weight_decay=0.0),
    augmentation=AugmentConfig(policy="none"),
)


def _bundle(data, cfg=CFG):
    return build_bundle(ModelConfig(name="test_efficientnet", weights="none"), data.num_classes, cfg, seed=0)


def test_the_fitted_head_is_deterministic_and_beats_the_random_one(digits16):
    bundle = _bundle(digits16)
    model = bundle.reset()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = fit_linear_head(model, bundle.info.head, digits16.train, digits16.val, bundle.transform)
    b = fit_linear_head(bundle.reset(), bundle.info.head, digits16.train, digits16.val, bundle.transform)
    assert a.state.keys() == b.state.keys() and all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # fitting leaves the model as it was
    random_head = MaskFitness(bundle, digits16.for_search(), CFG.replace(optim=CFG.optim.replace(lr=0.0)))(
        [0] * len(bundle.units)
    ).fitness
    assert a.val_accuracy > random_head + 0.1


def test_a_warm_evaluation_starts_from_the_fitted_head(digits16):
    """With lr 0 nothing moves: after an evaluation the head is still exactly the fitted one,
    and a cold evaluation's is the seeded random head."""
    bundle = _bundle(digits16)
    head = fit_linear_head(bundle.reset(), bundle.info.head, digits16.train, digits16.val, bundle.transform)
    still = CFG.replace(optim=CFG.optim.replace(lr=0.0, head_init="warm"))
    MaskFitness(bundle, digits16.for_search(), still)([1] * len(bundle.units))
    state = bundle.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in head.state.items())
    MaskFitness(bundle, digits16.for_search(), still.replace(optim=still.optim.replace(head_init="cold")))(
        [1] * len(bundle.units)
    )
    state = bundle.model.state_dict()
    assert all(torch.equal(state[k], bundle.initial_state[k]) for k in head.state)
    assert not all(torch.equal(bundle.initial_state[k], v) for k, v in head.state.items())


def test_a_warm_fine_tune_keeps_frozen_units_and_records_the_head(digits16):
    cfg = CFG.replace(epochs=2, optim=CFG.optim.replace(head_init="warm"))
    bundle = _bundle(digits16, cfg)
    mask = [0, 0, 1, 0, 1, 1]
    metrics = run_finetune(bundle, digits16, create_strategy("mask", {"mask": mask}), cfg)
    assert metrics["head_l2"] in (1e-3, 1e-2, 1e-1)
    state = bundle.model.state_dict()
    for unit, bit in zip(bundle.units, mask, strict=True):
        if not bit:
            for p in unit.params:
                assert torch.equal(state[p], bundle.initial_state[p]), p


def test_lp_ft_starts_full_fine_tuning_from_the_fitted_head(digits16):
    bundle = _bundle(digits16)
    head = fit_linear_head(bundle.reset(), bundle.info.head, digits16.train, digits16.val, bundle.transform)
    still = CFG.replace(optim=CFG.optim.replace(lr=0.0))
    metrics = run_finetune(bundle, digits16, create_strategy("lp-ft"), still)
    assert metrics["mask"] == [1] * len(bundle.units)
    for key, value in head.state.items():
        assert torch.equal(bundle.model.state_dict()[key], value)


def test_an_unknown_head_init_is_a_one_line_error():
    with pytest.raises(LayerswarmError, match="head_init='hot'"):
        TrainConfig(optim=OptimConfig(head_init="hot"))


def test_the_head_is_fitted_on_the_statistics_the_plan_normalises_with(digits16):
    """Frozen units run in eval mode (their BatchNorm on the source's statistics), trained ones on
    batch statistics of the target images: the fit re-estimates exactly the trained units' layers."""
    from torch import nn

    from layerswarm.training.linear_head import target_statistics
    from layerswarm.units import frozen_modules

    bundle = _bundle(digits16)
    model = bundle.reset()
    mask = [0, 0, 1, 0, 1, 1]
    frozen = frozen_modules(bundle.units, mask)
    copy_ = target_statistics(model, digits16.train, bundle.transform, 64, frozen)
    originals = dict(model.named_modules())
    norms = [(n, m) for n, m in copy_.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms
    for name, norm in norms:
        kept = torch.equal(norm.running_mean, originals[name].running_mean)
        assert kept == any(name == p or name.startswith(p + ".") for p in frozen), name
    # everything frozen: nothing to re-estimate, the features are the network's own
    all_frozen = frozen_modules(bundle.units, [0] * 6)
    assert target_statistics(model, digits16.train, bundle.transform, 64, all_frozen) is model


def test_a_warm_linear_probe_validates_as_its_fit_did(digits16):
    """With lr 0 nothing moves, so the first validation of a frozen network is the fitted head's
    own validation accuracy: the head was fitted on the features that network computes."""
    cfg = CFG.replace(optim=CFG.optim.replace(lr=0.0, head_init="warm"))
    bundle = _bundle(digits16, cfg)
    metrics = run_finetune(bundle, digits16, create_strategy("linear"), cfg)
    assert abs(metrics["epochs"][0]["val_accuracy"] - metrics["head_val_accuracy"]) <= 1 / len(digits16.val)


def test_a_warm_evaluation_fits_each_mask_its_own_head(digits16):
    """A frozen plan's fitness at lr 0 is its fitted head's validation accuracy (the head matches
    what the plan computes); a mask that trains every unit gets a head of its own."""
    bundle = _bundle(digits16)
    still = CFG.replace(optim=CFG.optim.replace(lr=0.0, head_init="warm"))
    fitness = MaskFitness(bundle, digits16.for_search(), still)
    frozen_plan = fitness([0] * len(bundle.units)).fitness
    head = fitness.warm_heads[(0,) * len(bundle.units)]
    assert abs(frozen_plan - head.val_accuracy) <= 1 / len(digits16.val)
    fitness([1] * len(bundle.units))
    assert set(fitness.warm_heads) == {(0,) * len(bundle.units), (1,) * len(bundle.units)}
