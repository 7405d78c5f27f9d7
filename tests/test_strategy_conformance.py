"""Every registered strategy passes the same checks, as every searcher passes the searchers'
conformance suite: frozen units stay bit-identical, the test split never changes what is
trained, a fine-tune stopped after an epoch and resumed ends where an uninterrupted one does,
and its options survive a JSON round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from layerswarm.data.imageset import DatasetSplits, ImageSet
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.finetune import run_finetune
from layerswarm.strategies import STRATEGIES, create_strategy
from layerswarm.training import TrainConfig
from layerswarm.training.config import AugmentConfig, EvalConfig, OptimConfig

CFG = TrainConfig(
    epochs=2,
    optim=OptimConfig(batch_size=16, lr=0.05, momentum=0.9, weight_decay=1e-4),
    augmentation=AugmentConfig(policy="crop-flip"),
    evaluation=EvalConfig(test_every=1),
)

# the options a strategy needs on a 6-unit test model (the rest run on their defaults)
OPTIONS = {
    "mask": {"mask": [0, 1, 0, 1, 0, 1]},
    "last-k": {"k": 2},
    "first-k": {"k": 2},
    "pso": {"particles": 2, "generations": 1, "fitness_epochs": 1},
    "child-d": {"fisher_images": 16},
}


def _strategy(name):
    return create_strategy(name, OPTIONS.get(name))


def _bundle(data, name):
    weights = "none"  # the test model has no pretrained weights; scratch forces "none" anyway
    return build_bundle(ModelConfig(name="test_efficientnet", weights=weights), data.num_classes, CFG, seed=0)


def _unit_state(bundle, unit):
    """A unit's parameters and its modules' buffers (BatchNorm statistics), as now in the model."""
    state = bundle.model.state_dict()
    names = set(unit.params) | {f"{m}.{k}" for m in unit.modules for k in bundle.model.get_submodule(m).state_dict()}
    return {k: state[k].clone() for k in names}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_frozen_units_stay_bit_identical(digits16, name):
    bundle = _bundle(digits16, name)
    metrics = run_finetune(bundle, digits16, _strategy(name), CFG)
    mask = metrics["mask"]
    if mask is None:
        pytest.skip(f"{name} reports no unit mask (it freezes nothing for the whole run)")
    for unit, bit in zip(bundle.units, mask, strict=True):
        if bit == 0:
            after = _unit_state(bundle, unit)
            for key, value in after.items():
                assert torch.equal(value, bundle.initial_state[key]), f"{name}: frozen {unit.name} changed at {key}"
    assert any(mask) or name == "linear", f"{name}: trains no unit at all"


def _other_test_split(data: DatasetSplits) -> DatasetSplits:
    """The same train and validation splits with a different test split (reversed, half of it)."""
    test = data.test
    flipped = ImageSet(
        test.images.flip(0)[: len(test.labels) // 2].contiguous(),
        test.labels.flip(0)[: len(test.labels) // 2].contiguous(),
    )
    return dataclasses.replace(data, test=flipped)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_the_test_split_never_changes_what_is_trained(digits16, name):
    weights = []
    for data in (digits16, _other_test_split(digits16)):
        bundle = _bundle(data, name)
        run_finetune(bundle, data, _strategy(name), CFG)
        weights.append({k: v.clone() for k, v in bundle.model.state_dict().items()})
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), f"{name}: {key} depends on the test split"


class _Stop(Exception):
    pass


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_resumed_fine_tune_ends_where_an_uninterrupted_one_does(digits16, name, tmp_path):
    bundle = _bundle(digits16, name)
    whole = run_finetune(bundle, digits16, _strategy(name), CFG)
    expected = {k: v.clone() for k, v in bundle.model.state_dict().items()}

    checkpoint = tmp_path / "checkpoint.pt"

    def stop_in_second_epoch(record):
        if record["epoch"] == 2:
            raise _Stop

    bundle = _bundle(digits16, name)
    with pytest.raises(_Stop):
        run_finetune(bundle, digits16, _strategy(name), CFG, checkpoint=checkpoint, on_epoch=stop_in_second_epoch)
    assert checkpoint.exists()
    bundle = _bundle(digits16, name)  # a new process: everything rebuilt
    resumed = run_finetune(bundle, digits16, _strategy(name), CFG, checkpoint=checkpoint)
    for key, value in bundle.model.state_dict().items():
        assert torch.equal(value, expected[key]), f"{name}: {key} differs after resuming"
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    assert [e["train_loss"] for e in resumed["epochs"]] == [e["train_loss"] for e in whole["epochs"]]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_options_round_trip_through_json(name):
    strategy = _strategy(name)
    text = json.dumps(strategy.config.to_dict())
    again = create_strategy(name, json.loads(text))
    assert again.config == strategy.config
    assert json.dumps(again.config.to_dict()) == text
