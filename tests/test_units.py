"""Layer units: every parameter in exactly one unit, the head in none."""

from __future__ import annotations

import json

import pytest

from layerswarm.cli import main
from layerswarm.errors import LayerswarmError
from layerswarm.models import create_model
from layerswarm.units import split_units


@pytest.mark.parametrize("name", ["test_efficientnet", "test_resnet", "test_vit", "tv:resnet18"])
@pytest.mark.parametrize("granularity", ["block", "stage", "module"])
def test_units_partition_the_backbone(name, granularity):
    model, info = create_model(name, 4, "none")
    units = split_units(model, info.head, granularity)
    owned = [p for u in units for p in u.params]
    head = {n for n, _ in model.named_parameters() if any(n.startswith(f"{h}.") for h in info.head)}
    assert len(owned) == len(set(owned))
    assert set(owned) | head == {n for n, _ in model.named_parameters()}
    assert not set(owned) & head
    assert [u.index for u in units] == list(range(len(units)))


def test_granularities_differ_in_size():
    model, info = create_model("tv:resnet18", 4, "none")
    sizes = {g: len(split_units(model, info.head, g)) for g in ("stage", "block", "module")}
    assert sizes["stage"] < sizes["block"] < sizes["module"]
    assert sizes == {"stage": 5, "block": 9, "module": 20}


def test_unknown_granularity():
    model, info = create_model("test_resnet", 4, "none")
    with pytest.raises(LayerswarmError, match="unknown granularity"):
        split_units(model, info.head, "layer")


def test_layers_command_json(capsys):
    assert main(["layers", "--model", "test_resnet", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["head"] == ["fc"]
    assert [u["name"] for u in out["units"]] == ["conv1+bn1", "layer1", "layer2", "layer3", "layer4"]
    assert all(u["num_params"] > 0 and u["params"] for u in out["units"])
