"""A model ready to fine-tune: the network, its units, its pretrained state and input transform."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..training import BatchTransform, TrainConfig, resolve_device
from ..training.augment import TokenTransform
from ..units import Unit, split_units
from .config import ModelConfig
from .factory import ModelInfo, create_model, init_head


@dataclass
class ModelBundle:
    """Everything needed to start a fine-tune from the same pretrained point, every time."""

    model: nn.Module
    info: ModelInfo
    units: list[Unit]
    initial_state: dict[str, torch.Tensor]
    transform: BatchTransform
    device: torch.device
    seed: int = 0  # the seed the new head was initialised from

    def transform_for(self, cfg: TrainConfig) -> BatchTransform:
        """The input transform ``cfg`` asks for (its augmentation) with the model's normalisation:
        a final fine-tune trains with its own settings, not the fitness evaluations'."""
        return make_transform(self.info, cfg)

    def reset(self, seed: int | None = None) -> nn.Module:
        """Restore the pretrained weights and the seeded new head; every evaluation starts here.
        ``seed``: a new head drawn from that seed instead (the same draw ``create_model`` makes)."""
        self.model.load_state_dict(self.initial_state)
        if seed is not None and seed != self.seed:
            for name in self.info.head:
                head = self.model.get_submodule(name)
                fresh = copy.deepcopy(head).cpu()  # drawn on the CPU, as at creation, wherever the model is
                init_head(fresh, seed)
                head.load_state_dict(fresh.state_dict())
        for p in self.model.parameters():
            p.grad = None
        return self.model


def build_bundle(model_cfg: ModelConfig, num_classes: int, train_cfg: TrainConfig, seed: int = 0) -> ModelBundle:
    """Create the model, split it into units and remember its starting state."""
    device = resolve_device(train_cfg.runtime.device)
    model, info = create_model(model_cfg.name, num_classes, model_cfg.weights, seed=seed, pooling=model_cfg.pooling)
    units = split_units(model, info.head, model_cfg.granularity)
    model.to(device)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    transform = make_transform(info, train_cfg)
    return ModelBundle(model, info, units, initial, transform, device, seed)


def make_transform(info: ModelInfo, cfg: TrainConfig) -> BatchTransform | TokenTransform:
    if info.is_text:
        return TokenTransform()
    return BatchTransform(
        info.mean,
        info.std,
        cfg.augmentation.policy,
        cfg.augmentation.crop_padding,
        scale=(cfg.augmentation.rrc_scale_min, 1.0),
    )
