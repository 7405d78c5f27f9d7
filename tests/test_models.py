"""Model creation: names, heads, local weight files, offline EfficientNet-Lite weights."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from layerswarm.errors import LayerswarmError
from layerswarm.models import create_model


def test_head_is_replaced_and_sized_to_target_classes():
    model, info = create_model("test_resnet", num_classes=7, weights="none")
    assert info.head == ["fc"] and model.fc.out_features == 7
    tv, tv_info = create_model("tv:resnet18", num_classes=5, weights="none")
    assert tv_info.head == ["fc"] and tv.fc.out_features == 5
    mb, mb_info = create_model("tv:mobilenet_v3_small", num_classes=4, weights="none")
    assert mb_info.head == ["classifier.3"] and mb.classifier[3].out_features == 4


def test_same_seed_same_head():
    a, _ = create_model("test_resnet", 3, "none", seed=1)
    b, _ = create_model("test_resnet", 3, "none", seed=1)
    c, _ = create_model("test_resnet", 3, "none", seed=2)
    assert torch.equal(a.fc.weight, b.fc.weight) and not torch.equal(a.fc.weight, c.fc.weight)


def test_unknown_model_suggests_close_names():
    with pytest.raises(LayerswarmError, match="unknown model 'resnet5'.*did you mean.*resnet50"):
        create_model("resnet5", 3)
    with pytest.raises(LayerswarmError, match="unknown model 'tv:resnet1'"):
        create_model("tv:resnet1", 3)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_loads_backbone(tmp_path, suffix):
    source, _ = create_model("test_resnet", 10, "none", seed=5)
    path = tmp_path / f"w{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    model, _ = create_model("test_resnet", 3, str(path), seed=0)  # other class count: head replaced
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)
    assert model.fc.out_features == 3


def test_weights_file_of_another_architecture_is_refused(tmp_path):
    other, _ = create_model("test_efficientnet", 10, "none")
    path = tmp_path / "effnet.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    with pytest.raises(LayerswarmError, match="does not fit model 'test_resnet'"):
        create_model("test_resnet", 3, str(path))


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickled_objects_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"x": _Evil()}, fh)
    with pytest.raises(LayerswarmError, match="cannot read weights file"):
        create_model("test_resnet", 3, str(path))


def test_missing_weights_file():
    with pytest.raises(LayerswarmError, match="does not exist"):
        create_model("test_resnet", 3, "/nonexistent/w.safetensors")


@pytest.mark.slow
def test_offline_efficientnet_lite0_weights_recognise_images():
    """Real ImageNet weights: sklearn's sample photos score as what they show."""
    import timm
    from sklearn.datasets import load_sample_image

    from layerswarm.models.efficientnet_lite import load_lite_weights

    model = timm.create_model("tf_efficientnet_lite0")
    load_lite_weights(model, "efficientnet_lite0")
    model.eval()
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)

    def top5(name):
        img = torch.tensor(load_sample_image(name)).permute(2, 0, 1).float()[None] / 255
        img = torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear", antialias=True)
        with torch.no_grad():
            return model((img - mean) / std).topk(5).indices[0].tolist()

    assert top5("flower.jpg")[0] == 985  # daisy
    assert 698 in top5("china.jpg")  # palace (a Chinese temple)
