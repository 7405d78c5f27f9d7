"""A plan in the real libraries' training code: Hugging Face Trainer, Lightning, peft, timm.

Every run checks the same thing: what the plan freezes (parameters and buffers: BatchNorm
statistics) is bit-identical after training, what it trains has moved.
"""

from __future__ import annotations

import logging

import pytest
import timm
import torch
import transformers
from torch import nn

from layerswarm.errors import LayerswarmError
from layerswarm.study import Plan, find_units


class ImageClassifier(nn.Module):
    """A timm model (BatchNorm inside) as a Trainer wants it: keyword inputs, a loss out."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = timm.create_model("test_efficientnet", num_classes=3)

    def forward(self, pixel_values, labels=None):
        logits = self.net(pixel_values)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def tiny_bert() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def frozen_and_trained(model: nn.Module, plan: Plan) -> tuple[set[str], set[str]]:
    """state_dict keys of the plan's frozen modules (buffers included), and of its trained units."""
    keys = set(model.state_dict())
    frozen = {k for k in keys for m in plan.frozen_modules if k.startswith(f"{m}.")}
    trained = {p for u, bit in zip(plan.units, plan.mask, strict=True) if bit for p in u.params}
    return frozen, trained


def assert_frozen_kept(before: dict, model: nn.Module, plan: Plan) -> None:
    frozen, trained = frozen_and_trained(model, plan)
    after = model.state_dict()
    assert frozen, "the plan freezes nothing"
    moved = [k for k in frozen if not torch.equal(before[k], after[k])]
    assert not moved, moved
    assert all(not torch.equal(before[k], after[k]) for k in trained)


def watch_modes(model: nn.Module, paths: list[str]) -> list[bool]:
    """``training`` of each module at ``paths`` at every forward it runs."""
    seen: list[bool] = []
    for path in paths:
        model.get_submodule(path).register_forward_hook(lambda m, i, o: seen.append(m.training))
    return seen


def image_rows(n: int = 16) -> list[dict]:
    torch.manual_seed(1)
    return [{"pixel_values": torch.randn(3, 16, 16), "labels": i % 3} for i in range(n)]


def trainer_args(tmp_path, **kw) -> transformers.TrainingArguments:
    return transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        num_train_epochs=2,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        **kw,
    )


def test_a_trainer_run_leaves_every_frozen_tensor_bit_identical(tmp_path):
    from layerswarm.integrations.hf import PlanCallback

    model = ImageClassifier()
    units, head = find_units(model)
    plan = Plan.from_mask(units, [0, 1, 0, 1, 0, 1], head)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = watch_modes(model, plan.frozen_modules)
    trainer = transformers.Trainer(
        model=model,
        args=trainer_args(tmp_path, eval_strategy="epoch", learning_rate=0.05),
        train_dataset=image_rows(),
        eval_dataset=image_rows(8),
        callbacks=[PlanCallback(plan)],
    )
    held = {id(p) for g in trainer.create_optimizer().param_groups for p in g["params"]}
    assert held == {id(p) for n, p in model.named_parameters() if p.requires_grad}  # the frozen left out
    trainer.train()
    assert_frozen_kept(before, model, plan)
    assert modes and not any(modes)  # eval mode at every forward, through Trainer's model.train()


def test_plan_optimizer_gives_each_unit_its_rate_in_a_trainer(tmp_path):
    from layerswarm.integrations.hf import plan_optimizer

    model = tiny_bert()
    units, head = find_units(model)
    plan = Plan(units, [0.0, 0.5, 0.0, 2.0, 1.0], head)
    args = trainer_args(tmp_path, learning_rate=1e-2, weight_decay=0.1, lr_scheduler_type="constant")
    optimizer = plan_optimizer(model, plan, args)
    rates = {(g["lr"], g["weight_decay"]) for g in optimizer.param_groups}
    assert rates == {(5e-3, 0.1), (5e-3, 0.0), (2e-2, 0.1), (2e-2, 0.0), (1e-2, 0.1), (1e-2, 0.0)}
    torch.manual_seed(1)
    rows = [{"input_ids": torch.randint(5, 50, (8,)), "labels": i % 2} for i in range(12)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows, optimizers=(optimizer, None))
    trainer.train()
    assert_frozen_kept(before, model, plan)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [g["lr"] for g in optimizer.param_groups]


def test_a_lightning_run_with_a_schedule_of_plans(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from layerswarm.integrations.lightning import PlanFinetuning

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = timm.create_model("test_efficientnet", num_classes=3)

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.05, momentum=0.9)

    module = Module()
    units, head = find_units(module)
    first = Plan.from_mask(units, [0, 0, 0, 0, 1, 1], head)
    then = Plan.from_mask(units, [0, 0, 1, 0, 1, 1], head)  # unfreezes blocks.1 at epoch 2
    states = {}

    class Snapshot(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            states[trainer.current_epoch] = {k: v.clone() for k, v in pl_module.state_dict().items()}

    data = torch.utils.data.TensorDataset(torch.randn(16, 3, 16, 16), torch.arange(16) % 3)
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    modes = watch_modes(module, then.frozen_modules)
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=[PlanFinetuning({0: first, 2: then}), Snapshot()],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, loader, loader)
    assert_frozen_kept(before, _at(module, states[1]), first)
    assert_frozen_kept(states[1], module, then)
    assert modes and not any(modes)
    assert len(trainer.optimizers[0].param_groups) == 2  # blocks.1 joined at epoch 2


def _at(module: nn.Module, state: dict) -> nn.Module:
    """A copy of ``module`` holding ``state``."""
    import copy

    copied = copy.deepcopy(module)
    copied.load_state_dict(state)
    return copied


def test_the_peft_export_adapts_exactly_the_plans_trained_layers():
    pytest.importorskip("peft")
    from peft import get_peft_model

    from layerswarm.integrations.peft import lora_config

    model = tiny_bert()
    units, head = find_units(model)
    plan = Plan.from_mask(units, [1, 0, 1, 1, 0], head)  # embeddings, layers 1 and 2
    config = lora_config(model, plan, r=4, lora_alpha=8)
    assert config.layers_to_transform == [1, 2] and config.modules_to_save == [
        "bert.embeddings",
        "classifier",
    ]
    lora = get_peft_model(model, config)
    adapted = {n.split(".")[5] for n, _ in lora.named_modules() if n.endswith("lora_A")}
    assert adapted == {"1", "2"}  # base_model.model.bert.encoder.layer.N...
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or ".modules_to_save." in n for n in trainable)
    saved = {n.split(".modules_to_save.")[0] for n in trainable if ".modules_to_save." in n}
    assert saved == {"base_model.model.bert.embeddings", "base_model.model.classifier"}
    with pytest.raises(LayerswarmError, match="trains no layer"):
        lora_config(tiny_bert(), Plan.from_mask(units, [1, 0, 0, 0, 1], head))


def test_timm_param_groups_carry_the_plan_through_create_optimizer_and_a_scheduler():
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2

    from layerswarm.integrations.timm import param_groups

    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=3)
    units, head = find_units(model)
    plan = Plan(units, [0.0, 0.0, 0.5, 1.0, 0.0, 2.0], head)
    optimizer = create_optimizer_v2(param_groups(model, plan, weight_decay=0.05), opt="adamw", lr=1e-3)
    scheduler, _ = create_scheduler_v2(optimizer, sched="cosine", num_epochs=4)
    scheduler.step(0)
    name_of = {id(p): n for n, p in model.named_parameters()}
    multiplier = {p: m for u, m in zip(units, plan.lr_multipliers, strict=True) for p in u.params}
    for group in optimizer.param_groups:
        names = [name_of[id(p)] for p in group["params"]]
        assert {multiplier.get(n, 1.0) for n in names} == {group["lr_scale"]}
        assert group["lr"] == pytest.approx(1e-3 * group["lr_scale"])
        assert all((group["weight_decay"] == 0.0) == (model.get_parameter(n).ndim <= 1) for n in names)
    held = {name_of[id(p)] for g in optimizer.param_groups for p in g["params"]}
    assert held == {n for n in name_of.values() if multiplier.get(n, 1.0) > 0}
