"""Text datasets: read, split like images (stratified, seeded), tokenised once.

The texts come from :mod:`layerswarm.data.textfiles` (WordNet definitions, a CSV/TSV/JSONL file,
a folder of .txt files); the split is the images' (test held out first, then validation and the
few-shot training texts per class); each split becomes a :class:`TextSet` of token ids padded to
its longest text, at most ``max_length``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import LayerswarmError
from .config import DEFAULT_MAX_LENGTH, DataConfig
from .imageset import DatasetSplits, TextSet
from .splits import STAGE_TEST, split_pools, stratified_split
from .textfiles import read_text_data


def _unique(texts: list[str], names: list[str]) -> tuple[list[str], list[str]]:
    """Each text once (WordNet repeats some definitions): a repeat could land in train and test
    both; a text given two labels is dropped, it cannot be classified right."""
    labels: dict[str, set[str]] = {}
    for text, name in zip(texts, names, strict=True):
        labels.setdefault(text, set()).add(name)
    kept = [(t, next(iter(ls))) for t, ls in labels.items() if len(ls) == 1]
    return [t for t, _ in kept], [n for _, n in kept]


def tokenize(tokenizer, texts: list[str], max_length: int) -> torch.Tensor:
    """Token ids ``int64 [N, L]``, L the longest text's length (at most ``max_length``), padded at
    the end with the tokenizer's pad id (the model cuts each batch to its own longest)."""
    if tokenizer.padding_side != "right":
        tokenizer.padding_side = "right"
    encoded = tokenizer(
        list(texts), max_length=max_length, truncation=True, padding="longest", return_attention_mask=False
    )
    return torch.tensor(encoded["input_ids"], dtype=torch.int64)


def load_text_splits(cfg: DataConfig) -> DatasetSplits:
    """``cfg.data`` as train / val / test splits of token ids from ``cfg.text.tokenizer``."""
    from ..models.text import load_tokenizer, model_positions

    if not cfg.text.tokenizer:
        raise LayerswarmError(f"--data {cfg.data} is text: pick a text model, e.g. --model all-minilm-l6-v2 or hf:PATH")
    texts, names = _unique(
        *read_text_data(
            cfg.data,
            text_column=cfg.text.text_column,
            label_column=cfg.text.label_column,
            categories=cfg.text.categories,
        )
    )
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[n] for n in names], dtype=np.int64)
    test_idx, train_pool = stratified_split(
        labels, cfg.splits.test_fraction, cfg.splits.seed, stage=STAGE_TEST, classes=classes
    )
    parts = split_pools(labels, train_pool, test_idx, cfg, classes)
    tokenizer = load_tokenizer(cfg.text.tokenizer)
    max_length = cfg.text.max_length or DEFAULT_MAX_LENGTH
    positions = model_positions(cfg.text.tokenizer)
    if positions is not None and max_length > positions:
        if cfg.text.max_length:
            raise LayerswarmError(
                f"--max-length {cfg.text.max_length} exceeds the {positions} positions of "
                f"{cfg.text.tokenizer}: pass --max-length {positions} or less"
            )
        max_length = positions

    def make(idx: np.ndarray) -> TextSet:
        return TextSet(tokenize(tokenizer, [texts[i] for i in idx], max_length), torch.from_numpy(labels[idx]))

    name = "wordnet" if cfg.data.strip().lower() == "wordnet" else cfg.data
    splits = DatasetSplits(make(parts["train"]), make(parts["val"]), make(parts["test"]), classes, name)
    splits.input_config = {"max_length": max_length, "tokenizer": cfg.text.tokenizer}
    return splits
