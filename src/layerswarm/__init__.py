"""layerswarm: adaptive fine-tuning by searching which layers to freeze (PSO and friends)."""

from .bundle import ModelBundle, ModelConfig, build_bundle
from .data import DataConfig, DatasetSplits, load_dataset
from .errors import LayerswarmError
from .finetune import run_finetune
from .fitness import Evaluation, MaskFitness
from .search import RunConfig, SearchConfig, run_search
from .training import TrainConfig

__version__ = "0.1.0"

__all__ = [
    "DataConfig", "DatasetSplits", "Evaluation", "LayerswarmError", "MaskFitness", "ModelBundle",
    "ModelConfig", "RunConfig", "SearchConfig", "TrainConfig", "build_bundle", "load_dataset",
    "run_finetune", "run_search",
]
