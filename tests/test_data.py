"""Data loaders: digits, Fashion-MNIST idx files, ImageFolder trees, splits and their errors."""

from __future__ import annotations

import gzip
import struct
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from layerswarm.data import DataConfig, DatasetSplits, load_dataset
from layerswarm.data.builtin import FASHION_MNIST_CLASSES, FASHION_MNIST_DEFAULT_ROOT, read_idx
from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.data.imagefolder import BadImageWarning
from layerswarm.data.splits import (
    stratified_split,
    subsample_stratified,
    take_per_class,
    train_val_indices,
)
from layerswarm.errors import LayerswarmError


def one_line_error(excinfo: pytest.ExceptionInfo[LayerswarmError]) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg, f"error message is not one line: {msg!r}"
    return msg


def write_png(path: Path, value: int, size: tuple[int, int] = (10, 12)) -> None:
    """A tiny solid image whose pixel value identifies it (for disjointness checks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value % 256, (value // 256) % 256, 7)).save(path)


def make_class_tree(root: Path, classes: dict[str, int], start: int = 0) -> int:
    """``classes`` maps a class name to its image count; returns the next free image id."""
    value = start
    for name, count in classes.items():
        for i in range(count):
            write_png(root / name / f"{i}.png", value)
            value += 1
    return value


def ids(split_images: torch.Tensor) -> set[int]:
    """Image ids encoded in the first two channels of ``write_png`` images."""
    px = split_images[:, :, 0, 0].long()
    return set((px[:, 0] + 256 * px[:, 1]).tolist())


def per_class(labels: torch.Tensor, num_classes: int) -> list[int]:
    return torch.bincount(labels, minlength=num_classes).tolist()


# --- config --------------------------------------------------------------------------------


def test_config_defaults_and_round_trip() -> None:
    cfg = DataConfig()
    assert (cfg.data, cfg.image.size, cfg.splits.val_holdout_fraction, cfg.image.on_bad_image) == (
        "digits",
        None,
        0.2,
        "skip",
    )
    # the input size is resolved from the dataset (small built-in images) or the model
    assert cfg.resolved({"size": 224, "crop_pct": 0.875, "interpolation": "bicubic"}).image.size == 32
    assert DataConfig(data="fashion-mnist").resolved().image.size == 64
    folder = DataConfig(data="photos/").resolved({"size": 160, "crop_pct": 0.95, "interpolation": "bicubic"})
    assert (folder.image.size, folder.image.crop_pct, folder.image.interpolation) == (160, 0.95, "bicubic")
    assert folder.resolved() == folder  # idempotent: a saved config resolves to itself
    assert DataConfig(data="photos/", image=ImageConfig(size=100)).resolved().image.size == 100  # explicit stays
    again = DataConfig.from_dict(DataConfig(splits=SplitConfig(train_per_class=5, seed=3)).to_dict())
    assert again == DataConfig(splits=SplitConfig(train_per_class=5, seed=3))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"splits": {"train_per_class": 0}}, "--train-per-class"),
        ({"splits": {"val_holdout_fraction": 1.0}}, "--val-fraction"),
        ({"image": {"on_bad_image": "ignore"}}, "--on-bad-image"),
        ({"image": {"size": 0}}, "--image-size"),
        ({"val_fraction": 1.0}, "--val-fraction"),  # a saved config of the flat layout
    ],
)
def test_config_rejects_bad_values(kwargs: dict, needle: str) -> None:
    with pytest.raises(LayerswarmError) as excinfo:
        DataConfig.from_dict(kwargs)
    assert needle in one_line_error(excinfo)


def test_config_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(LayerswarmError) as excinfo:
        DataConfig.from_dict({"data": "digits", "bogus": 1})
    assert "bogus" in one_line_error(excinfo)


# --- split helpers -------------------------------------------------------------------------


def test_stratified_split_counts_and_fraction() -> None:
    labels = np.repeat(np.arange(3), [10, 5, 1])
    taken, rest = stratified_split(labels, 0.2, seed=0)
    assert np.bincount(labels[taken], minlength=3).tolist() == [2, 1, 0]  # 1 image: stays in rest
    assert sorted(np.concatenate([taken, rest]).tolist()) == list(range(16))
    got = take_per_class(labels[:15], 4, seed=0)
    assert np.bincount(labels[got]).tolist() == [4, 4]


def test_take_per_class_too_few_names_the_class() -> None:
    labels = np.repeat(np.arange(2), [5, 2])
    with pytest.raises(LayerswarmError) as excinfo:
        take_per_class(labels, 3, seed=0, classes=["cat", "dog"])
    msg = one_line_error(excinfo)
    assert "'dog' has 2 images but 3 were asked" in msg and "--train-per-class" in msg


def test_val_is_independent_of_train_per_class() -> None:
    labels = np.repeat(np.arange(4), 20)
    kw = {"seed": 5, "val_per_class": 3, "val_fraction": 0.2}
    tr_all, va_a = train_val_indices(labels, train_per_class=None, **kw)
    tr_few, va_b = train_val_indices(labels, train_per_class=2, **kw)
    assert np.array_equal(va_a, va_b)
    assert set(tr_few) <= set(tr_all) and not set(tr_all) & set(va_a)


def test_subsample_stratified_keeps_proportions() -> None:
    labels = np.repeat(np.arange(3), [50, 30, 20])
    got = subsample_stratified(labels, 10, seed=0)
    assert np.bincount(labels[got]).tolist() == [5, 3, 2]


# --- digits --------------------------------------------------------------------------------


def test_digits_shapes_classes_and_disjoint_splits() -> None:
    from sklearn.datasets import load_digits

    s = load_dataset(DataConfig(data="digits", image=ImageConfig(size=8)))
    assert isinstance(s, DatasetSplits) and s.name == "digits"
    assert s.classes == [str(i) for i in range(10)]
    for part in (s.train, s.val, s.test):
        assert part.images.dtype == torch.uint8 and part.images.shape[1:] == (1, 8, 8)
        assert part.labels.dtype == torch.int64
    assert int(s.train.images.max()) == 255
    # the three splits partition the dataset: every image used exactly once
    raw = np.rint(load_digits().images * 255 / 16).astype(np.uint8)
    want = Counter(img.tobytes() for img in raw)
    got = Counter(img.numpy().tobytes() for part in (s.train, s.val, s.test) for img in part.images[:, 0])
    assert got == want
    assert len(s.test) == pytest.approx(0.2 * 1797, abs=10)
    assert s.for_search().num_classes == 10


def test_digits_resized_and_few_shot_counts_exact() -> None:
    s = load_dataset(
        DataConfig(data="digits", image=ImageConfig(size=16), splits=SplitConfig(train_per_class=5, val_per_class=3))
    )
    assert s.train.images.shape == (50, 1, 16, 16)
    assert per_class(s.train.labels, 10) == [5] * 10
    assert per_class(s.val.labels, 10) == [3] * 10


def test_digits_seeded_split_reproducible() -> None:
    def cfg(seed: int) -> DataConfig:
        return DataConfig(
            data="digits", image=ImageConfig(size=8), splits=SplitConfig(train_per_class=4, val_per_class=2, seed=seed)
        )

    a, b, c = (load_dataset(cfg(seed)) for seed in (1, 1, 2))
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.train.images, c.train.images)


def test_digits_too_few_images_per_class() -> None:
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data="digits", splits=SplitConfig(train_per_class=500, val_per_class=10)))
    msg = one_line_error(excinfo)
    assert "class '0' has" in msg and "510 were asked" in msg
    assert "--train-per-class" in msg and "--val-per-class" in msg


def test_digits_max_test_cap() -> None:
    s = load_dataset(DataConfig(data="digits", image=ImageConfig(size=8), splits=SplitConfig(max_test=50)))
    assert len(s.test) == 50 and per_class(s.test.labels, 10) == [5] * 10


# --- Fashion-MNIST -------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion(root: Path, n_train: int = 40, n_test: int = 20, gz: bool = True) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            data = _idx_bytes(arr)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx_files(tmp_path: Path, gz: bool) -> None:
    write_fashion(tmp_path, gz=gz)
    cfg = DataConfig(
        data="fashion-mnist",
        data_root=str(tmp_path),
        image=ImageConfig(size=28),
        splits=SplitConfig(val_per_class=1, train_per_class=2),
    )
    s = load_dataset(cfg)
    assert s.classes == FASHION_MNIST_CLASSES and s.name == "fashion-mnist"
    assert s.train.images.shape == (20, 1, 28, 28) and s.test.images.shape == (20, 1, 28, 28)
    assert per_class(s.val.labels, 10) == [1] * 10
    # the test split is the t10k file, unchanged at 28x28
    test_raw = read_idx(tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else "")))
    assert torch.equal(s.test.images[:, 0], torch.from_numpy(test_raw.copy()))


def test_fashion_mnist_resize_and_max_test(tmp_path: Path) -> None:
    write_fashion(tmp_path)
    s = load_dataset(
        DataConfig(
            data="fashion-mnist", data_root=str(tmp_path), image=ImageConfig(size=16), splits=SplitConfig(max_test=10)
        )
    )
    assert s.test.images.shape == (10, 1, 16, 16) and len(s.train) + len(s.val) == 40


def test_fashion_mnist_missing_file(tmp_path: Path) -> None:
    write_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data="fashion-mnist", data_root=str(tmp_path)))
    msg = one_line_error(excinfo)
    assert "t10k-labels-idx1-ubyte" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "--data-root" in msg


@pytest.mark.parametrize("payload", [b"\x00\x00\x09\x03garbage", b"\x1f\x8bnot really gzip"])
def test_fashion_mnist_corrupt_file(tmp_path: Path, payload: bytes) -> None:
    write_fashion(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(payload)
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data="fashion-mnist", data_root=str(tmp_path)))
    msg = one_line_error(excinfo)
    assert "train-images-idx3-ubyte.gz" in msg and "dataset-fashion-mnist" in msg


def test_fashion_mnist_truncated_data(tmp_path: Path) -> None:
    write_fashion(tmp_path, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data="fashion-mnist", data_root=str(tmp_path)))
    assert "corrupt" in one_line_error(excinfo)


@pytest.mark.slow
@pytest.mark.skipif(not Path(FASHION_MNIST_DEFAULT_ROOT).is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_real_files() -> None:
    s = load_dataset(DataConfig(data="fashion-mnist", splits=SplitConfig(train_per_class=50, val_per_class=10)))
    assert s.train.images.shape == (500, 1, 64, 64)  # fashion-mnist's own input size
    assert per_class(s.train.labels, 10) == [50] * 10
    assert per_class(s.val.labels, 10) == [10] * 10
    assert len(s.test) == 10_000 and per_class(s.test.labels, 10) == [1000] * 10


# --- ImageFolder ---------------------------------------------------------------------------


def test_imagefolder_single_folder_split(tmp_path: Path) -> None:
    make_class_tree(tmp_path, {"cat": 10, "dog": 10, "eel": 5})
    s = load_dataset(DataConfig(data=str(tmp_path), image=ImageConfig(size=8)))
    assert s.classes == ["cat", "dog", "eel"] and s.name == tmp_path.name
    for part in (s.train, s.val, s.test):
        assert part.images.dtype == torch.uint8 and part.images.shape[1:] == (3, 8, 8)
    # test 20% of each class, validation 20% of the rest, training what is left
    assert per_class(s.test.labels, 3) == [2, 2, 1]
    assert per_class(s.val.labels, 3) == [2, 2, 1]
    assert per_class(s.train.labels, 3) == [6, 6, 3]
    parts = [ids(s.train.images), ids(s.val.images), ids(s.test.images)]
    assert set().union(*parts) == set(range(25)) and sum(map(len, parts)) == 25


def test_imagefolder_few_shot_and_seed(tmp_path: Path) -> None:
    make_class_tree(tmp_path, {"a": 12, "b": 12})

    def cfg(seed: int = 0) -> DataConfig:
        splits = SplitConfig(train_per_class=3, val_per_class=2, seed=seed)
        return DataConfig(data=str(tmp_path), image=ImageConfig(size=4), splits=splits)

    s = load_dataset(cfg())
    assert per_class(s.train.labels, 2) == [3, 3] and per_class(s.val.labels, 2) == [2, 2]
    assert ids(load_dataset(cfg()).train.images) == ids(s.train.images)
    assert ids(load_dataset(cfg(seed=9)).train.images) != ids(s.train.images)


def test_imagefolder_train_test_val_layout(tmp_path: Path) -> None:
    nxt = make_class_tree(tmp_path / "train", {"a": 6, "b": 6})
    nxt = make_class_tree(tmp_path / "test", {"a": 2, "b": 3}, start=nxt)
    make_class_tree(tmp_path / "val", {"a": 1, "b": 1}, start=nxt)
    s = load_dataset(DataConfig(data=str(tmp_path), image=ImageConfig(size=8), splits=SplitConfig(train_per_class=4)))
    assert per_class(s.train.labels, 2) == [4, 4]
    assert per_class(s.test.labels, 2) == [2, 3] and ids(s.test.images) == set(range(12, 17))
    assert ids(s.val.images) == {17, 18}


def test_imagefolder_train_test_layout_holds_out_val(tmp_path: Path) -> None:
    nxt = make_class_tree(tmp_path / "train", {"a": 5, "b": 5})
    make_class_tree(tmp_path / "test", {"a": 2, "b": 2}, start=nxt)
    s = load_dataset(DataConfig(data=str(tmp_path), image=ImageConfig(size=8), splits=SplitConfig(val_per_class=1)))
    assert per_class(s.val.labels, 2) == [1, 1] and per_class(s.train.labels, 2) == [4, 4]
    assert ids(s.test.images) == set(range(10, 14))
    assert not (ids(s.val.images) | ids(s.train.images)) & ids(s.test.images)


def test_imagefolder_resizes_shorter_side_and_center_crops(tmp_path: Path) -> None:
    # tall 8x40 image: red in the middle rows, blue at the top and bottom
    img = Image.new("RGB", (8, 40), (0, 0, 255))
    img.paste((255, 0, 0), (0, 10, 8, 30))
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(5):
            img.save(tmp_path / name / f"{i}.png")
    s = load_dataset(DataConfig(data=str(tmp_path), image=ImageConfig(size=4)))
    assert s.train.images.shape[1:] == (3, 4, 4)
    # 8x40 -> 4x20, center crop rows 8..12 = original rows 16..24: all red
    assert (s.train.images[:, 0] == 255).all() and (s.train.images[:, 2] == 0).all()


def test_imagefolder_ignores_non_image_files(tmp_path: Path) -> None:
    make_class_tree(tmp_path, {"a": 5, "b": 5})
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "b" / ".DS_Store").write_bytes(b"\0")
    s = load_dataset(DataConfig(data=str(tmp_path), image=ImageConfig(size=4, on_bad_image="error")))
    assert len(s.train) + len(s.val) + len(s.test) == 10


# --- bad input -----------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data=str(missing)))
    msg = one_line_error(excinfo)
    assert f"'{missing}' does not exist" in msg and "--data PATH" in msg
    assert "'digits'" in msg and "'fashion-mnist'" in msg


def test_unknown_name_lists_builtin_names() -> None:
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data="cifar10"))
    msg = one_line_error(excinfo)
    assert "'cifar10' does not exist" in msg and "'digits'" in msg and "caltech256-30:ROOT" in msg


def test_no_class_subfolders(tmp_path: Path) -> None:
    write_png(tmp_path / "loose.png", 1)
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data=str(tmp_path)))
    msg = one_line_error(excinfo)
    assert "no class subfolders" in msg and "1 images directly" in msg


def test_class_with_no_images(tmp_path: Path) -> None:
    make_class_tree(tmp_path, {"a": 5})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data=str(tmp_path)))
    msg = one_line_error(excinfo)
    assert f"'{tmp_path / 'empty'}' has no images" in msg


def test_corrupt_image_skipped_with_one_warning(tmp_path: Path) -> None:
    make_class_tree(tmp_path, {"a": 6, "b": 6})
    (tmp_path / "a" / "bad1.png").write_bytes(b"not a png")
    (tmp_path / "b" / "bad2.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = load_dataset(DataConfig(data=str(tmp_path), image=ImageConfig(size=4)))
    bad = [w for w in caught if issubclass(w.category, BadImageWarning)]
    assert len(bad) == 1
    msg = str(bad[0].message)
    assert "skipped 2 of 14" in msg and "bad1.png" in msg and "--on-bad-image error" in msg
    assert "\n" not in msg
    assert len(s.train) + len(s.val) + len(s.test) == 12


def test_corrupt_image_error_mode(tmp_path: Path) -> None:
    make_class_tree(tmp_path, {"a": 6, "b": 6})
    (tmp_path / "a" / "bad1.png").write_bytes(b"not a png")
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data=str(tmp_path), image=ImageConfig(on_bad_image="error")))
    msg = one_line_error(excinfo)
    assert f"'{tmp_path / 'a' / 'bad1.png'}'" in msg and "--on-bad-image skip" in msg


def test_too_few_images_for_requested_counts(tmp_path: Path) -> None:
    make_class_tree(tmp_path, {"big": 20, "small": 6})
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data=str(tmp_path), splits=SplitConfig(train_per_class=4, val_per_class=2)))
    msg = one_line_error(excinfo)
    # 6 images, 1 held out for test: 5 left, 6 asked
    assert "class 'small' has 5 training images but 6 were asked" in msg
    assert "--train-per-class" in msg and "--val-per-class" in msg


def test_train_test_class_mismatch(tmp_path: Path) -> None:
    make_class_tree(tmp_path / "train", {"a": 3, "b": 3})
    make_class_tree(tmp_path / "test", {"a": 3, "c": 3})
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data=str(tmp_path)))
    msg = one_line_error(excinfo)
    assert "differ between train/ and test/" in msg and "only in train/: b" in msg
    assert "only in test/: c" in msg
