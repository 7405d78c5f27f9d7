"""Shared fixtures: tiny real data and tiny models, so tests run in seconds on a CPU."""

from __future__ import annotations

import os

# Tests are offline by design (tiny models built from configs, packaged weights): transformers
# must not look for a hub it cannot reach and wait on retries
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from layerswarm.data import DataConfig, load_dataset  # noqa: E402
from layerswarm.data.config import ImageConfig, SplitConfig

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def digits16():
    """sklearn digits at 16 px, 8 train / 4 val per class (80 / 40 images), real test split."""
    return load_dataset(
        DataConfig(
            data="digits",
            image=ImageConfig(size=16),
            splits=SplitConfig(train_per_class=8, val_per_class=4, max_test=60),
        )
    )
