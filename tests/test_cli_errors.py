"""Bad input: one line naming the problem and the fix, exit code 2, no traceback, no result."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from layerswarm.cli import main

TINY = ["--model", "test_efficientnet", "--weights", "none", "--image-size", "16", "--epochs", "1"]


def run_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    last = err[-1]
    assert last.startswith("layerswarm: error: ")
    assert not any("Traceback" in line for line in err)
    return last


def make_tree(root, classes=("a", "b"), per_class=6):
    for i, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            pixels = np.full((12, 12, 3), 40 * i + j, dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{j}.png")
    return root


def test_missing_data_path(capsys, tmp_path):
    msg = run_error(capsys, ["finetune", *TINY, "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert "does not exist" in msg and "--data" in msg
    assert not (tmp_path / "o").exists()


def test_class_folder_without_images(capsys, tmp_path):
    root = make_tree(tmp_path / "d")
    (root / "empty").mkdir()
    msg = run_error(capsys, ["finetune", *TINY, "--data", str(root), "--out", str(tmp_path / "o")])
    assert "empty" in msg and "no images" in msg


def test_corrupt_image_is_skipped_with_a_counted_warning(capsys, tmp_path):
    root = make_tree(tmp_path / "d", per_class=10)
    (root / "a" / "broken.png").write_bytes(b"not an image at all")
    with pytest.warns(UserWarning, match=r"skipped 1 .*broken\.png"):
        code = main(["finetune", *TINY, "--data", str(root), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 0
    assert (tmp_path / "o" / "final" / "metrics.json").is_file()


def test_corrupt_image_stops_in_error_mode(capsys, tmp_path):
    root = make_tree(tmp_path / "d", per_class=10)
    (root / "a" / "broken.png").write_bytes(b"not an image at all")
    msg = run_error(
        capsys, ["finetune", *TINY, "--data", str(root), "--on-bad-image", "error", "--out", str(tmp_path / "o")]
    )
    assert "broken.png" in msg


def test_too_few_images_for_requested_counts(capsys, tmp_path):
    root = make_tree(tmp_path / "d", per_class=6)
    msg = run_error(
        capsys,
        [
            "finetune",
            *TINY,
            "--data",
            str(root),
            "--train-per-class",
            "10",
            "--val-per-class",
            "2",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert "--train-per-class" in msg


@pytest.mark.parametrize(
    "content,needle", [([1, 0, 1], "entries but the model has"), ([1, 2, 0, 1, 0, 1], "must be 0")]
)
def test_bad_mask_file(capsys, tmp_path, content, needle):
    mask = tmp_path / "mask.json"
    mask.write_text(json.dumps({"mask": content}))
    msg = run_error(capsys, ["finetune", *TINY, "--data", "digits", "--mask", str(mask), "--out", str(tmp_path / "o")])
    assert needle in msg


def test_unknown_model_name(capsys, tmp_path):
    msg = run_error(capsys, ["layers", "--model", "efficientnet_lite9"])
    assert "unknown model" in msg and "did you mean" in msg


def test_weights_file_that_does_not_fit(capsys, tmp_path):
    import torch

    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "w.pth")
    args = [
        "finetune",
        "--model",
        "test_resnet",
        "--weights",
        str(tmp_path / "w.pth"),
        "--data",
        "digits",
        "--image-size",
        "16",
        "--out",
        str(tmp_path / "o"),
    ]
    msg = run_error(capsys, args)
    assert "does not fit model 'test_resnet'" in msg


def test_unavailable_device(capsys, tmp_path):
    msg = run_error(capsys, ["finetune", *TINY, "--data", "digits", "--device", "cuda:7", "--out", str(tmp_path / "o")])
    assert "not available" in msg and ("--device cpu" in msg or "cuda:0" in msg)


def test_search_refuses_to_overwrite_a_run(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    msg = run_error(capsys, ["search", "--model", "test_efficientnet", "--out", str(tmp_path / "run")])
    assert "--resume" in msg


def test_finetune_strategy_options(capsys, tmp_path):
    msg = run_error(
        capsys,
        [
            "finetune",
            *TINY,
            "--data",
            "digits",
            "--strategy",
            "last-k",
            "--option",
            "q=3",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert "has no option 'q'" in msg and "its options are k" in msg
    msg = run_error(
        capsys,
        [
            "finetune",
            *TINY,
            "--data",
            "digits",
            "--strategy",
            "linear",
            "--option",
            "unit",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert "KEY=VALUE" in msg
    assert (
        main(
            [
                "finetune",
                *TINY,
                "--data",
                "digits",
                "--strategy",
                "last-k",
                "--option",
                "k=2",
                "--quiet",
                "--out",
                str(tmp_path / "ok"),
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "ok" / "final" / "metrics.json").read_text())
    assert metrics["strategy_config"] == {"k": 2} and sum(metrics["mask"]) == 2
