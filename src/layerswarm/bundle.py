"""A model ready to fine-tune: the network, its units, its pretrained state and input transform."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .model_config import ModelConfig
from .models import ModelInfo, create_model
from .training import BatchTransform, TrainConfig, resolve_device
from .units import Unit, split_units


@dataclass
class ModelBundle:
    """Everything needed to start a fine-tune from the same pretrained point, every time."""

    model: nn.Module
    info: ModelInfo
    units: list[Unit]
    initial_state: dict[str, torch.Tensor]
    transform: BatchTransform
    device: torch.device

    def reset(self) -> nn.Module:
        """Restore the pretrained weights (and the seeded new head); every evaluation starts here."""
        self.model.load_state_dict(self.initial_state)
        for p in self.model.parameters():
            p.grad = None
        return self.model


def build_bundle(
    model_cfg: ModelConfig, num_classes: int, train_cfg: TrainConfig, seed: int = 0
) -> ModelBundle:
    """Create the model, split it into units and remember its starting state."""
    device = resolve_device(train_cfg.device)
    model, info = create_model(model_cfg.name, num_classes, model_cfg.weights, seed=seed)
    units = split_units(model, info.head, model_cfg.granularity)
    model.to(device)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    transform = BatchTransform(info.mean, info.std, train_cfg.augment, train_cfg.crop_padding)
    return ModelBundle(model, info, units, initial, transform, device)
