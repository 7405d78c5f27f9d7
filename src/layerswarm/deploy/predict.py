"""Classify images or texts with a saved final model (``final/model.safetensors`` of a run).

The model file carries what is needed to rebuild it (model name, classes, and how training fed
it: image size, crop and normalisation, or the tokenizer and ``max_length``; see
:func:`layerswarm.run.finetune.save_model`), so a run folder is enough: no config, no dataset. Images
are decoded exactly as the ImageFolder loader decodes them and normalised exactly as the trainer
does at evaluation time; texts are tokenised exactly as :mod:`layerswarm.data.text` tokenised the
training texts. A text model rebuilds from its Hugging Face folder (``hf:PATH``) or weights
package, which must still be there: the config and tokenizer are read from it again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.imagefolder import _decode_one
from ..errors import LayerswarmError
from ..models import create_model
from ..models.probe import IntermediateProbe
from ..run.finetune import load_model_metadata, load_saved_state
from ..training import BatchTransform, resolve_device

MODEL_FILE = "model.safetensors"
TEXT_HINT = 'pass texts (layerswarm predict RUN_DIR "some text", or --lines FILE)'
IMAGE_HINT = "pass image files or folders of them"


def find_model_file(path: str | Path) -> Path:
    """``path`` itself, ``path/model.safetensors``, the model ``path/answer.json`` names (a search
    run with ``--answer validation``) or ``path/final/model.safetensors``."""
    from ..io import read_json
    from ..run.answer import ANSWER_FILE

    path = Path(path)
    if (path / ANSWER_FILE).is_file() and not (path / MODEL_FILE).is_file():
        answered = path / read_json(path / ANSWER_FILE)["model_dir"] / MODEL_FILE
        if not answered.is_file():  # never another model than the run's answer, silently
            raise LayerswarmError(
                f"'{path / ANSWER_FILE}' names {answered}, which is missing: restore it, or pass "
                f"the model to use ({path / 'final'} is the searched mask's)"
            )
        return answered
    for candidate in (path, path / MODEL_FILE, path / "final" / MODEL_FILE):
        if candidate.is_file():
            return candidate
    raise LayerswarmError(
        f"no saved model in '{path}': pass a run folder holding final/{MODEL_FILE} "
        "(written by 'layerswarm search' or 'layerswarm finetune') or the .safetensors file"
    )


@dataclass
class Prediction:
    input: str  # the image's path, or the text
    top_k: list[tuple[str, float]]  # (class, probability), most probable first
    kind: str = "image"  # "image" or "text": the key of ``input`` in :meth:`to_dict`

    @property
    def image(self) -> str:
        """The image's path (or the text): ``input`` by its name from before texts."""
        return self.input

    def to_dict(self) -> dict:
        return {self.kind: self.input, "top_k": [{"class": c, "probability": p} for c, p in self.top_k]}


class Predictor:
    """A saved model, ready to classify image files or texts (whichever it was trained on)."""

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
        self.device = resolve_device(device)
        info = meta["model"]
        self.model_name: str = info["name"]
        extra = info.get("extra") or {}
        self.kind = "text" if extra.get("modality") == "text" else "image"
        self.transform = self.tokenizer = None
        if self.is_text:
            self._check_text_source()
            from ..models.text import load_tokenizer

            self.max_length = int(meta["max_length"])
            # the tokenizer that read the training texts (--tokenizer, where saved), else the model's
            self.tokenizer = load_tokenizer(meta.get("tokenizer") or extra.get("tokenizer") or self.model_name)
            if "pad_token_id" in extra and self.tokenizer.pad_token_id != extra["pad_token_id"]:
                raise LayerswarmError(
                    f"the tokenizer of '{self.model_name}' pads with id {self.tokenizer.pad_token_id}, training "
                    f"padded with {extra['pad_token_id']}: restore the model folder the run was trained from"
                )
        else:
            self.image_size = int(meta["image_size"])
            # models saved before crop_pct was recorded were decoded at image_size, bilinear
            self.resize = max(self.image_size, round(self.image_size / float(meta.get("crop_pct", 1.0))))
            self.interpolation = meta.get("interpolation", "bilinear")
            self.transform = BatchTransform(info["mean"], info["std"], augment="none")
        # 'none': the saved state replaces every weight, so nothing is downloaded or loaded twice
        model, _ = create_model(
            self.model_name, num_classes=len(self.classes), weights="none", pooling=extra.get("pooling", "mean")
        )
        if "probe" in meta:  # a linear probe on an intermediate unit
            model = IntermediateProbe.rebuild(model, meta["probe"], len(self.classes))
        model.load_state_dict(load_saved_state(self.path))
        self.model = model.to(self.device).eval()

    @property
    def is_text(self) -> bool:
        return self.kind == "text"

    def _check_text_source(self) -> None:
        """A local ``hf:PATH`` folder must still exist: the config and tokenizer come from it."""
        from ..models.text import model_folder

        name = self.model_name
        if not name.startswith("hf:"):
            return  # a packaged model: its own error names the package to install
        try:
            model_folder(name)
        except LayerswarmError as err:
            raise LayerswarmError(
                f"'{self.path}' was fine-tuned from the folder '{name[3:]}', which no longer exists: predict "
                "reads its config and tokenizer again, so restore that folder at the same path"
            ) from err

    def _require(self, kind: str) -> None:
        if kind == self.kind:
            return
        if self.is_text:
            raise LayerswarmError(
                f"'{self.path}' holds a text model ({self.model_name}), not an image model: {TEXT_HINT}"
            )
        raise LayerswarmError(
            f"'{self.path}' holds an image model ({self.model_name}), not a text model: {IMAGE_HINT}, "
            "or the run folder of a text model (--model all-minilm-l6-v2 or hf:PATH)"
        )

    def load_images(self, paths: Sequence[str | Path]) -> torch.Tensor:
        """uint8 ``[N, 3, S, S]``: RGB, shorter side resized to S, centre crop (as the loader)."""
        self._require("image")
        out = torch.empty((len(paths), 3, self.image_size, self.image_size), dtype=torch.uint8)
        for i, p in enumerate(paths):
            if not os.path.isfile(p):  # os.path: False, not an error, for a name too long
                raise LayerswarmError(f"image '{p}' does not exist: pass paths to image files")
            try:
                out[i] = torch.from_numpy(_decode_one(Path(p), self.image_size, self.resize, self.interpolation))
            except Exception as err:  # any decoder failure: not a readable image
                raise LayerswarmError(
                    f"cannot decode image '{p}' ({type(err).__name__}): pass a JPEG, PNG or other image file"
                ) from err
        return out

    def token_ids(self, texts: Sequence[str]) -> torch.Tensor:
        """int64 ``[N, L]``: the texts tokenised as the training texts were (cut at
        ``max_length``, padded at the end to the longest)."""
        from ..data.text import tokenize

        self._require("text")
        if not texts:
            return torch.empty((0, 1), dtype=torch.int64)
        return tokenize(self.tokenizer, list(texts), self.max_length)

    @torch.no_grad()
    def probabilities(self, inputs: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Softmax class probabilities ``[N, num_classes]`` of uint8 images, or of a text model's
        token ids (:meth:`token_ids`)."""
        if (inputs.dtype == torch.int64) != self.is_text:
            self._require("text" if inputs.dtype == torch.int64 else "image")
        chunks = []
        for start in range(0, inputs.shape[0], batch_size):
            x = inputs[start : start + batch_size].to(self.device)
            if self.transform is not None:
                x = self.transform(x, train=False)
            chunks.append(torch.softmax(self.model(x).float(), dim=1).cpu())
        return torch.cat(chunks) if chunks else torch.empty((0, len(self.classes)))

    def rank(self, inputs: Sequence[str], probs: torch.Tensor, top_k: int = 5) -> list[Prediction]:
        """One :class:`Prediction` per input: its ``top_k`` classes (at most all), most probable first."""
        _check_top_k(top_k)
        values, indices = probs.topk(min(top_k, len(self.classes)), dim=1)
        return [
            Prediction(str(p), [(self.classes[int(i)], float(v)) for v, i in zip(vs, ix, strict=True)], self.kind)
            for p, vs, ix in zip(inputs, values, indices, strict=True)
        ]

    def predict(self, paths: Sequence[str | Path], top_k: int = 5) -> list[Prediction]:
        """Top-``top_k`` classes of image files."""
        self._require("image")
        _check_top_k(top_k)
        return self.rank([str(p) for p in paths], self.probabilities(self.load_images(paths)), top_k)

    def predict_texts(self, texts: Sequence[str], top_k: int = 5, batch_size: int = 64) -> list[Prediction]:
        """Top-``top_k`` classes of texts."""
        self._require("text")
        _check_top_k(top_k)
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise LayerswarmError(f"text {i + 1} is a {type(text).__name__}, not a string: pass texts as str")
        return self.rank(texts, self.probabilities(self.token_ids(texts), batch_size), top_k)


def _check_top_k(top_k: int) -> None:
    if top_k < 1:
        raise LayerswarmError(f"--top-k {top_k} must be at least 1")


def predict(run_dir: str | Path, images: Sequence[str | Path], top_k: int = 5, device: str = "cpu") -> list[Prediction]:
    """Top-``top_k`` classes with probabilities for each image, from a run's final model."""
    return Predictor(run_dir, device=device).predict(images, top_k=top_k)


def predict_texts(run_dir: str | Path, texts: Sequence[str], top_k: int = 5, device: str = "cpu") -> list[Prediction]:
    """Top-``top_k`` classes with probabilities for each text, from a run's final text model."""
    return Predictor(run_dir, device=device).predict_texts(texts, top_k=top_k)


def read_text_lines(spec: str) -> list[str]:
    """The non-empty lines (stripped) of a UTF-8 file, or of standard input for ``-``."""
    import sys

    name = "standard input" if spec == "-" else f"lines file '{spec}'"
    try:
        if spec == "-":
            stdin = sys.stdin
            raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read()
        else:
            raw = Path(spec).read_bytes()
    except FileNotFoundError as err:
        raise LayerswarmError(
            f"{name} does not exist: pass a text file with one text per line, or - for standard input"
        ) from err
    except OSError as err:
        raise LayerswarmError(
            f"cannot read {name} ({type(err).__name__}): pass a text file with one text per line"
        ) from err
    try:
        content = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as err:
        raise LayerswarmError(
            f"{name} is not UTF-8 text (byte {err.start}): pass a UTF-8 text file with one text per line"
        ) from err
    lines = [line.strip() for line in content.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise LayerswarmError(f"{name} holds no text: pass a file with one text per non-empty line")
    return lines


def _shown(text: str, width: int = 100) -> str:
    text = " ".join(text.split())  # one line: a text's own line breaks and tabs become spaces
    return text if len(text) <= width else text[: width - 3] + "..."


def format_predictions(results: Sequence[Prediction]) -> str:
    """One block per image or text: its path (a text: on one line, cut at 100 characters), then
    ``  class  probability`` per line."""
    lines = []
    for r in results:
        lines.append(_shown(r.input) if r.kind == "text" else r.input)
        width = max(len(c) for c, _ in r.top_k)
        lines.extend(f"  {c:<{width}}  {p:7.2%}" for c, p in r.top_k)
    return "\n".join(lines)
