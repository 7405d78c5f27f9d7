"""The frozen-prefix cache on text encoders: exact, used, and verified for every family."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from layerswarm.data import DataConfig, load_dataset  # noqa: E402
from layerswarm.data.config import SplitConfig  # noqa: E402
from layerswarm.fitness.mask_fitness import MaskFitness  # noqa: E402
from layerswarm.models.bundle import ModelConfig, build_bundle  # noqa: E402
from layerswarm.models.factory import pretrained_input  # noqa: E402
from layerswarm.models.text import head_modules  # noqa: E402
from layerswarm.speed import PrefixCache  # noqa: E402
from layerswarm.training import TrainConfig  # noqa: E402
from layerswarm.training.config import OptimConfig, RuntimeConfig  # noqa: E402
from layerswarm.units import split_units  # noqa: E402
from text_fixtures import make_text_csv, make_tiny_bert, tiny_family_classifier  # noqa: E402

# dropout on in the trained layers (the tiny BERT's 0.1), momentum on: the suffix must see the
# same random draws with and without the cache
TRAIN = TrainConfig(
    epochs=2,
    optim=OptimConfig(batch_size=8, optimizer="adamw", lr=1e-3, weight_decay=0.01),
    runtime=RuntimeConfig(device="cpu"),
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("text-cache")
    model = f"hf:{make_tiny_bert(root / 'bert', layers=3)}"
    cfg = DataConfig(
        data=str(make_text_csv(root / "texts.csv")), splits=SplitConfig(train_per_class=10, val_per_class=5)
    )
    return model, load_dataset(cfg.resolved(pretrained_input(model)))


def _curves(model_name, splits, masks, pooling, cache):
    bundle = build_bundle(ModelConfig(name=model_name, pooling=pooling), splits.num_classes, TRAIN)
    data = splits.for_search()
    evaluate = MaskFitness(bundle, data, TRAIN, cache=PrefixCache(data, bundle.transform) if cache else None)
    return [[{k: v for k, v in r.items() if k != "seconds"} for r in evaluate(m).epochs] for m in masks], evaluate


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_text_prefix_cache_is_bit_exact_and_used(tiny, pooling):
    model_name, splits = tiny
    n = 4 if pooling == "mean" else 5  # embeddings, 3 layers (, pooler)
    masks = [
        [0, 0, 1] + [1] * (n - 3),
        [0] * n,
        [0, 1] + [1] * (n - 2),
        [0, 0, 0, 1] + [1] * (n - 4),
        [0, 0, 1] + [1] * (n - 3),
        [1] * n,
    ]
    plain, _ = _curves(model_name, splits, masks, pooling, cache=False)
    cached, evaluate = _curves(model_name, splits, masks, pooling, cache=True)
    assert cached == plain  # losses and accuracies equal to the last bit
    cache = evaluate.cache
    assert sorted(cache.levels) == [1, 2, 3, 4][: len(cache.levels)] and len(cache.levels) >= 3
    assert cache.hits >= 1 and all(cache.verified.values())
    assert len({c[-1]["train_loss"] for c in plain}) > 1  # the masks do train differently


def test_a_deeper_level_built_from_a_shallower_one_is_the_same(tiny):
    model_name, splits = tiny
    bundle = build_bundle(ModelConfig(name=model_name), splits.num_classes, TRAIN)
    model = bundle.reset().eval()
    ids = bundle.transform(splits.val.inputs[:6], train=False)
    with torch.no_grad():
        direct = model.run_stages(0, 3, ids)
        stepwise = model.run_stages(1, 3, model.run_stages(0, 1, ids))
        hidden = model.hf(
            input_ids=ids[:, : direct.shape[1]],
            attention_mask=(ids != model.pad_token_id)[:, : direct.shape[1]].long(),
            output_hidden_states=True,
        ).hidden_states
    assert torch.equal(direct, stepwise)
    assert torch.equal(direct[..., :-1], hidden[2])  # after the embeddings and layers 0 and 1
    assert torch.equal(direct[..., -1].long(), ids[:, : direct.shape[1]])  # the ids ride along, exactly
    assert not hasattr(model, "_replay") and isinstance(model.hf.embeddings, type(model.hf.embeddings))


@pytest.mark.parametrize(
    "family", [transformers.RobertaConfig, transformers.DistilBertConfig, transformers.ElectraConfig]
)
def test_every_family_runs_from_each_cached_depth(family):
    torch.manual_seed(0)
    model = tiny_family_classifier(family, pad_token_id=1).eval()
    units = split_units(model, head_modules(model))
    stages = model.cache_stages()
    assert ["+".join(s) for s in stages] == [u.name for u in units[:4]]  # the stages are the units, in order
    ids = torch.tensor([[5, 6, 7, 8, 1, 1], [9, 10, 11, 12, 13, 14], [15, 16, 1, 1, 1, 1]])
    with torch.no_grad():
        full = model(ids)
        for depth in range(1, len(stages) + 1):
            state = model.run_stages(0, depth, ids)
            with model.skip_stages(depth):
                assert torch.allclose(model(state), full, atol=1e-6), depth
