"""Batch assembly on the device: uint8 -> float, augment, normalise.

Images stay decoded in memory as uint8; nothing is decoded per epoch. Augmentation runs on
the tensor, on the device, from a seeded generator, so runs are reproducible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from .config import AUGMENTATIONS


class BatchTransform:
    """Turns a uint8 batch ``[B, C, H, W]`` into the model's normalised float input."""

    def __init__(
        self,
        mean,
        std,
        augment: str = "crop-flip",
        crop_padding: float = 0.125,
        scale: tuple[float, float] = (0.25, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
    ) -> None:
        if augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation '{augment}': use {', '.join(AUGMENTATIONS)}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.augment = augment
        self.crop_padding = crop_padding
        self.scale, self.ratio = scale, ratio

    def __call__(self, images: torch.Tensor, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.float().div_(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grayscale -> 3 channels, no copy
        if train and self.augment != "none":
            x = self._random_resized_crop(x, generator) if self.augment == "rrc" else self._random_crop(x, generator)
            if self.augment in ("crop-flip", "rrc"):
                flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return (x - mean) / std

    def _random_crop(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Pad by ``crop_padding * size`` (reflect) and crop back at a random offset per image."""
        b, _, h, w = x.shape
        pad = int(round(self.crop_padding * min(h, w)))
        if pad == 0:
            return x
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
        rows = (oy.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1).expand(-1, x.shape[1], h, w)
        cols = (ox.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w).expand(-1, x.shape[1], h, w)
        # Gather rows then columns: two cheap index ops instead of a per-image Python loop.
        picked_rows = padded.gather(2, rows[..., :1].expand(-1, -1, h, w + 2 * pad))
        return picked_rows.gather(3, cols)

    def _random_resized_crop(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """torchvision's RandomResizedCrop, one draw per image from ``generator``, resized back to
        the input size in one batched bilinear ``roi_align``. Area fraction ~ U(scale), log aspect
        ratio ~ U(log ratio); a box too large for the image is shrunk to fit instead of redrawn."""
        b, _, h, w = x.shape
        draws = torch.rand(4, b, generator=generator, device=x.device, dtype=torch.float32)
        area = h * w * (self.scale[0] + (self.scale[1] - self.scale[0]) * draws[0])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * draws[1])
        cw = torch.sqrt(area * aspect).clamp(1.0, w)
        ch = torch.sqrt(area / aspect).clamp(1.0, h)
        x0, y0 = (w - cw) * draws[2], (h - ch) * draws[3]
        boxes = torch.stack([torch.arange(b, device=x.device, dtype=x.dtype), x0, y0, x0 + cw, y0 + ch], 1)
        return roi_align(x, boxes.to(x.dtype), output_size=(h, w), spatial_scale=1.0, sampling_ratio=1, aligned=True)


class TokenTransform:
    """Text batches: token ids go to the model unchanged (no augmentation, no normalisation;
    the model derives the attention mask and cuts the padding)."""

    augment = "none"

    def __call__(self, tokens: torch.Tensor, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        return tokens
