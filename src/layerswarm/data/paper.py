"""The paper's datasets, read from a local copy laid out as their publishers ship them.

``caltech256-30:ROOT`` / ``caltech256-60:ROOT``: ``ROOT/256_ObjectCategories/NNN.name/*.jpg``
(class 257 "clutter" excluded); 30 or 60 training and 20 test images per class, seeded.
``mit-indoor:ROOT``: ``ROOT/Images/<class>/*.jpg`` with ``TrainImages.txt``/``TestImages.txt``.
``stanford-dogs:ROOT``: ``ROOT/Images/<wnid>-<name>/*.jpg`` with ``lists/{train,test}_list.mat``.
Validation is always held out of the training images, then ``train_per_class`` applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from layerswarm.data.config import PAPER_DATASETS, DataConfig
from layerswarm.data.imagefolder import build_splits, class_folders, list_images
from layerswarm.data.imageset import DatasetSplits
from layerswarm.data.splits import (
    STAGE_POOL,
    STAGE_TEST,
    split_pools,
    stratified_split,
    take_per_class,
)
from layerswarm.errors import LayerswarmError

CALTECH_TEST_PER_CLASS = 20
CALTECH_CLUTTER = 257

_LAYOUTS = {
    "caltech256": "ROOT/256_ObjectCategories/NNN.name/*.jpg (from 256_ObjectCategories.tar)",
    "mit-indoor": "ROOT/Images/<class>/*.jpg, ROOT/TrainImages.txt and ROOT/TestImages.txt",
    "stanford-dogs": "ROOT/Images/<wnid>-<name>/*.jpg and ROOT/lists/train_list.mat, test_list.mat",
}


def _layout(name: str) -> str:
    return _LAYOUTS["caltech256" if name.startswith("caltech256") else name]


def parse_paper_spec(data: str, data_root: str | None = None) -> tuple[str, Path] | None:
    """``(name, root)`` for ``NAME:ROOT`` (or a bare ``NAME`` with ``data_root``); ``None``
    when ``data`` names no paper dataset."""
    name, sep, root = data.partition(":")
    name = name.strip().lower()
    if name not in PAPER_DATASETS:
        return None
    root = root.strip() if sep else (data_root or "")
    if not root:
        raise LayerswarmError(
            f"{name} needs the folder of its local copy: pass --data {name}:ROOT (or --data-root ROOT) "
            f"with {_layout(name)}"
        )
    return name, Path(root).expanduser()


def load_paper_splits(cfg: DataConfig) -> DatasetSplits:
    """Load the paper dataset named by ``cfg.data``."""
    spec = parse_paper_spec(cfg.data, cfg.data_root)
    if spec is None:
        raise LayerswarmError(
            f"'{cfg.data}' is not a paper dataset: use one of {', '.join(PAPER_DATASETS)} as NAME:ROOT"
        )
    name, root = spec
    if not root.is_dir():
        raise LayerswarmError(f"{name} folder '{root}' does not exist: pass --data {name}:ROOT with {_layout(name)}")
    loaders: dict[str, Callable[[DataConfig, Path], DatasetSplits]] = {
        "caltech256-30": lambda c, r: load_caltech256_splits(c, r, 30),
        "caltech256-60": lambda c, r: load_caltech256_splits(c, r, 60),
        "mit-indoor": load_mit_indoor_splits,
        "stanford-dogs": load_stanford_dogs_splits,
    }
    return loaders[name](cfg, root)


def _incomplete(name: str, what: Path | str, root: Path) -> LayerswarmError:
    return LayerswarmError(f"{name} copy in '{root}' is incomplete: '{what}' is missing; expected {_layout(name)}")


def _from_official_split(
    cfg: DataConfig,
    classes: list[str],
    files: list[Path],
    labels: np.ndarray,
    train_pool: np.ndarray,
    test_idx: np.ndarray,
    name: str,
) -> DatasetSplits:
    """Validation then few-shot training from ``train_pool``; ``test_idx`` capped by max_test."""
    return build_splits(files, labels, split_pools(labels, train_pool, test_idx, cfg, classes), classes, cfg, name)


def _check_listed_files(name: str, root: Path, listed: Sequence[Path], list_name: str) -> None:
    missing = [p for p in listed if not p.is_file()]
    if missing:
        raise LayerswarmError(
            f"{name} copy in '{root}' is incomplete: '{missing[0]}' listed in {list_name} is missing "
            f"({len(missing)} of {len(listed)} listed files missing); expected {_layout(name)}"
        )


# --- Caltech-256 ---------------------------------------------------------------------------

_CALTECH_DIR = re.compile(r"^(\d+)\.(.+)$")


def load_caltech256_splits(cfg: DataConfig, root: Path, n_train: int) -> DatasetSplits:
    """Caltech-256 with ``n_train`` training (validation included) and 20 test images per class."""
    name = f"caltech256-{n_train}"
    cats = root / "256_ObjectCategories"
    if not cats.is_dir():
        if root.name == "256_ObjectCategories":  # ROOT given as the category folder itself
            cats = root
        else:
            raise _incomplete(name, cats, root)
    folders = []
    for folder in class_folders(cats):
        match = _CALTECH_DIR.match(folder.name)
        if match and int(match.group(1)) != CALTECH_CLUTTER:
            folders.append((int(match.group(1)), match.group(2), folder))
    if not folders:
        raise LayerswarmError(f"{name}: no class folders like '001.ak47' in '{cats}': expected {_layout(name)}")
    folders.sort()
    need = n_train + CALTECH_TEST_PER_CLASS
    classes: list[str] = []
    files: list[Path] = []
    labels: list[int] = []
    for label, (_, cls, folder) in enumerate(folders):
        images = list_images(folder)
        if len(images) < need:
            raise LayerswarmError(
                f"{name}: class folder '{folder}' has {len(images)} images but {need} are needed "
                f"({n_train} train + {CALTECH_TEST_PER_CLASS} test): restore the complete copy, or use caltech256-30"
            )
        classes.append(cls)
        files.extend(images)
        labels.extend([label] * len(images))
    y = np.asarray(labels, dtype=np.int64)
    # training images per class first, then 20 test images from what is left
    train_pool, rest = stratified_split(y, n_train, cfg.splits.seed, stage=STAGE_POOL, classes=classes)
    test_idx = rest[take_per_class(y[rest], CALTECH_TEST_PER_CLASS, cfg.splits.seed, stage=STAGE_TEST, classes=classes)]
    return _from_official_split(cfg, classes, files, y, train_pool, test_idx, name)


# --- MIT Indoor 67 -------------------------------------------------------------------------


def _read_list(path: Path, name: str, root: Path) -> list[str]:
    if not path.is_file():
        raise _incomplete(name, path, root)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [ln.strip().replace("\\", "/") for ln in lines if ln.strip()]


def load_mit_indoor_splits(cfg: DataConfig, root: Path) -> DatasetSplits:
    """MIT Indoor 67 with its official TrainImages.txt / TestImages.txt split."""
    name = "mit-indoor"
    images_dir = root / "Images"
    if not images_dir.is_dir():
        raise _incomplete(name, images_dir, root)
    train_rel = _read_list(root / "TrainImages.txt", name, root)
    test_rel = _read_list(root / "TestImages.txt", name, root)
    return _from_relative_lists(
        cfg,
        root,
        images_dir,
        train_rel,
        test_rel,
        name,
        lambda d: d,
        ("TrainImages.txt", "TestImages.txt"),
    )


def _from_relative_lists(
    cfg: DataConfig,
    root: Path,
    images_dir: Path,
    train_rel: list[str],
    test_rel: list[str],
    name: str,
    class_name: Callable[[str], str],
    list_names: tuple[str, str],
) -> DatasetSplits:
    """Official split from lists of ``<class folder>/<file>`` paths relative to ``images_dir``."""
    for rel, list_name in ((train_rel, list_names[0]), (test_rel, list_names[1])):
        if not rel:
            raise LayerswarmError(
                f"{name}: '{root / list_name}' lists no images: restore the file from the original archive"
            )
        bad = next((r for r in rel if "/" not in r), None)
        if bad is not None:
            raise LayerswarmError(
                f"{name}: '{root / list_name}' entry '{bad}' is not '<class>/<file>': restore the file from "
                "the original archive"
            )
    folders = sorted({r.split("/", 1)[0] for r in train_rel})
    unknown = sorted({r.split("/", 1)[0] for r in test_rel} - set(folders))
    if unknown:
        raise LayerswarmError(
            f"{name}: {list_names[1]} has classes missing from {list_names[0]} ({', '.join(unknown[:5])}): "
            "restore both list files from the original archive"
        )
    label_of = {f: i for i, f in enumerate(folders)}
    train_files = [images_dir / r for r in train_rel]
    test_files = [images_dir / r for r in test_rel]
    _check_listed_files(name, root, train_files, list_names[0])
    _check_listed_files(name, root, test_files, list_names[1])
    labels = np.asarray([label_of[r.split("/", 1)[0]] for r in train_rel + test_rel], dtype=np.int64)
    train_pool = np.arange(len(train_rel))
    test_idx = np.arange(len(train_rel), len(labels))
    classes = [class_name(f) for f in folders]
    return _from_official_split(cfg, classes, train_files + test_files, labels, train_pool, test_idx, name)


# --- Stanford Dogs -------------------------------------------------------------------------


def _mat_strings(value: object) -> list[str]:
    """Flatten a MATLAB cell array of strings (as scipy loads it) into Python strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes):
        return [value.decode("utf-8")]
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US" and value.ndim <= 1:
            return [str(v) for v in value.reshape(-1)]
        out: list[str] = []
        for item in value.reshape(-1):
            out.extend(_mat_strings(item))
        return out
    return [str(value)]


def read_mat_file_list(path: Path) -> list[str]:
    """The ``file_list`` entries of a Stanford Dogs ``lists/*.mat`` file."""
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise LayerswarmError(f"reading '{path}' needs scipy: pip install scipy (it comes with scikit-learn)") from err
    try:
        mat = loadmat(str(path))
    except Exception as err:  # scipy raises several types for a damaged file
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise LayerswarmError(f"cannot read '{path}' ({reason}): restore it from the Stanford Dogs lists.tar") from err
    if "file_list" not in mat:
        raise LayerswarmError(f"'{path}' has no 'file_list' field: restore it from the Stanford Dogs lists.tar")
    return [s.strip().replace("\\", "/") for s in _mat_strings(mat["file_list"])]


def load_stanford_dogs_splits(cfg: DataConfig, root: Path) -> DatasetSplits:
    """Stanford Dogs with its official lists/train_list.mat / test_list.mat split."""
    name = "stanford-dogs"
    images_dir = root / "Images"
    if not images_dir.is_dir():
        raise _incomplete(name, images_dir, root)
    lists = {}
    for split in ("train", "test"):
        path = root / "lists" / f"{split}_list.mat"
        if not path.is_file():
            raise _incomplete(name, path, root)
        lists[split] = read_mat_file_list(path)
    # folders are "<wnid>-<breed>": the class name is the breed
    return _from_relative_lists(
        cfg, root, images_dir, lists["train"], lists["test"], name,
        lambda folder: folder.split("-", 1)[1] if "-" in folder else folder,
        ("lists/train_list.mat", "lists/test_list.mat"),
    )  # fmt: skip
