"""Freezing is real: frozen units stay bit-identical, buffers included."""

from __future__ import annotations

import pytest
import torch

from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.training import TrainConfig, fit
from layerswarm.training.config import OptimConfig
from layerswarm.training.trainer import trainable_param_groups
from layerswarm.units import apply_mask


def _unit_tensors(model, unit):
    """Every parameter and buffer that belongs to ``unit`` (its params and its modules' buffers)."""
    state = model.state_dict()
    names = set(unit.params)
    for path in unit.modules:
        names |= {f"{path}.{k}" for k in model.get_submodule(path).state_dict()}
    return {k: state[k].clone() for k in names}


@pytest.mark.parametrize("name", ["test_efficientnet", "test_resnet", "test_vit"])
def test_frozen_units_bit_identical_after_training(name, digits16):
    cfg = TrainConfig(epochs=2, optim=OptimConfig(batch_size=16, lr=0.05, weight_decay=5e-4, momentum=0.9))
    bundle = build_bundle(ModelConfig(name=name, weights="none"), digits16.num_classes, cfg)
    model = bundle.reset()
    n = len(bundle.units)
    mask = [1 if i % 2 else 0 for i in range(n)]  # alternate: frozen units between trained ones
    frozen = apply_mask(model, bundle.units, mask)
    before = {u.index: _unit_tensors(model, u) for u in bundle.units}
    fit(model, digits16.train, digits16.val, cfg, bundle.transform, frozen=frozen)

    for unit, bit in zip(bundle.units, mask, strict=True):
        after = _unit_tensors(model, unit)
        same = all(torch.equal(before[unit.index][k], after[k]) for k in after)
        if bit == 0:
            assert same, f"frozen unit {unit.name} changed"
        else:
            assert not same, f"trained unit {unit.name} did not change"


def test_frozen_batchnorm_statistics_kept_and_trained_ones_move(digits16):
    cfg = TrainConfig(epochs=1, optim=OptimConfig(batch_size=16))
    bundle = build_bundle(ModelConfig(name="test_resnet", weights="none"), digits16.num_classes, cfg)
    model = bundle.reset()
    mask = [0] + [1] * (len(bundle.units) - 1)
    frozen = apply_mask(model, bundle.units, mask)
    bn_frozen = model.bn1.running_mean.clone(), model.bn1.num_batches_tracked.clone()
    bn_trained = model.layer4[0].bn1.running_mean.clone()
    fit(model, digits16.train, digits16.val, cfg, bundle.transform, frozen=frozen)
    assert torch.equal(model.bn1.running_mean, bn_frozen[0])
    assert torch.equal(model.bn1.num_batches_tracked, bn_frozen[1])
    assert not torch.equal(model.layer4[0].bn1.running_mean, bn_trained)


def test_frozen_parameters_never_reach_the_optimizer():
    cfg = TrainConfig()
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 3, cfg)
    model = bundle.reset()
    mask = [0] * len(bundle.units)
    apply_mask(model, bundle.units, mask)
    in_optimizer = {id(p) for g in trainable_param_groups(model) for p in g["params"]}
    head = {id(p) for p in model.get_classifier().parameters()}
    assert in_optimizer == head  # only the new head trains with every unit frozen


def test_each_evaluation_starts_from_the_pretrained_state(digits16):
    cfg = TrainConfig(epochs=1, optim=OptimConfig(batch_size=16))
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), digits16.num_classes, cfg)
    model = bundle.reset()
    apply_mask(model, bundle.units, [1] * len(bundle.units))
    fit(model, digits16.train, digits16.val, cfg, bundle.transform)
    model = bundle.reset()
    for k, v in model.state_dict().items():
        assert torch.equal(v, bundle.initial_state[k]), k


def test_training_is_reproducible_on_cpu(digits16):
    cfg = TrainConfig(epochs=2, seed=3, optim=OptimConfig(batch_size=16))
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), digits16.num_classes, cfg)
    runs = []
    for _ in range(2):
        model = bundle.reset()
        frozen = apply_mask(model, bundle.units, [0, 1] * (len(bundle.units) // 2) + [1] * (len(bundle.units) % 2))
        runs.append(fit(model, digits16.train, digits16.val, cfg, bundle.transform, frozen=frozen).epochs)
    strip = [[{k: v for k, v in e.items() if k != "seconds"} for e in r] for r in runs]
    assert strip[0] == strip[1]
