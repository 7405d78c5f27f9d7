"""Classify images with a saved final model (``final/model.safetensors`` of a run).

The model file carries what is needed to rebuild it (model name, classes, image size,
normalisation; see :func:`layerswarm.finetune.save_model`), so a run folder is enough: no
config, no dataset. Images are decoded exactly as the ImageFolder loader decodes them and
normalised exactly as the trainer does at evaluation time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .data.imagefolder import _decode_one
from .errors import LayerswarmError
from .finetune import load_model_metadata, load_saved_state
from .models import create_model
from .models.probe import IntermediateProbe
from .training import BatchTransform, resolve_device

MODEL_FILE = "model.safetensors"


def find_model_file(path: str | Path) -> Path:
    """``path`` itself, ``path/model.safetensors`` or ``path/final/model.safetensors``."""
    path = Path(path)
    for candidate in (path, path / MODEL_FILE, path / "final" / MODEL_FILE):
        if candidate.is_file():
            return candidate
    raise LayerswarmError(
        f"no saved model in '{path}': pass a run folder holding final/{MODEL_FILE} "
        "(written by 'layerswarm search' or 'layerswarm finetune') or the .safetensors file"
    )


@dataclass
class Prediction:
    image: str
    top_k: list[tuple[str, float]]  # (class, probability), most probable first

    def to_dict(self) -> dict:
        return {"image": self.image, "top_k": [{"class": c, "probability": p} for c, p in self.top_k]}


class Predictor:
    """A saved model, ready to classify image files."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.path = find_model_file(path)
        try:
            meta = load_model_metadata(self.path)
        except (KeyError, TypeError, ValueError, OSError) as err:
            raise LayerswarmError(
                f"'{self.path}' carries no layerswarm metadata ({type(err).__name__}): "
                "pass a model written by 'layerswarm search' or 'layerswarm finetune'"
            ) from err
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])
        self.image_size = int(meta["image_size"])
        # models saved before crop_pct was recorded were decoded at image_size, bilinear
        self.resize = max(self.image_size, round(self.image_size / float(meta.get("crop_pct", 1.0))))
        self.interpolation = meta.get("interpolation", "bilinear")
        self.device = resolve_device(device)
        info = meta["model"]
        # 'none': the saved state replaces every weight, so nothing is downloaded or loaded twice
        model, _ = create_model(info["name"], num_classes=len(self.classes), weights="none")
        if "probe" in meta:  # a linear probe on an intermediate unit
            model = IntermediateProbe.rebuild(model, meta["probe"], len(self.classes))
        model.load_state_dict(load_saved_state(self.path))
        self.model = model.to(self.device).eval()
        self.transform = BatchTransform(info["mean"], info["std"], augment="none")

    def load_images(self, paths: Sequence[str | Path]) -> torch.Tensor:
        """uint8 ``[N, 3, S, S]``: RGB, shorter side resized to S, centre crop (as the loader)."""
        out = torch.empty((len(paths), 3, self.image_size, self.image_size), dtype=torch.uint8)
        for i, p in enumerate(paths):
            if not Path(p).is_file():
                raise LayerswarmError(f"image '{p}' does not exist: pass paths to image files")
            try:
                out[i] = torch.from_numpy(_decode_one(Path(p), self.image_size, self.resize, self.interpolation))
            except Exception as err:  # any decoder failure: not a readable image
                raise LayerswarmError(f"cannot decode image '{p}' ({type(err).__name__}): pass a JPEG, PNG or other image file") from err
        return out

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Softmax class probabilities ``[N, num_classes]`` of uint8 images."""
        chunks = []
        for start in range(0, images.shape[0], batch_size):
            x = self.transform(images[start : start + batch_size].to(self.device), train=False)
            chunks.append(torch.softmax(self.model(x).float(), dim=1).cpu())
        return torch.cat(chunks) if chunks else torch.empty((0, len(self.classes)))

    def predict(self, paths: Sequence[str | Path], top_k: int = 5) -> list[Prediction]:
        if top_k < 1:
            raise LayerswarmError(f"--top-k {top_k} must be at least 1")
        probs = self.probabilities(self.load_images(paths))
        k = min(top_k, len(self.classes))
        values, indices = probs.topk(k, dim=1)
        return [
            Prediction(str(p), [(self.classes[int(i)], float(v)) for v, i in zip(vs, ix, strict=True)])
            for p, vs, ix in zip(paths, values, indices, strict=True)
        ]


def predict(run_dir: str | Path, images: Sequence[str | Path], top_k: int = 5, device: str = "cpu") -> list[Prediction]:
    """Top-``top_k`` classes with probabilities for each image, from a run's final model."""
    return Predictor(run_dir, device=device).predict(images, top_k=top_k)


def format_predictions(results: Sequence[Prediction]) -> str:
    """One block per image: its path, then ``  class  probability`` per line."""
    lines = []
    for r in results:
        lines.append(r.image)
        width = max(len(c) for c, _ in r.top_k)
        lines.extend(f"  {c:<{width}}  {p:7.2%}" for c, p in r.top_k)
    return "\n".join(lines)
