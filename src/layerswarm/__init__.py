"""layerswarm: adaptive fine-tuning by searching which layers to freeze (PSO and friends).

Names are imported on first use (PEP 562), so ``import layerswarm`` and the command line's
``--help`` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ModelBundle": "bundle", "build_bundle": "bundle",
    "ModelConfig": "model_config",
    "DataConfig": "data", "DatasetSplits": "data", "load_dataset": "data",
    "LayerswarmError": "errors",
    "run_finetune": "finetune",
    "Evaluation": "evaluation", "MaskFitness": "fitness",
    "RunConfig": "search", "SearchConfig": "search", "run_search": "search",
    "TrainConfig": "training",
    "apply_mask": "export", "export_mask": "export",
}

__all__ = [
    "DataConfig", "DatasetSplits", "Evaluation", "LayerswarmError", "MaskFitness", "ModelBundle", "ModelConfig",
    "RunConfig", "SearchConfig", "TrainConfig", "apply_mask", "build_bundle", "export_mask", "load_dataset",
    "run_finetune", "run_search",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'layerswarm' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs
    from .bundle import ModelBundle, build_bundle
    from .data import DataConfig, DatasetSplits, load_dataset
    from .errors import LayerswarmError
    from .evaluation import Evaluation
    from .export import apply_mask, export_mask
    from .finetune import run_finetune
    from .fitness import MaskFitness
    from .model_config import ModelConfig
    from .search import RunConfig, SearchConfig, run_search
    from .training import TrainConfig
