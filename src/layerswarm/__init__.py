"""layerswarm: adaptive fine-tuning by searching which layers to freeze (PSO and friends).

Names are imported on first use (PEP 562), so ``import layerswarm`` and the command line's
``--help`` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ModelBundle": "models.bundle",
    "build_bundle": "models.bundle",
    "ModelConfig": "models.config",
    "DataConfig": "data",
    "DatasetSplits": "data",
    "load_dataset": "data",
    "LayerswarmError": "errors",
    "run_finetune": "run.finetune",
    "Evaluation": "fitness.evaluation",
    "MaskFitness": "fitness.mask_fitness",
    "RunConfig": "run.config",
    "SearchConfig": "run.search_config",
    "run_search": "run.search",
    "TrainConfig": "training",
    "apply_mask": "deploy.export",
    "export_mask": "deploy.export",
    "param_groups": "deploy.export",
    "Study": "study",
    "Trial": "study",
    "create_study": "study",
    # the groups of TrainConfig, DataConfig and SearchConfig
    "OptimConfig": "training.config",
    "AugmentConfig": "training.config",
    "EvalConfig": "training.config",
    "RuntimeConfig": "training.config",
    "SplitConfig": "data.config",
    "ImageConfig": "data.config",
    "TextConfig": "data.config",
    "SearcherConfig": "run.search_config",
    "ExecutorConfig": "run.search_config",
    "FitnessConfig": "run.search_config",
    "SelectionConfig": "run.search_config",
    "AnswerConfig": "run.search_config",
}

__all__ = [
    "AnswerConfig",
    "AugmentConfig",
    "DataConfig",
    "DatasetSplits",
    "EvalConfig",
    "Evaluation",
    "ExecutorConfig",
    "FitnessConfig",
    "ImageConfig",
    "LayerswarmError",
    "MaskFitness",
    "ModelBundle",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "RuntimeConfig",
    "SearchConfig",
    "SearcherConfig",
    "SelectionConfig",
    "SplitConfig",
    "Study",
    "TextConfig",
    "TrainConfig",
    "Trial",
    "apply_mask",
    "build_bundle",
    "create_study",
    "export_mask",
    "load_dataset",
    "param_groups",
    "run_finetune",
    "run_search",
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
    from .data import DataConfig, DatasetSplits, load_dataset
    from .data.config import ImageConfig, SplitConfig, TextConfig
    from .deploy.export import apply_mask, export_mask, param_groups
    from .errors import LayerswarmError
    from .fitness.evaluation import Evaluation
    from .fitness.mask_fitness import MaskFitness
    from .models.bundle import ModelBundle, build_bundle
    from .models.config import ModelConfig
    from .run.config import RunConfig
    from .run.finetune import run_finetune
    from .run.search import run_search
    from .run.search_config import (
        AnswerConfig,
        ExecutorConfig,
        FitnessConfig,
        SearchConfig,
        SearcherConfig,
        SelectionConfig,
    )
    from .study import Study, Trial, create_study
    from .training import TrainConfig
    from .training.config import AugmentConfig, EvalConfig, OptimConfig, RuntimeConfig
