"""predict: a model trained on a trivially separable ImageFolder names the class of new images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from layerswarm.cli import main
from layerswarm.data import DataConfig, load_dataset
from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.data.imagefolder import list_images
from layerswarm.deploy.predict import Predictor, predict
from layerswarm.errors import LayerswarmError
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.run.finetune import run_finetune
from layerswarm.strategies import create_strategy
from layerswarm.training import TrainConfig
from layerswarm.training.config import AugmentConfig, OptimConfig

COLOURS = {"blue": (20, 40, 220), "red": (220, 30, 20)}


def _solid(colour: tuple[int, int, int], size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A solid colour with a little noise, so that no two images are identical."""
    noise = rng.integers(-25, 26, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A test_efficientnet trained 8 epochs on solid red vs solid blue (24 images each; enough
    batches for BatchNorm's running statistics to settle, so eval-mode outputs are confident)."""
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (root / "data" / name).mkdir(parents=True)
        for i in range(24):
            _solid(colour, (24, 20), rng).save(root / "data" / name / f"{i}.png")
    data = load_dataset(
        DataConfig(
            data=str(root / "data"), image=ImageConfig(size=16), splits=SplitConfig(val_per_class=2, test_fraction=0.25)
        )
    )
    train = TrainConfig(
        epochs=8,
        seed=0,
        optim=OptimConfig(lr=0.003, optimizer="adamw", batch_size=8),
        augmentation=AugmentConfig(policy="none"),
    )
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), data.num_classes, train)
    metrics = run_finetune(bundle, data, create_strategy("full"), train, root / "run" / "final")
    assert metrics["test_accuracy"] == 1.0  # the premise: the task was learnt
    return root, metrics


def test_predicts_the_class_of_new_images(trained, tmp_path):
    root, metrics = trained
    rng = np.random.default_rng(123)  # new images, another size and aspect than the training ones
    paths = []
    for name, colour in COLOURS.items():
        for i in range(3):
            path = tmp_path / f"{name}-{i}.jpg"
            _solid(colour, (40, 30), rng).save(path)
            paths.append((name, path))
    results = predict(root / "run", [p for _, p in paths], top_k=2)
    assert [r.top_k[0][0] for r in results] == [name for name, _ in paths]
    for r in results:
        assert len(r.top_k) == 2  # both classes, most probable first, probabilities summing to 1
        assert r.top_k[0][1] >= r.top_k[1][1]
        assert r.top_k[0][1] + r.top_k[1][1] == pytest.approx(1.0, abs=1e-5)
        assert r.top_k[0][1] > 0.5


def test_decodes_and_scores_exactly_as_training_did(trained):
    """Same pixels as the ImageFolder loader, same normalisation as the trainer's evaluation:
    the predicted classes on the test files give the test accuracy the fine-tune reported."""
    root, metrics = trained
    data = load_dataset(
        DataConfig(
            data=str(root / "data"), image=ImageConfig(size=16), splits=SplitConfig(val_per_class=2, test_fraction=0.25)
        )
    )
    files = list_images(root / "data")
    predictor = Predictor(root / "run")
    decoded = predictor.load_images(files)
    # every test image of the loader is, bit for bit, one of the predictor's decoded files
    flat = {bytes(img.numpy().tobytes()): i for i, img in enumerate(decoded)}
    index = [flat[bytes(img.numpy().tobytes())] for img in data.test.images]
    probs = predictor.probabilities(decoded[torch.tensor(index)])
    accuracy = (probs.argmax(1) == data.test.labels).float().mean().item()
    assert accuracy == pytest.approx(metrics["test_accuracy"])
    assert predictor.classes == ["blue", "red"]


def test_cli_json_and_errors(trained, tmp_path, capsys):
    root, _ = trained
    image = tmp_path / "r.png"
    _solid(COLOURS["red"], (16, 16), np.random.default_rng(5)).save(image)
    assert main(["predict", str(root / "run"), str(image), "--top-k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["image"] == str(image)
    assert [c["class"] for c in out[0]["top_k"]][0] == "red"
    assert len(out[0]["top_k"]) == 2  # top-k capped at the number of classes

    assert main(["predict", str(root / "run"), str(image), "--top-k", "1"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == str(image) and text[1].split()[0] == "red"

    assert main(["predict", str(tmp_path), str(image)]) == 2
    assert "no saved model" in capsys.readouterr().err
    assert main(["predict", str(root / "run"), str(tmp_path / "missing.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(LayerswarmError, match="not a|cannot decode"):
        not_image = tmp_path / "x.png"
        not_image.write_text("hello")
        predict(root / "run", [not_image])
