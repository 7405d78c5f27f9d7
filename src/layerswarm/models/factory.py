"""``create_model(name)``: timm names, ``tv:NAME`` for torchvision, offline EfficientNet-Lite,
and text encoders (``all-minilm-l6-v2``, ``hf:PATH``: :mod:`layerswarm.models.text`).

The source classifier is always replaced by a new head sized to the target classes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn

from ..errors import LayerswarmError
from .efficientnet_lite import LITE_MODELS, load_lite_weights
from .modules import replace_module
from .weights import load_weights_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelInfo:
    """What is needed to rebuild and feed a model: saved next to its weights."""

    name: str
    num_classes: int
    head: list[str]  # module paths of the new classifier (always trained, never masked)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    weights: str = "pretrained"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "head": list(self.head),
            "mean": list(self.mean),
            "std": list(self.std),
            "weights": self.weights,
            "extra": dict(self.extra),
        }

    @property
    def is_text(self) -> bool:
        return self.extra.get("modality") == "text"


def init_head(module: nn.Module, seed: int) -> None:
    """Draw ``module``'s parameters afresh from ``seed``, the same draw whenever it is asked:
    every submodule that can reset itself does, in order."""
    torch.manual_seed(seed)
    for m in module.modules():
        if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False)):
            m.reset_parameters()


def _close_names(name: str) -> str:
    from .config import TEXT_MODELS

    pool = (
        list(LITE_MODELS)
        + list(TEXT_MODELS)
        + timm.list_models()
        + [f"tv:{n}" for n in torchvision.models.list_models()]
    )
    pool = list(dict.fromkeys(pool))  # the Lite names are timm names too: suggest each once
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _unknown(name: str) -> LayerswarmError:
    return LayerswarmError(
        f"unknown model '{name}'{_close_names(name)}: use a timm name, tv:NAME for torchvision, "
        "efficientnet_lite0/1/2, all-minilm-l6-v2 or hf:PATH for text (list with: layerswarm models)"
    )


def _last_linear(model: nn.Module) -> str:
    """Module path of the last ``nn.Linear``: the classifier of torchvision models."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise LayerswarmError("model has no nn.Linear classifier to replace: pick a classification model")
    return linears[-1]


def _build_timm(arch: str, pretrained: bool) -> tuple[nn.Module, ModelInfo]:
    if not timm.is_model(arch):
        raise _unknown(arch)
    try:
        model = timm.create_model(arch, pretrained=pretrained)
    except (RuntimeError, OSError, ValueError) as err:  # download failures, missing hub files
        raise LayerswarmError(
            f"could not load pretrained weights for '{arch}' ({type(err).__name__}): "
            "check the network, or pass --weights PATH or --weights none"
        ) from err
    cfg = model.pretrained_cfg
    info = ModelInfo(
        name=arch,
        num_classes=0,
        head=[],
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(cfg.get("std", IMAGENET_STD)),
    )
    return model, info


def _build_torchvision(arch: str, pretrained: bool) -> tuple[nn.Module, ModelInfo]:
    if arch not in torchvision.models.list_models():
        raise _unknown(f"tv:{arch}")
    try:
        model = torchvision.models.get_model(arch, weights="DEFAULT" if pretrained else None)
    except (RuntimeError, OSError, ValueError) as err:
        raise LayerswarmError(
            f"could not load torchvision weights for '{arch}' ({type(err).__name__}): "
            "check the network, or pass --weights PATH or --weights none"
        ) from err
    return model, ModelInfo(name=f"tv:{arch}", num_classes=0, head=[])


def pretrained_input(name: str) -> dict:
    """The input a model was pretrained on, from timm's ``pretrained_cfg`` without building the
    model: ``{"size", "crop_pct", "interpolation"}`` (torchvision's classifiers: 224, 0.875,
    bilinear). Unknown names get ImageNet's defaults; ``create_model`` reports them."""
    from .config import is_text_model

    if is_text_model(name):  # text: the tokenizer decides the input
        return {"tokenizer": name}
    arch = LITE_MODELS[name][0] if name in LITE_MODELS else name
    cfg = None if name.startswith("tv:") else timm.models.get_pretrained_cfg(arch)
    if cfg is None:
        return {"size": 224, "crop_pct": 0.875, "interpolation": "bilinear"}
    interpolation = cfg.interpolation if cfg.interpolation in ("bilinear", "bicubic") else "bilinear"
    return {"size": int(cfg.input_size[-1]), "crop_pct": float(cfg.crop_pct), "interpolation": interpolation}


def create_model(
    name: str, num_classes: int, weights: str = "pretrained", seed: int = 0, pooling: str = "mean"
) -> tuple[nn.Module, ModelInfo]:
    """Build ``name`` with its source classifier replaced by a fresh ``num_classes`` head.

    ``weights``: ``"pretrained"`` (the model's own pretrained weights: offline for
    EfficientNet-Lite, downloaded for timm/torchvision), ``"none"`` (random init) or a path
    to a checkpoint (safetensors, or a torch file loaded with ``weights_only=True``).
    ``seed`` fixes the head's (and a random model's) initialisation.
    """
    if num_classes < 1:
        raise LayerswarmError("num_classes must be >= 1")
    torch.manual_seed(seed)
    file_weights = weights not in ("pretrained", "none")
    if file_weights and not Path(weights).is_file():
        raise LayerswarmError(f"weights file '{weights}' does not exist: pass an existing file, 'pretrained' or 'none'")
    hub_pretrained = weights == "pretrained"
    from .text import build_text_model, head_modules, is_text_model

    if is_text_model(name):
        model, extra = build_text_model(name, num_classes, hub_pretrained, pooling)
        if file_weights:
            load_weights_file(model, weights, model_name=name)
        head = head_modules(model)
        for path in head:  # the draw bundle.reset repeats
            init_head(model.get_submodule(path), seed)
        info = ModelInfo(name=name, num_classes=num_classes, head=head, weights=weights, extra=extra)
        return model, info
    if name in LITE_MODELS:
        model, info = _build_timm(LITE_MODELS[name][0], pretrained=False)
        info.name = name
        if hub_pretrained:
            load_lite_weights(model, name)
    elif name.startswith("tv:"):
        model, info = _build_torchvision(name[3:], hub_pretrained)
    else:
        model, info = _build_timm(name, hub_pretrained)
    if file_weights:
        load_weights_file(model, weights, model_name=name)

    torch.manual_seed(seed)  # same head init whatever the backbone consumed from the RNG
    if hasattr(model, "reset_classifier") and hasattr(model, "get_classifier"):
        model.reset_classifier(num_classes)
        head_module = model.get_classifier()
        head = [n for n, m in model.named_modules() if m is head_module]
    else:
        path = _last_linear(model)
        old = model.get_submodule(path)
        replace_module(model, path, nn.Linear(old.in_features, num_classes))
        head = [path]
    info.num_classes = num_classes
    info.head = head
    info.weights = weights
    return model, info
