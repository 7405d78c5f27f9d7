"""Paper datasets (Caltech-256, MIT Indoor 67, Stanford Dogs) on tiny trees in their layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from layerswarm.data import DataConfig, load_dataset
from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.errors import LayerswarmError


def one_line_error(excinfo: pytest.ExceptionInfo[LayerswarmError]) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg, f"error message is not one line: {msg!r}"
    return msg


def write_jpg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 5), (value % 256, 40, 90)).save(path, quality=95)


def counts(labels: torch.Tensor, n: int) -> list[int]:
    return torch.bincount(labels, minlength=n).tolist()


# --- Caltech-256 ---------------------------------------------------------------------------


def make_caltech(root: Path, per_class: int = 52) -> Path:
    cats = root / "256_ObjectCategories"
    for folder in ("001.ak47", "002.american-flag", "003.backpack", "257.clutter"):
        for i in range(per_class):
            write_jpg(cats / folder / f"{folder[:3]}_{i + 1:04d}.jpg", i)
    (cats / "003.backpack" / "RENAME2").write_text("stray non-image file")
    return root


def test_caltech256_30(tmp_path: Path) -> None:
    make_caltech(tmp_path)
    s = load_dataset(
        DataConfig(data=f"caltech256-30:{tmp_path}", image=ImageConfig(size=4), splits=SplitConfig(val_per_class=5))
    )
    assert s.classes == ["ak47", "american-flag", "backpack"] and s.name == "caltech256-30"
    assert counts(s.train.labels, 3) == [25, 25, 25]  # 30 training images, 5 held out
    assert counts(s.val.labels, 3) == [5, 5, 5]
    assert counts(s.test.labels, 3) == [20, 20, 20]
    assert s.train.images.shape[1:] == (3, 4, 4)


def test_caltech256_few_shot_and_data_root(tmp_path: Path) -> None:
    make_caltech(tmp_path)
    cfg = DataConfig(
        data="caltech256-30", data_root=str(tmp_path), image=ImageConfig(size=4), splits=SplitConfig(train_per_class=10)
    )
    s = load_dataset(cfg)
    assert counts(s.train.labels, 3) == [10] * 3 and counts(s.val.labels, 3) == [6] * 3


def test_caltech256_60_needs_80_per_class(tmp_path: Path) -> None:
    make_caltech(tmp_path)
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data=f"caltech256-60:{tmp_path}"))
    msg = one_line_error(excinfo)
    assert "001.ak47" in msg and "has 52 images but 80 are needed" in msg


def test_caltech256_incomplete_copy(tmp_path: Path) -> None:
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data=f"caltech256-30:{tmp_path}"))
    msg = one_line_error(excinfo)
    assert "incomplete" in msg and f"'{tmp_path / '256_ObjectCategories'}' is missing" in msg


def test_paper_root_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data=f"mit-indoor:{tmp_path / 'nope'}"))
    msg = one_line_error(excinfo)
    assert "does not exist" in msg and "TrainImages.txt" in msg


def test_paper_name_without_root() -> None:
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data="stanford-dogs"))
    assert "--data stanford-dogs:ROOT" in one_line_error(excinfo)


# --- MIT Indoor 67 -------------------------------------------------------------------------


def make_mit_indoor(root: Path) -> Path:
    train, test = [], []
    for cls in ("airport_inside", "bakery", "bar"):
        for i in range(8):
            rel = f"{cls}/{cls}_{i:04d}.jpg"
            write_jpg(root / "Images" / rel, i)
            (train if i < 6 else test).append(rel)
    write_jpg(root / "Images" / "bar" / "unlisted.jpg", 1)  # not in either list: unused
    (root / "TrainImages.txt").write_text("\n".join(train) + "\n")
    (root / "TestImages.txt").write_text("\r\n".join(test) + "\r\n")
    return root


def test_mit_indoor_official_split(tmp_path: Path) -> None:
    make_mit_indoor(tmp_path)
    s = load_dataset(
        DataConfig(data=f"mit-indoor:{tmp_path}", image=ImageConfig(size=4), splits=SplitConfig(val_per_class=2))
    )
    assert s.classes == ["airport_inside", "bakery", "bar"] and s.name == "mit-indoor"
    assert counts(s.train.labels, 3) == [4, 4, 4]
    assert counts(s.val.labels, 3) == [2, 2, 2]
    assert counts(s.test.labels, 3) == [2, 2, 2]
    capped = load_dataset(
        DataConfig(data=f"mit-indoor:{tmp_path}", image=ImageConfig(size=4), splits=SplitConfig(max_test=3))
    )
    assert counts(capped.test.labels, 3) == [1, 1, 1]


@pytest.mark.parametrize("remove", ["TestImages.txt", "Images/bakery/bakery_0003.jpg"])
def test_mit_indoor_incomplete_copy(tmp_path: Path, remove: str) -> None:
    make_mit_indoor(tmp_path)
    (tmp_path / remove).unlink()
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data=f"mit-indoor:{tmp_path}"))
    msg = one_line_error(excinfo)
    assert "incomplete" in msg and f"'{tmp_path / remove}'" in msg


# --- Stanford Dogs -------------------------------------------------------------------------


def _write_mat(path: Path, files: list[str]) -> None:
    from scipy.io import savemat

    # the published lists hold file_list as an N x 1 cell array of strings
    cell = np.empty((len(files), 1), dtype=object)
    for i, f in enumerate(files):
        cell[i, 0] = np.array([f])
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"file_list": cell, "labels": np.ones((len(files), 1))})


def make_stanford_dogs(root: Path) -> Path:
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for folder in ("n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02096051-Airedale"):
        for i in range(7):
            rel = f"{folder}/{folder.split('-')[0]}_{i}.jpg"
            write_jpg(root / "Images" / rel, i)
            lists["train" if i < 5 else "test"].append(rel)
    _write_mat(root / "lists" / "train_list.mat", lists["train"])
    _write_mat(root / "lists" / "test_list.mat", lists["test"])
    return root


def test_stanford_dogs_official_split(tmp_path: Path) -> None:
    make_stanford_dogs(tmp_path)
    cfg = DataConfig(
        data=f"stanford-dogs:{tmp_path}",
        image=ImageConfig(size=4),
        splits=SplitConfig(val_per_class=1, train_per_class=3),
    )
    s = load_dataset(cfg)
    assert s.classes == ["Chihuahua", "Japanese_spaniel", "Airedale"] and s.name == "stanford-dogs"
    assert counts(s.train.labels, 3) == [3, 3, 3]
    assert counts(s.val.labels, 3) == [1, 1, 1]
    assert counts(s.test.labels, 3) == [2, 2, 2]


@pytest.mark.parametrize("remove", ["lists/test_list.mat", "Images"])
def test_stanford_dogs_incomplete_copy(tmp_path: Path, remove: str) -> None:
    import shutil

    make_stanford_dogs(tmp_path)
    target = tmp_path / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(DataConfig(data=f"stanford-dogs:{tmp_path}"))
    msg = one_line_error(excinfo)
    assert "incomplete" in msg and f"'{target}' is missing" in msg and "train_list.mat" in msg


def test_stanford_dogs_too_few_for_requested_counts(tmp_path: Path) -> None:
    make_stanford_dogs(tmp_path)
    with pytest.raises(LayerswarmError) as excinfo:
        load_dataset(
            DataConfig(data=f"stanford-dogs:{tmp_path}", splits=SplitConfig(train_per_class=5, val_per_class=1))
        )
    msg = one_line_error(excinfo)
    assert "class 'Chihuahua' has 5 training images but 6 were asked" in msg
