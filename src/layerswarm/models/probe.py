"""A linear probe on an intermediate layer: features from module ``tap`` of a backbone, pooled,
fed to a new linear classifier. The layers after ``tap`` never run.

Wrapping, not cutting: the backbone keeps its structure and its parameter names (saved
weights stay loadable by name), and it works for any model whose ``tap`` output is a tensor:
``[B, C, H, W]`` feature maps (mean over H, W) or ``[B, N, C]`` tokens (mean over N).
"""

from __future__ import annotations

import torch
from torch import nn


class _Tapped(Exception):
    """Carries the tap's output out of the backbone's forward: the rest is not computed."""

    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.features = features


def tap_features(backbone: nn.Module, tap: str, x: torch.Tensor) -> torch.Tensor:
    """The output of ``backbone.get_submodule(tap)`` for input ``x``, pooled to ``[B, C]``."""

    def grab(_module, _inputs, output):
        raise _Tapped(output)

    # registered per call, so the shared backbone carries no hook outside a probe's forward
    handle = backbone.get_submodule(tap).register_forward_hook(grab)
    try:
        backbone(x)
    except _Tapped as tapped:
        return pool(tapped.features)
    finally:
        handle.remove()
    raise RuntimeError(f"module '{tap}' did not run in the forward pass")


def pool(features: torch.Tensor) -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or features.dim() not in (2, 3, 4):
        kind = type(features).__name__ if not isinstance(features, torch.Tensor) else f"a {features.dim()}-d tensor"
        raise ValueError(f"a probe needs [B, C], [B, N, C] or [B, C, H, W] features, got {kind}")
    if features.dim() == 4:
        return features.mean(dim=(2, 3))
    return features.mean(dim=1) if features.dim() == 3 else features


class IntermediateProbe(nn.Module):
    """``head(pool(backbone[..tap](x)))``: the backbone's layers up to ``tap``, a new head."""

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


def build_probe(backbone: nn.Module, tap: str, num_classes: int, example: torch.Tensor, seed: int = 0) -> IntermediateProbe:
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
