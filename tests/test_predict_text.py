"""predict on texts: a tiny BERT fine-tuned through the CLI names the class of new texts, tokenised
exactly as its training texts were; image and text models refuse each other's inputs."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest
import torch

pytest.importorskip("transformers")

from layerswarm.cli import main  # noqa: E402
from layerswarm.data import DataConfig, load_dataset  # noqa: E402
from layerswarm.data.config import SplitConfig
from layerswarm.deploy.predict import Prediction, Predictor, predict_texts  # noqa: E402
from layerswarm.errors import LayerswarmError  # noqa: E402
from layerswarm.io import read_json  # noqa: E402
from layerswarm.models.factory import pretrained_input  # noqa: E402
from layerswarm.training.config import AugmentConfig, OptimConfig, RuntimeConfig
from text_fixtures import make_text_csv, make_tiny_bert  # noqa: E402

CLASSES = ["animal", "food", "tool"]
NEW_TEXTS = {
    "animal": "a cat with the dog and a horse",
    "food": "bread and cheese with soup",
    "tool": "a hammer and the saw for a drill",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny BERT fine-tuned by `layerswarm finetune` on the learnable CSV until it is right on
    every test text (20 epochs of AdamW; 2 barely move a random tiny BERT)."""
    root = tmp_path_factory.mktemp("predict_text")
    bert = make_tiny_bert(root / "bert")
    data = make_text_csv(root / "texts.csv")
    out = root / "run"
    args = [
        "finetune",
        "--model",
        f"hf:{bert}",
        "--data",
        str(data),
        "--strategy",
        "full",
        "--epochs",
        "20",
        "--train-per-class",
        "10",
        "--val-per-class",
        "5",
        "--optimizer",
        "adamw",
        "--lr",
        "3e-3",
        "--batch-size",
        "8",
        "--recipe",
        "default",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    metrics = read_json(out / "final" / "metrics.json")
    assert metrics["test_accuracy"] == 1.0  # the premise: the task was learnt
    return {"root": root, "bert": bert, "csv": data, "run": out, "metrics": metrics}


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, digits16):
    """An image model's run folder (one epoch on digits: only its kind matters)."""
    from layerswarm.models.bundle import ModelConfig, build_bundle
    from layerswarm.run.finetune import run_finetune
    from layerswarm.strategies import create_strategy
    from layerswarm.training import TrainConfig

    out = tmp_path_factory.mktemp("predict_image") / "run"
    train = TrainConfig(
        epochs=1,
        optim=OptimConfig(batch_size=16),
        augmentation=AugmentConfig(policy="none"),
        runtime=RuntimeConfig(device="cpu"),
    )
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), digits16.num_classes, train)
    run_finetune(bundle, digits16, create_strategy("linear"), train, out / "final")
    return out


def _one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("layerswarm: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_cli_json_names_the_class_of_new_texts(trained, capsys):
    texts = list(NEW_TEXTS.values())
    assert main(["predict", str(trained["run"]), *texts, "--json", "--top-k", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in out] == texts  # one entry per text, in order
    for r, expected in zip(out, NEW_TEXTS, strict=True):
        classes = [c["class"] for c in r["top_k"]]
        probs = [c["probability"] for c in r["top_k"]]
        assert sorted(classes) == CLASSES  # the CSV's labels, top-k capped at their number
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert probs == sorted(probs, reverse=True)
        assert classes[0] == expected and probs[0] > 0.5

    assert main(["predict", str(trained["run"]), NEW_TEXTS["tool"], "--top-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == NEW_TEXTS["tool"] and lines[1].split()[0] == "tool" and len(lines) == 2


def test_lines_files_and_stdin(trained, tmp_path, capsys, monkeypatch):
    lines = tmp_path / "texts.txt"
    lines.write_text(f"{NEW_TEXTS['food']}\n\n   \n  {NEW_TEXTS['animal']}  \r\n")  # blank lines skipped
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(f"{NEW_TEXTS['tool']}\n".encode())))
    assert main(["predict", str(trained["run"]), "rice", "--lines", str(lines), "--lines", "-", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in out] == ["rice", NEW_TEXTS["food"], NEW_TEXTS["animal"], NEW_TEXTS["tool"]]
    assert [r["top_k"][0]["class"] for r in out] == ["food", "food", "animal", "tool"]


def test_tokenises_and_scores_exactly_as_training_did(trained):
    """Every test text of the fine-tune, tokenised by the predictor, is bit for bit the training
    split's token ids; the predicted classes are the argmax of the model run on those ids, and
    give the test accuracy the fine-tune reported."""
    model = f"hf:{trained['bert']}"
    cfg = DataConfig(data=str(trained["csv"]), splits=SplitConfig(train_per_class=10, val_per_class=5))
    data = load_dataset(cfg.resolved(pretrained_input(model)))
    predictor = Predictor(trained["run"])
    assert predictor.is_text and predictor.classes == CLASSES == data.classes
    pad = predictor.tokenizer.pad_token_id

    def unpadded(ids: torch.Tensor) -> tuple[int, ...]:
        return tuple(int(i) for i in ids if int(i) != pad)

    with open(trained["csv"], newline="") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    by_ids = {unpadded(predictor.token_ids([t])[0]): t for t in texts}
    test_texts = [by_ids[unpadded(ids)] for ids in data.test.inputs]  # KeyError: tokenised otherwise

    results = predictor.predict_texts(test_texts, top_k=1)
    with torch.no_grad():
        logits = predictor.model(data.test.inputs)
    assert [r.top_k[0][0] for r in results] == [CLASSES[int(i)] for i in logits.argmax(1)]
    probs = predictor.probabilities(predictor.token_ids(test_texts))
    assert torch.allclose(probs, torch.softmax(logits, dim=1), atol=1e-5)
    accuracy = sum(r.top_k[0][0] == CLASSES[int(y)] for r, y in zip(results, data.test.labels, strict=True))
    assert accuracy / len(results) == pytest.approx(trained["metrics"]["test_accuracy"])
    # the module-level helper and a text longer than max_length (cut, as in training)
    assert predict_texts(trained["run"], ["cat " * 500], top_k=1)[0].top_k[0][0] == "animal"


def test_prediction_json_keys_stay_image_for_images():
    image = Prediction("a.png", [("red", 1.0)])
    assert image.to_dict() == {"image": "a.png", "top_k": [{"class": "red", "probability": 1.0}]}
    assert image.image == "a.png"
    assert Prediction("a cat", [("animal", 1.0)], "text").to_dict()["text"] == "a cat"


def test_cli_errors_are_one_line(trained, tmp_path, capsys):
    run = str(trained["run"])
    assert main(["predict", run]) == 2
    _one_line_error(capsys, "nothing to classify", "--lines")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n")
    assert main(["predict", run, "--lines", str(empty)]) == 2
    _one_line_error(capsys, "holds no text", str(empty))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81 not text")
    assert main(["predict", run, "--lines", str(binary)]) == 2
    _one_line_error(capsys, "not UTF-8", str(binary))
    assert main(["predict", run, "--lines", str(tmp_path / "missing.txt")]) == 2
    _one_line_error(capsys, "does not exist", "missing.txt")
    assert main(["predict", run, "cat", "  "]) == 2
    _one_line_error(capsys, "text 2 is empty")
    # a file given as a text is classified as text, with a warning naming --lines
    assert main(["predict", run, str(empty), "--top-k", "1"]) == 0
    captured = capsys.readouterr()
    assert "warning" in captured.err and f"--lines {empty}" in captured.err


def test_image_and_text_models_refuse_each_others_inputs(trained, image_run, tmp_path, capsys):
    from PIL import Image

    png = tmp_path / "x.png"
    Image.new("RGB", (16, 16), (200, 10, 10)).save(png)
    text_model = Predictor(trained["run"])
    with pytest.raises(LayerswarmError, match=r"holds a text model .*pass texts"):
        text_model.predict([png])
    with pytest.raises(LayerswarmError, match="holds a text model"):
        text_model.probabilities(torch.zeros((1, 3, 16, 16), dtype=torch.uint8))

    image_model = Predictor(image_run)
    assert not image_model.is_text
    with pytest.raises(LayerswarmError, match=r"holds an image model .*pass image files"):
        image_model.predict_texts(["a cat"])
    with pytest.raises(LayerswarmError, match="holds an image model"):
        image_model.probabilities(torch.zeros((1, 4), dtype=torch.int64))
    lines = tmp_path / "texts.txt"
    lines.write_text("a cat\n")
    assert main(["predict", str(image_run), "--lines", str(lines)]) == 2
    _one_line_error(capsys, "--lines reads texts", "image model")
    assert main(["predict", str(image_run), str(png), "--json"]) == 0  # images still work
    assert json.loads(capsys.readouterr().out)[0]["image"] == str(png)


def test_missing_model_folder_is_a_one_line_error(trained):
    """A text model rebuilds from its hf:PATH folder: gone, it is named, not a transformers trace."""
    moved = trained["bert"].with_name("bert-moved")
    trained["bert"].rename(moved)
    try:
        with pytest.raises(LayerswarmError, match="no longer exists: .*restore that folder"):
            Predictor(trained["run"])
    finally:
        moved.rename(trained["bert"])
