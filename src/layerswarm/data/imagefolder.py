"""ImageFolder trees: class subfolders of images, split on disk or split here.

Splits are chosen on the file lists first, so only the images that are used get
decoded, each exactly once, straight to a ``SIZE x SIZE`` uint8 array.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from layerswarm.data.config import BUILTIN_DATASETS, PAPER_DATASETS, DataConfig
from layerswarm.data.imageset import DatasetSplits, ImageSet
from layerswarm.data.splits import (
    STAGE_TEST,
    stratified_split,
    subsample_stratified,
    take_per_class,
    train_val_indices,
)
from layerswarm.errors import LayerswarmError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


class BadImageWarning(UserWarning):
    """Some image files could not be decoded and were skipped."""


def missing_data_message(path: str) -> str:
    names = ", ".join(f"'{n}'" for n in BUILTIN_DATASETS)
    papers = ", ".join(f"'{n}:ROOT'" for n in PAPER_DATASETS)
    return (
        f"data folder '{path}' does not exist: pass --data PATH to an ImageFolder tree "
        f"(class subfolders of images), or {names}, or one of {papers}"
    )


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, hidden entries skipped), sorted."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames if is_image_file(Path(f)))
    return sorted(found)


def class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_class_tree(folder: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """``(classes, files, labels)`` of one folder of class subfolders."""
    subdirs = class_folders(folder)
    if not subdirs:
        loose = sum(1 for p in folder.iterdir() if p.is_file() and is_image_file(p))
        hint = f" (it holds {loose} images directly)" if loose else ""
        raise LayerswarmError(
            f"no class subfolders in '{folder}'{hint}: an ImageFolder tree needs one subfolder "
            f"per class holding its images, e.g. '{folder / 'cat' / '1.png'}'"
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, sub in enumerate(subdirs):
        images = list_images(sub)
        if not images:
            raise LayerswarmError(
                f"class folder '{sub}' has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}): "
                "add images to it or remove the folder"
            )
        files.extend(images)
        labels.extend([label] * len(images))
    return [p.name for p in subdirs], files, np.asarray(labels, dtype=np.int64)


# --- decoding ------------------------------------------------------------------------------


def _decode_one(path: Path, size: int, resize: int | None = None, interpolation: str = "bilinear") -> np.ndarray:
    """Decode, resize the shorter side to ``resize`` (default ``size``), centre-crop ``size``
    (timm's evaluation transform with crop_pct = size / resize): uint8 ``[3, size, size]``."""
    resize = max(resize or size, size)
    with Image.open(path) as img:
        # JPEG can decode at a reduced scale (still >= resize on both sides): much faster
        img.draft("RGB", (resize, resize))
        img = img.convert("RGB")
        w, h = img.size
        scale = resize / min(w, h)
        new_w, new_h = max(resize, round(w * scale)), max(resize, round(h * scale))
        img = img.resize((new_w, new_h), Image.Resampling[interpolation.upper()])
        left, top = (new_w - size) // 2, (new_h - size) // 2
        img = img.crop((left, top, left + size, top + size))
        return np.array(img, dtype=np.uint8).transpose(2, 0, 1)  # a writable copy


def _try_decode(path: Path, size: int, resize: int | None, interpolation: str) -> np.ndarray | str:
    try:
        return _decode_one(path, size, resize, interpolation)
    except Exception as err:  # any decoder failure means "not a readable image"
        text = str(err).strip().replace(f" '{path}'", "").replace(str(path), "file")
        return text.splitlines()[0] if text else type(err).__name__


def decode_images(
    paths: Sequence[Path],
    size: int,
    on_bad_image: str = "skip",
    resize: int | None = None,
    interpolation: str = "bilinear",
) -> tuple[torch.Tensor, np.ndarray]:
    """Decode ``paths`` in a thread pool (PIL releases the GIL while decoding).

    Returns ``(images uint8 [M,3,size,size], ok)`` where ``ok`` marks which of the
    ``paths`` were decoded. Unreadable files raise with ``on_bad_image='error'``; with
    ``'skip'`` they are left out and one :class:`BadImageWarning` counts them.
    """
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    bad: list[tuple[Path, str]] = []
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, result in enumerate(pool.map(lambda p: _try_decode(p, size, resize, interpolation), paths)):
            if isinstance(result, str):
                if on_bad_image == "error":
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise LayerswarmError(
                        f"cannot decode image '{paths[i]}' ({result}): fix or remove the file, "
                        "or pass --on-bad-image skip to skip unreadable images"
                    )
                bad.append((paths[i], result))
                continue
            out[i] = torch.from_numpy(result)
            ok[i] = True
    if bad:
        first, reason = min(bad, key=lambda item: str(item[0]))  # name the first on disk
        warnings.warn(
            f"skipped {len(bad)} of {len(paths)} image files that could not be decoded "
            f"(first: '{first}': {reason}); fix or remove them, or pass --on-bad-image error to stop on them",
            BadImageWarning,
            stacklevel=2,
        )
    # copy only when something was dropped: the image tensor can be gigabytes
    return (out if ok.all() else out[torch.from_numpy(ok)]), ok


def build_splits(
    files: Sequence[Path],
    labels: np.ndarray,
    parts: dict[str, np.ndarray],
    classes: list[str],
    cfg: DataConfig,
    name: str,
) -> DatasetSplits:
    """Decode the files of the ``train``/``val``/``test`` index arrays in one pass (one
    warning for all bad files) and package them as splits."""
    order = ("train", "val", "test")
    index = np.concatenate([parts[k] for k in order])
    cfg = cfg.resolved()  # a Python caller may not have resolved the input size: ImageNet's then
    images, ok = decode_images(
        [files[i] for i in index],
        cfg.image.size,
        cfg.image.on_bad_image,
        resize=cfg.resize_size,
        interpolation=cfg.image.interpolation,
    )
    kept_labels = torch.from_numpy(labels[index][ok])
    # the splits stay contiguous after dropping bad files: slice views, no copies
    sizes = [int(ok[a:b].sum()) for a, b in _bounds([len(parts[k]) for k in order])]
    sets = {}
    for key, (a, b) in zip(order, _bounds(sizes), strict=True):
        sets[key] = ImageSet(images[a:b], kept_labels[a:b])
    missing = sorted(set(range(len(classes))) - set(sets["train"].labels.tolist()))
    if missing:
        raise LayerswarmError(
            f"class '{classes[missing[0]]}' has no readable training images: fix or replace its image files"
        )
    return DatasetSplits(sets["train"], sets["val"], sets["test"], list(classes), name)


def _bounds(sizes: Sequence[int]) -> list[tuple[int, int]]:
    ends = np.cumsum(sizes).tolist()
    return list(zip([0, *ends[:-1]], ends, strict=True))


def _check_same_classes(a_name: str, a: list[str], b_name: str, b: list[str], root: Path) -> None:
    if a == b:
        return
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    detail = "; ".join(
        f"only in {n}/: {', '.join(v[:5])}{' ...' if len(v) > 5 else ''}"
        for n, v in ((a_name, only_a), (b_name, only_b))
        if v
    )
    raise LayerswarmError(
        f"class folders differ between {a_name}/ and {b_name}/ in '{root}' ({detail}): "
        "give both the same class subfolders"
    )


def load_imagefolder_splits(cfg: DataConfig) -> DatasetSplits:
    """Load ``cfg.data`` as an ImageFolder tree.

    With a ``train/`` subfolder: ``train/`` (and ``test/``, optional ``val/``) each hold
    class subfolders; without ``test/`` a test fraction of ``train/`` is held out; without
    ``val/`` validation is held out of ``train/``. Otherwise the folder itself holds the
    class subfolders and is split test -> validation -> few-shot training.
    """
    root = Path(cfg.data.strip()).expanduser()
    if not root.exists():
        raise LayerswarmError(missing_data_message(cfg.data))
    if not root.is_dir():
        raise LayerswarmError(
            f"data path '{root}' is a file, not a folder: pass --data a folder of class subfolders of images"
        )
    name = root.resolve().name or str(root)
    seed = cfg.splits.seed
    if (root / "train").is_dir():
        classes, files, labels = scan_class_tree(root / "train")
        pool = np.arange(len(files))
        val_idx: np.ndarray | None = None
        if (root / "test").is_dir():
            test_classes, test_files, test_labels = scan_class_tree(root / "test")
            _check_same_classes("train", classes, "test", test_classes, root)
            test_idx = np.arange(len(files), len(files) + len(test_files))
            files, labels = files + test_files, np.concatenate([labels, test_labels])
        else:  # no test split on disk: hold one out of train/
            test_idx, pool = stratified_split(labels, cfg.splits.test_fraction, seed, stage=STAGE_TEST, classes=classes)
        if (root / "val").is_dir():
            val_classes, val_files, val_labels = scan_class_tree(root / "val")
            _check_same_classes("train", classes, "val", val_classes, root)
            val_idx = np.arange(len(files), len(files) + len(val_files))
            files, labels = files + val_files, np.concatenate([labels, val_labels])

            def take(idx: np.ndarray, k: int | None, flag: str) -> np.ndarray:
                """``k`` images per class of ``idx`` (all with ``k=None``)."""
                if k is None:
                    return idx
                return idx[take_per_class(labels[idx], k, seed, classes=classes, fix=f"lower {flag}")]

            val_idx = take(val_idx, cfg.splits.val_per_class, "--val-per-class")
            pool = take(pool, cfg.splits.train_per_class, "--train-per-class")
            train_idx = pool
        else:
            tr, va = _train_val(labels[pool], cfg, classes)
            train_idx, val_idx = pool[tr], pool[va]
    else:
        classes, files, labels = scan_class_tree(root)
        test_idx, pool = stratified_split(labels, cfg.splits.test_fraction, seed, stage=STAGE_TEST, classes=classes)
        tr, va = _train_val(labels[pool], cfg, classes)
        train_idx, val_idx = pool[tr], pool[va]
    if cfg.splits.max_test is not None:
        test_idx = test_idx[subsample_stratified(labels[test_idx], cfg.splits.max_test, seed)]
    parts = {"train": train_idx, "val": val_idx, "test": test_idx}
    return build_splits(files, labels, parts, classes, cfg, name)


def _train_val(labels: np.ndarray, cfg: DataConfig, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return train_val_indices(
        labels,
        seed=cfg.splits.seed,
        val_per_class=cfg.splits.val_per_class,
        val_fraction=cfg.splits.val_holdout_fraction,
        train_per_class=cfg.splits.train_per_class,
        classes=classes,
    )
