"""Target datasets: load them as uint8 image tensors split into train / val / test."""

from __future__ import annotations

from pathlib import Path

from layerswarm.data.config import BUILTIN_DATASETS, PAPER_DATASETS, DataConfig
from layerswarm.data.imageset import DatasetSplits, ImageSet, SearchSplits
from layerswarm.errors import LayerswarmError

__all__ = [
    "BUILTIN_DATASETS",
    "PAPER_DATASETS",
    "DataConfig",
    "DatasetSplits",
    "ImageSet",
    "SearchSplits",
    "load_dataset",
]

_FASHION_ALIASES = frozenset({"fashion-mnist", "fashion_mnist", "fashionmnist"})


def load_dataset(cfg: DataConfig) -> DatasetSplits:
    """Load ``cfg.data``: ``digits``, ``fashion-mnist``, ``NAME:ROOT`` for a paper dataset,
    or a path to an ImageFolder tree; text data (``wordnet``, a CSV/TSV/JSONL file, a folder of
    .txt files) with ``cfg.text.tokenizer`` (a text model's, set by ``DataConfig.resolved``)."""
    # imported here so that `import layerswarm.data` stays light (no PIL/sklearn/scipy)
    from layerswarm.data import builtin, imagefolder, paper, textfiles

    data = cfg.data.strip()
    if textfiles.is_text_data(data):
        from layerswarm.data.text import load_text_splits

        return load_text_splits(cfg)
    if cfg.text.tokenizer:
        raise LayerswarmError(
            f"--data {data} holds images but the model reads text: pick an image model "
            "(e.g. --model efficientnet_lite0) or text data (wordnet, a CSV/TSV/JSONL file)"
        )
    cfg = cfg.resolved()  # input size, crop, interpolation: the caller's, else the defaults
    key = data.lower()
    if key == "digits":
        splits = builtin.load_digits_splits(cfg)
    elif key in _FASHION_ALIASES:
        splits = builtin.load_fashion_mnist_splits(cfg)
    elif paper.parse_paper_spec(data, cfg.data_root) is not None:
        splits = paper.load_paper_splits(cfg)
    elif not Path(data).expanduser().exists():
        raise LayerswarmError(imagefolder.missing_data_message(data))
    else:
        splits = imagefolder.load_imagefolder_splits(cfg)
    splits.input_config = {
        "image_size": cfg.image.size,
        "crop_pct": cfg.image.crop_pct,
        "interpolation": cfg.image.interpolation,
    }
    return splits
