"""Layer units (one mask bit each) and freeze masks."""

from .mask import (
    apply_mask,
    frozen_modules,
    keep_eval,
    load_lr_multipliers,
    load_mask,
    save_mask,
    train_mode,
    validate_lr_multipliers,
    validate_mask,
)
from .units import GRANULARITIES, Unit, split_units, units_from_groups

__all__ = [
    "GRANULARITIES",
    "Unit",
    "apply_mask",
    "frozen_modules",
    "keep_eval",
    "load_lr_multipliers",
    "load_mask",
    "save_mask",
    "split_units",
    "train_mode",
    "units_from_groups",
    "validate_lr_multipliers",
    "validate_mask",
]
