"""The practitioner's recipe: input size from the model, standard transforms, optimiser options,
BatchNorm re-estimation, and settings that are honoured (seed, keep_best, the final's own)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from layerswarm.cli import main
from layerswarm.config_utils import get_dotted
from layerswarm.data import DataConfig, load_dataset
from layerswarm.data.config import SplitConfig
from layerswarm.data.imagefolder import _decode_one
from layerswarm.models.bundle import ModelConfig, build_bundle
from layerswarm.models.factory import pretrained_input
from layerswarm.run.finetune import load_model_metadata, run_finetune
from layerswarm.strategies import create_strategy
from layerswarm.training import TrainConfig, fit, resolve_device
from layerswarm.training.config import PAPER_RECIPE, AugmentConfig, OptimConfig, RuntimeConfig, recipe_config
from layerswarm.training.optim import (
    make_optimizer,
    make_scheduler,
    recalibrate_frozen_bn,
    recipe_param_groups,
)
from layerswarm.units import apply_mask

CFG = TrainConfig(
    epochs=2,
    optim=OptimConfig(batch_size=16, lr=0.05),
    augmentation=AugmentConfig(policy="none"),
    runtime=RuntimeConfig(device="cpu"),
)


def _photos(root: Path, size=(300, 260), per_class: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            pixels[..., 0] = 200 if c == "cat" else 20  # a class signal
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def test_a_folder_of_large_photos_runs_at_the_models_input_size_without_a_size_flag(tmp_path, capsys):
    data = _photos(tmp_path / "photos")
    out = tmp_path / "run"
    code = main(
        [
            "finetune",
            "--model",
            "test_efficientnet",
            "--weights",
            "none",
            "--data",
            str(data),
            "--test-fraction",
            "0.34",
            "--val-fraction",
            "0.25",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    expected = pretrained_input("test_efficientnet")
    saved = json.loads((out / "config.json").read_text())["data"]
    assert (saved["image"]["size"], saved["image"]["crop_pct"], saved["image"]["interpolation"]) == (
        expected["size"],
        expected["crop_pct"],
        expected["interpolation"],
    )
    assert f"input {expected['size']} px" in capsys.readouterr().err  # printed at start
    meta = load_model_metadata(out / "final" / "model.safetensors")
    assert (meta["image_size"], meta["crop_pct"]) == (expected["size"], expected["crop_pct"])
    assert pretrained_input("efficientnet_lite0") == {"size": 224, "crop_pct": 0.875, "interpolation": "bicubic"}


def test_evaluation_view_is_resize_to_size_over_crop_pct_then_centre_crop(tmp_path):
    path = tmp_path / "wide.png"
    pixels = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    got = _decode_one(path, 224, resize=256, interpolation="bicubic")
    by_hand = Image.fromarray(pixels).resize((384, 256), Image.Resampling.BICUBIC).crop((80, 16, 304, 240))
    assert np.array_equal(got, np.asarray(by_hand).transpose(2, 0, 1))


def test_recipes_fill_unset_settings_and_explicit_options_win():
    paper = recipe_config("paper", epochs=3)
    assert all(get_dotted(paper.to_dict(), k) == v for k, v in PAPER_RECIPE.items()) and paper.recipe == "paper"
    assert recipe_config("paper", **{"optim.lr": 0.05}).optim.lr == 0.05
    assert recipe_config("default") == TrainConfig()


def test_cli_recipe_paper_sets_the_papers_optimiser_and_a_flag_overrides_it(tmp_path):
    out = tmp_path / "ft"
    args = [
        "finetune",
        "--model",
        "test_efficientnet",
        "--weights",
        "none",
        "--data",
        "digits",
        "--image-size",
        "16",
        "--train-per-class",
        "3",
        "--val-per-class",
        "2",
        "--max-test",
        "20",
        "--epochs",
        "1",
        "--quiet",
        "--recipe",
        "paper",
        "--label-smoothing",
        "0.2",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    train = json.loads((out / "config.json").read_text())["train"]
    assert {k: get_dotted(train, k) for k in PAPER_RECIPE if k != "optim.label_smoothing"} == {
        k: v for k, v in PAPER_RECIPE.items() if k != "optim.label_smoothing"
    }
    assert train["optim"]["label_smoothing"] == 0.2 and train["recipe"] == "paper"


def test_head_learning_rate_and_no_decay_groups(digits16):
    cfg = CFG.replace(optim=CFG.optim.replace(head_lr_mult=10.0, decay_norm_bias=False, weight_decay=1e-3))
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, cfg)
    model = bundle.reset()
    head = {id(p) for n in bundle.info.head for p in model.get_submodule(n).parameters()}
    groups = recipe_param_groups([{"params": list(model.parameters())}], model, bundle.info.head, cfg)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    for g in groups:
        in_head = {id(p) in head for p in g["params"]}
        assert len(in_head) == 1  # a group is all head or all backbone
        assert g.get("lr", cfg.optim.lr) == (0.5 if in_head == {True} else cfg.optim.lr)
        if g.get("weight_decay") == 0.0:
            assert all(p.ndim <= 1 for p in g["params"])  # norm weights and biases
        else:
            assert all(p.ndim > 1 for p in g["params"])
    # groups that set their own lr (discriminative rates) keep it
    own = recipe_param_groups([{"params": list(model.parameters()), "lr": 0.003}], model, bundle.info.head, cfg)
    assert {g["lr"] for g in own} == {0.003}


def _lrs(cfg: TrainConfig, steps: int, step_count: int = 4) -> list[float]:
    """The learning rate of each of ``steps`` optimizer steps under ``cfg``'s schedule."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer([{"params": [param]}], cfg)
    sched = make_scheduler(opt, cfg, step_count=step_count)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_is_per_step_then_step_decay_by_epoch():
    lrs = _lrs(
        TrainConfig(epochs=4, optim=OptimConfig(lr=0.1, warmup_epochs=1.0, schedule="step", step_size=2, gamma=0.1)), 16
    )
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])  # four increments over the first epoch
    assert lrs[4:8] == pytest.approx([0.1] * 4) and lrs[8:] == pytest.approx([0.01] * 8)  # x0.1 after 2 epochs
    seen = _lrs(TrainConfig(epochs=2, optim=OptimConfig(lr=0.1, schedule="cosine")), 8)
    assert seen[0] == pytest.approx(0.1) and all(a > b for a, b in zip(seen, seen[1:], strict=False))


def test_bn_recalibration_touches_only_frozen_bn_behind_a_trained_unit(digits16):
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, CFG)
    model = bundle.reset()
    n = len(bundle.units)
    mask = [0, 1] + [0] * (n - 2)  # unit 1 trains; units 2.. are frozen behind it, unit 0 before it
    frozen = apply_mask(model, bundle.units, mask)
    modes = [m.training for m in model.modules()]
    params = {k: v.clone() for k, v in model.named_parameters()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    x = bundle.transform(digits16.train.images[:32], train=False)
    count = recalibrate_frozen_bn(model, frozen, iter([x]))
    assert count > 0
    assert all(torch.equal(v, params[k]) for k, v in model.named_parameters())  # no weight moves
    before_unit = {f"{m}." for m in bundle.units[0].modules}
    behind = {f"{m}." for u in bundle.units[2:] for m in u.modules}
    changed = {k for k, v in model.named_buffers() if not torch.equal(v, buffers[k])}
    assert changed and all(any(k.startswith(p) for p in behind) for k in changed)
    assert not any(any(k.startswith(p) for p in before_unit) for k in changed)
    assert [m.training for m in model.modules()] == modes  # train/eval modes restored


def test_run_finetune_seed_drives_head_and_batches_and_keep_best_reports_its_epoch(digits16, tmp_path):
    cfg = CFG.replace(
        epochs=3,
        evaluation=CFG.evaluation.replace(keep_best=True),
        augmentation=CFG.augmentation.replace(policy="crop-flip"),
    )
    # "pretrained" weights from a file, so that only the new head depends on the seed
    weights = tmp_path / "backbone.safetensors"
    save_file(build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, cfg).model.state_dict(), weights)
    model_cfg = ModelConfig(name="test_efficientnet", weights=str(weights))
    by_arg = run_finetune(build_bundle(model_cfg, 10, cfg, seed=0), digits16, create_strategy("full"), cfg, seed=3)
    by_build = run_finetune(
        build_bundle(model_cfg, 10, cfg.replace(seed=3), seed=3), digits16, create_strategy("full"), cfg.replace(seed=3)
    )
    other = run_finetune(build_bundle(model_cfg, 10, cfg, seed=0), digits16, create_strategy("full"), cfg, seed=0)
    strip = lambda m: [{k: v for k, v in e.items() if k != "seconds"} for e in m["epochs"]]  # noqa: E731
    assert strip(by_arg) == strip(by_build) and by_arg["test_accuracy"] == by_build["test_accuracy"]
    assert strip(other) != strip(by_arg)
    best = max(e["val_accuracy"] for e in by_arg["epochs"])
    assert by_arg["val_accuracy"] == best
    assert by_arg["epochs"][by_arg["restored_epoch"] - 1]["val_accuracy"] == best


def test_device_auto_picks_what_is_here():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected
    assert TrainConfig().runtime.device == "auto"


def test_final_fine_tune_uses_its_own_augmentation(digits16):
    fitness_cfg = CFG.replace(augmentation=CFG.augmentation.replace(policy="none"))
    bundle = build_bundle(ModelConfig(name="test_efficientnet", weights="none"), 10, fitness_cfg)
    assert bundle.transform.augment == "none"
    assert (
        bundle.transform_for(
            fitness_cfg.replace(augmentation=fitness_cfg.augmentation.replace(policy="rrc", rrc_scale_min=0.5))
        ).augment
        == "rrc"
    )
    x = digits16.train.images[:8]
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    rrc = bundle.transform_for(fitness_cfg.replace(augmentation=fitness_cfg.augmentation.replace(policy="rrc")))
    assert torch.equal(rrc(x, train=True, generator=g1), rrc(x, train=True, generator=g2))  # seeded, exact
    assert not torch.equal(rrc(x, train=True, generator=g1), rrc(x, train=False))
    model = bundle.reset()
    history = fit(
        model,
        digits16.train,
        digits16.val,
        fitness_cfg.replace(epochs=1, optim=fitness_cfg.optim.replace(label_smoothing=0.1)),
        bundle.transform,
        head=bundle.info.head,
    )
    assert np.isfinite(history.epochs[-1]["train_loss"])


def test_load_dataset_records_the_input_it_used():
    data = load_dataset(DataConfig(data="digits", splits=SplitConfig(train_per_class=2, val_per_class=2, max_test=10)))
    assert data.input_config == {"image_size": 32, "crop_pct": 1.0, "interpolation": "bilinear"}
    assert data.train.images.shape[-1] == 32
