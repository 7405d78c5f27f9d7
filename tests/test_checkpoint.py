"""fit's checkpoint hook: a run stopped after any epoch continues from its file to the weights of
the run never stopped, keep_best's earlier best epoch included; a foreign or broken file is
refused with one line before anything trains."""

from __future__ import annotations

import pytest
import torch

from layerswarm.errors import LayerswarmError
from layerswarm.run.checkpoint import Checkpoint
from layerswarm.training import TrainConfig, fit
from layerswarm.training.augment import BatchTransform
from layerswarm.training.config import EvalConfig, OptimConfig

CFG = TrainConfig(epochs=6, optim=OptimConfig(batch_size=16, lr=0.05), evaluation=EvalConfig(keep_best=True))
TRANSFORM = BatchTransform((0.5,) * 3, (0.5,) * 3, "crop-flip")


def _model() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(3 * 16 * 16, 32),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(32, 10),
    )


class _Stop(Exception):
    pass


def test_keep_best_restores_a_best_epoch_saved_before_the_interruption(digits16, tmp_path):
    whole = _model()
    straight = fit(whole, digits16.train, digits16.val, CFG, TRANSFORM)
    accuracies = [e["val_accuracy"] for e in straight.epochs]
    best = accuracies.index(max(accuracies)) + 1
    assert best < CFG.epochs - 1  # the premise: the best epoch is in the file when the run stops

    def stop_after_best(record):
        if record["epoch"] == best + 1:
            raise _Stop

    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", CFG)
    with pytest.raises(_Stop):
        fit(_model(), digits16.train, digits16.val, CFG, TRANSFORM, on_epoch=stop_after_best, checkpoint=checkpoint)
    saved = torch.load(checkpoint.path, map_location="cpu", weights_only=True)
    assert len(saved["state"]["history"]) == best and saved["best"]["epoch"] == best

    seen = []
    resumed_model = _model()
    resumed = fit(
        resumed_model,
        digits16.train,
        digits16.val,
        CFG,
        TRANSFORM,
        on_epoch=lambda r: seen.append(r["epoch"]),
        checkpoint=checkpoint,
    )
    assert seen == list(range(best + 1, CFG.epochs + 1))
    strip = lambda epochs: [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]  # noqa: E731
    assert strip(resumed.epochs) == strip(straight.epochs)
    for key, value in whole.state_dict().items():  # the best epoch's weights, not the last one's
        assert torch.equal(resumed_model.state_dict()[key], value), key


def test_a_checkpoint_of_other_settings_or_a_broken_one_is_refused_before_training(digits16, tmp_path):
    path = tmp_path / "checkpoint.pt"
    fit(_model(), digits16.train, digits16.val, CFG, TRANSFORM, stop=lambda _: True, checkpoint=Checkpoint(path, CFG))
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(LayerswarmError) as other:
        fit(
            model,
            digits16.train,
            digits16.val,
            CFG,
            TRANSFORM,
            checkpoint=Checkpoint(path, CFG.replace(optim=CFG.optim.replace(lr=0.1))),
        )
    assert str(other.value) == (
        f"checkpoint '{path}' was written by a fine-tune with other settings: delete it to start this one "
        "from its first epoch"
    )
    path.write_bytes(path.read_bytes()[:100])  # cut short, as by a full disk outside the atomic write
    with pytest.raises(LayerswarmError, match=r"^checkpoint '.*' cannot be read \(\w+\): delete it to run"):
        fit(model, digits16.train, digits16.val, CFG, TRANSFORM, checkpoint=Checkpoint(path, CFG))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
