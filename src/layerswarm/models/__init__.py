"""Model creation: any timm model, torchvision (``tv:NAME``), offline EfficientNet-Lite.

The factory is imported on first use (PEP 562), so that the torch-free ``models.config`` (model
names and options, read by the command line's ``--help``) does not import torch with its package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"ModelInfo": "factory", "create_model": "factory", "read_state_dict": "weights"}
__all__ = ["ModelInfo", "create_model", "read_state_dict"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from .factory import ModelInfo, create_model
    from .weights import read_state_dict
