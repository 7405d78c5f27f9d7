"""Model creation: any timm model, torchvision (``tv:NAME``), offline EfficientNet-Lite."""

from .factory import ModelInfo, create_model
from .weights import read_state_dict

__all__ = ["ModelInfo", "create_model", "read_state_dict"]
