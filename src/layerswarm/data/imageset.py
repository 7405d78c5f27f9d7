"""In-memory datasets: images decoded once and held as uint8 tensors, texts tokenised once and
held as padded token ids. The trainer reads ``inputs`` and ``labels`` of either."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


class _Examples:
    """What the trainer reads of a set: ``inputs`` and ``labels``, indexed and moved together.
    A subclass is a dataclass of two fields, its inputs then ``labels``."""

    labels: torch.Tensor

    @property
    def inputs(self) -> torch.Tensor:
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor):
        return type(self)(self.inputs[index], self.labels[index])

    def to(self, device: torch.device | str):
        return type(self)(self.inputs.to(device), self.labels.to(device))


@dataclass
class ImageSet(_Examples):
    """Images ``uint8 [N, C, H, W]`` (C is 1 or 3) and labels ``int64 [N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N,C,H,W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be [N] and match images")
        self.labels = self.labels.long()

    @property
    def inputs(self) -> torch.Tensor:
        return self.images


@dataclass
class TextSet(_Examples):
    """Token ids ``int64 [N, L]`` (each text padded at the end with the tokenizer's pad id up to
    the longest, at most ``max_length``) and labels ``int64 [N]``."""

    tokens: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.tokens.dtype != torch.int64 or self.tokens.ndim != 2:
            raise ValueError(f"tokens must be int64 [N,L], got {self.tokens.dtype} {tuple(self.tokens.shape)}")
        if self.labels.shape != (self.tokens.shape[0],):
            raise ValueError("labels must be [N] and match tokens")
        self.labels = self.labels.long()

    @property
    def inputs(self) -> torch.Tensor:
        return self.tokens


@dataclass
class SearchSplits:
    """What a search may see: training and validation data, never the test split."""

    train: ImageSet
    val: ImageSet
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class DatasetSplits:
    """Train / validation / test splits of one target dataset."""

    train: ImageSet
    val: ImageSet
    test: ImageSet
    classes: list[str]
    name: str = "dataset"
    input_config: dict = field(default_factory=dict)  # image_size, crop_pct, interpolation (saved with a model)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def for_search(self) -> SearchSplits:
        """The view handed to a search: the test split is structurally absent."""
        return SearchSplits(self.train, self.val, self.classes)

    def summary(self) -> str:
        if isinstance(self.train, TextSet):
            what = f"texts of at most {self.train.tokens.shape[1]} tokens"
        else:
            what = "images " + "x".join(str(s) for s in self.train.images.shape[1:])
        return (
            f"{self.name}: {self.num_classes} classes, train {len(self.train)}, "
            f"val {len(self.val)}, test {len(self.test)}, {what}"
        )
