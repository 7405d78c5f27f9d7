"""A linear probe on an intermediate layer: features from module ``tap`` of a backbone, pooled,
fed to a new linear classifier. The layers after ``tap`` never run.

Wrapping, not cutting: the backbone keeps its structure (its weights sit under ``backbone.``
in the probe's state), and it works for any model whose ``tap`` output is a tensor:
``[B, C, H, W]`` feature maps (mean over H, W; ``[B, H, W, C]`` for models that declare
``output_fmt = "NHWC"``, as timm's Swin does) or ``[B, N, C]`` tokens (mean over N).
The forward leaves the backbone through an exception raised by a hook, so it runs eagerly:
``fit`` does not ``torch.compile`` a probe (``compile_safe = False``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import LayerswarmError


class _Tapped(Exception):
    """Carries the tap's output out of the backbone's forward: the rest is not computed."""

    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.features = features


def tap_features(backbone: nn.Module, tap: str, x: torch.Tensor) -> torch.Tensor:
    """The output of ``backbone.get_submodule(tap)`` for input ``x``, pooled to ``[B, C]``."""
    channels_last = getattr(backbone, "output_fmt", "NCHW") == "NHWC"

    def grab(_module, _inputs, output):
        raise _Tapped(output)

    # registered per call, so the shared backbone carries no hook outside a probe's forward
    handle = backbone.get_submodule(tap).register_forward_hook(grab)
    try:
        backbone(x)
    except _Tapped as tapped:
        return pool(tapped.features, channels_last)
    finally:
        handle.remove()
    raise RuntimeError(f"module '{tap}' did not run in the forward pass")


def pool(features: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """Global average over positions: ``[B, C, H, W]`` (or ``[B, H, W, C]``), ``[B, N, C]`` -> ``[B, C]``."""
    if not isinstance(features, torch.Tensor) or features.dim() not in (2, 3, 4):
        kind = type(features).__name__ if not isinstance(features, torch.Tensor) else f"a {features.dim()}-d tensor"
        raise LayerswarmError(
            f"a linear probe needs [B, C], [B, N, C] or [B, C, H, W] features, the tapped unit "
            f"gives {kind}: pick another unit"
        )
    if features.dim() == 4:
        return features.mean(dim=(1, 2) if channels_last else (2, 3))
    return features.mean(dim=1) if features.dim() == 3 else features


class IntermediateProbe(nn.Module):
    """``head(pool(backbone[..tap](x)))``: the backbone's layers up to ``tap``, a new head."""

    compile_safe = False  # exception-based early exit: see the module docstring

    def __init__(self, backbone: nn.Module, tap: str, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.tap = tap
        self.head = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(tap_features(self.backbone, self.tap, x))

    def describe(self) -> dict:
        """What a saved model's metadata needs to rebuild this probe around its backbone."""
        return {"tap": self.tap, "in_features": self.head.in_features}

    @classmethod
    def rebuild(cls, backbone: nn.Module, description: dict, num_classes: int) -> IntermediateProbe:
        return cls(backbone, description["tap"], int(description["in_features"]), num_classes)


def build_probe(
    backbone: nn.Module, tap: str, num_classes: int, example: torch.Tensor, seed: int = 0
) -> IntermediateProbe:
    """A probe whose head width is measured on ``example`` and initialised from ``seed``."""
    with torch.no_grad():
        was_training = backbone.training
        backbone.eval()  # the measuring pass must not move BatchNorm statistics
        in_features = tap_features(backbone, tap, example).shape[1]
        backbone.train(was_training)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = IntermediateProbe(backbone, tap, in_features, num_classes)
    device = next(backbone.parameters()).device
    return probe.to(device)
