"""Layer units (one mask bit each) and freeze masks."""

from .mask import apply_mask, frozen_modules, load_mask, save_mask, train_mode, validate_mask
from .units import GRANULARITIES, Unit, split_units

__all__ = [
    "GRANULARITIES", "Unit", "apply_mask", "frozen_modules", "load_mask", "save_mask",
    "split_units", "train_mode", "validate_mask",
]
