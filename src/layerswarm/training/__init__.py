"""One trainer for every fitness evaluation and final fine-tune."""

from .augment import BatchTransform
from .config import TrainConfig
from .hooks import TrainHooks
from .trainer import History, NonFiniteLossError, evaluate, fit, resolve_device

__all__ = [
    "BatchTransform",
    "History",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainHooks",
    "evaluate",
    "fit",
    "resolve_device",
]
