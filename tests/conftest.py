"""Shared fixtures: tiny real data and tiny models, so tests run in seconds on a CPU."""

from __future__ import annotations

import pytest
import torch

from layerswarm.data import DataConfig, load_dataset

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def digits16():
    """sklearn digits at 16 px, 8 train / 4 val per class (80 / 40 images), real test split."""
    return load_dataset(DataConfig(data="digits", image_size=16, train_per_class=8, val_per_class=4, max_test=60))
