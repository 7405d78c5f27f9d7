"""Built-in datasets: scikit-learn's digits and Fashion-MNIST from its idx files."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import center_crop

from layerswarm.data.config import DataConfig
from layerswarm.data.imageset import DatasetSplits, ImageSet
from layerswarm.data.splits import (
    STAGE_TEST,
    split_pools,
    stratified_split,
)
from layerswarm.errors import LayerswarmError

FASHION_MNIST_DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_FIX_FASHION = (
    "install it with `apt-get install dataset-fashion-mnist` or pass --data-root DIR holding the four idx files"
)
_RESIZE_CHUNK = 4096  # images per interpolate call: bounds the float32 working memory


def resize_images(images: torch.Tensor, size: int, chunk: int = _RESIZE_CHUNK) -> torch.Tensor:
    """Resize uint8 ``[N,C,h,w]`` to ``[N,C,size,size]`` (bilinear, antialiased), in chunks."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk].float()
        part = F.interpolate(part, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _splits_from_pools(
    images: torch.Tensor,
    labels: np.ndarray,
    train_pool: np.ndarray,
    test_idx: np.ndarray,
    cfg: DataConfig,
    classes: list[str],
    name: str,
) -> DatasetSplits:
    """Validation from the training pool, few-shot training from the rest, capped test;
    only the selected images are resized."""
    parts = split_pools(labels, train_pool, test_idx, cfg, classes)
    size, resize = cfg.resolved().image.size, cfg.resize_size

    def make(idx: np.ndarray) -> ImageSet:
        index = torch.from_numpy(idx)
        resized = resize_images(images[index], resize)
        return ImageSet(
            center_crop(resized, [size, size]) if resize != size else resized, torch.from_numpy(labels[idx])
        )

    return DatasetSplits(make(parts["train"]), make(parts["val"]), make(parts["test"]), list(classes), name)


def load_digits_splits(cfg: DataConfig) -> DatasetSplits:
    """scikit-learn's 8x8 digits (1,797 images, 1 channel), split test/val/train by the config."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # values are 0..16 grey levels: stretch to the 0..255 range of every other dataset
    pixels = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    images = torch.from_numpy(pixels).unsqueeze(1)
    labels = np.asarray(bunch.target, dtype=np.int64)
    classes = [str(c) for c in range(10)]
    # no official test split: hold a stratified test fraction out first
    test_idx, train_pool = stratified_split(
        labels, cfg.splits.test_fraction, cfg.splits.seed, stage=STAGE_TEST, classes=classes
    )
    return _splits_from_pools(images, labels, train_pool, test_idx, cfg, classes, "digits")


# --- Fashion-MNIST -------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8}  # Fashion-MNIST uses unsigned bytes only


def _find_idx_file(root: Path, base: str) -> Path:
    for candidate in (root / base, root / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    raise LayerswarmError(f"Fashion-MNIST file '{base}[.gz]' not found in '{root}': {_FIX_FASHION}")


def read_idx(path: str | Path, expected_ndim: int | None = None) -> np.ndarray:
    """Parse an idx file (gzip-compressed or not): magic ``00 00 <dtype> <ndim>``, then
    ``ndim`` big-endian uint32 sizes, then the data."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise LayerswarmError(f"cannot read idx file '{path}' ({_first_line(err)}): {_FIX_FASHION}") from err
    corrupt = f"idx file '{path}' is corrupt"
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise LayerswarmError(f"{corrupt} (bad magic number {raw[:4].hex() or 'empty'}): {_FIX_FASHION}")
    ndim = raw[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise LayerswarmError(f"{corrupt} ({ndim} dimensions, expected {expected_ndim}): {_FIX_FASHION}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise LayerswarmError(f"{corrupt} (truncated header): {_FIX_FASHION}")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise LayerswarmError(f"{corrupt} ({len(raw) - header} data bytes, header says {expected}): {_FIX_FASHION}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _read_pair(root: Path, images_key: str, labels_key: str) -> tuple[np.ndarray, np.ndarray]:
    img_path = _find_idx_file(root, FASHION_MNIST_FILES[images_key])
    lab_path = _find_idx_file(root, FASHION_MNIST_FILES[labels_key])
    images = read_idx(img_path, expected_ndim=3)
    labels = read_idx(lab_path, expected_ndim=1).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise LayerswarmError(
            f"'{img_path}' holds {images.shape[0]} images but '{lab_path}' {labels.shape[0]} labels: {_FIX_FASHION}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_CLASSES)):
        raise LayerswarmError(f"'{lab_path}' has labels outside 0..9: {_FIX_FASHION}")
    return images, labels


def load_fashion_mnist_splits(cfg: DataConfig) -> DatasetSplits:
    """Fashion-MNIST: validation (then few-shot training) from the official training files,
    the official test files as test (capped by ``max_test``)."""
    root = Path(cfg.data_root or FASHION_MNIST_DEFAULT_ROOT).expanduser()
    if not root.is_dir():
        raise LayerswarmError(f"Fashion-MNIST folder '{root}' does not exist: {_FIX_FASHION}")
    train_x, train_y = _read_pair(root, "train_images", "train_labels")
    test_x, test_y = _read_pair(root, "test_images", "test_labels")
    # one image tensor with both splits; the test images come after the training ones
    images = torch.from_numpy(np.concatenate([train_x, test_x])).unsqueeze(1)
    labels = np.concatenate([train_y, test_y])
    train_pool = np.arange(len(train_y))
    test_idx = np.arange(len(train_y), len(labels))
    return _splits_from_pools(images, labels, train_pool, test_idx, cfg, FASHION_MNIST_CLASSES, "fashion-mnist")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
