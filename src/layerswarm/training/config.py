"""Training settings shared by every fitness evaluation and every final fine-tune."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config_utils import JsonConfig, help_field, refuse_first, set_dotted
from ..errors import LayerswarmError

# The names the trainer knows; torch-free here so that the CLI shows them in --help without
# importing torch (training/augment.py and training/optim.py check against them).
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")
AUGMENTATIONS = ("rrc", "crop-flip", "crop", "none")
HEAD_INITS = ("cold", "warm")


@dataclass
class OptimConfig(JsonConfig):
    """The optimiser, its learning-rate schedule and the loss: what a recipe decides."""

    optimizer: str = help_field("sgd", "sgd or adamw")
    lr: float = help_field(0.01, "initial learning rate")
    momentum: float = help_field(0.9, "SGD momentum")
    weight_decay: float = help_field(5e-4, "weight decay (trainable parameters only)")
    decay_norm_bias: bool = help_field(True, "apply weight decay to normalisation weights and biases too (the paper)")
    batch_size: int = help_field(64, "training batch size")
    schedule: str = help_field("step", "step (x gamma every step_size epochs), cosine or constant")
    step_size: int = help_field(30, "epochs between lr decays for the step schedule")
    gamma: float = help_field(0.1, "lr decay factor for the step schedule")
    warmup_epochs: float = help_field(0.0, "linear learning-rate warm-up from 0, in epochs (per step)")
    head_lr_mult: float = help_field(1.0, "learning-rate multiplier of the new classification head")
    head_init: str = help_field(
        "cold",
        "where the new head starts: cold (a fresh random head, the paper's) or warm "
        "(a logistic regression fitted on the frozen backbone's features first, as LP-FT "
        "does, so fine-tuning starts from a head that already fits)",
    )
    label_smoothing: float = help_field(0.0, "label smoothing of the cross-entropy loss")

    def __post_init__(self) -> None:
        refuse_first(
            {
                f"optimizer='{self.optimizer}': use --optimizer {' or '.join(OPTIMIZERS)}": self.optimizer
                not in OPTIMIZERS,
                f"schedule='{self.schedule}': use --schedule {', '.join(SCHEDULES)}": self.schedule not in SCHEDULES,
                f"head_init='{self.head_init}': use {' or '.join(HEAD_INITS)}": self.head_init not in HEAD_INITS,
                f"lr={self.lr} is negative: pass --lr with a rate >= 0, e.g. 0.01": self.lr < 0,
                f"momentum={self.momentum} is outside [0, 1): pass --momentum M, e.g. 0.9": not 0 <= self.momentum < 1,
                f"weight_decay={self.weight_decay} is negative: pass --weight-decay W >= 0": self.weight_decay < 0,
                f"batch_size={self.batch_size} is not positive: pass --batch-size N >= 1": self.batch_size < 1,
                f"step_size={self.step_size} is not positive: pass --step-size N >= 1": self.step_size < 1,
                f"gamma={self.gamma} is not positive: pass --gamma G > 0, e.g. 0.1": self.gamma <= 0,
                f"warmup_epochs={self.warmup_epochs} is negative: pass --warmup-epochs E >= 0": self.warmup_epochs < 0,
                f"head_lr_mult={self.head_lr_mult} is negative: pass --head-lr-mult M >= 0": self.head_lr_mult < 0,
                f"label_smoothing={self.label_smoothing} is outside [0, 1): pass --label-smoothing S, e.g. 0.1": not (
                    0 <= self.label_smoothing < 1
                ),
            }
        )


@dataclass
class AugmentConfig(JsonConfig):
    """The training images' augmentation."""

    policy: str = help_field(
        "crop-flip",
        "train augmentation: rrc (random resized crop + flip), crop-flip (pad, random crop + flip), crop or none",
    )
    crop_padding: float = help_field(0.125, "random-crop padding as a fraction of the image size (crop, crop-flip)")
    rrc_scale_min: float = help_field(
        0.25,
        "smallest area fraction a random resized crop keeps (rrc); timm's "
        "ImageNet 0.08 cuts too much of a small dataset's objects",
    )

    def __post_init__(self) -> None:
        refuse_first(
            {
                f"augment='{self.policy}': use --augment {', '.join(AUGMENTATIONS)}": self.policy not in AUGMENTATIONS,
                f"crop_padding={self.crop_padding} is negative: pass --crop-padding F >= 0, e.g. 0.125": (
                    self.crop_padding < 0
                ),
                f"rrc_scale_min={self.rrc_scale_min} is outside (0, 1]: pass --rrc-scale-min F, e.g. 0.25": not (
                    0 < self.rrc_scale_min <= 1
                ),
            }
        )


@dataclass
class EvalConfig(JsonConfig):
    """When and how a fine-tune is evaluated, and which epoch's weights it keeps."""

    val_every: int = help_field(1, "validate every N epochs; the last epoch is always validated")
    test_every: int = help_field(1, "evaluate the test split every N epochs (final fine-tunes only)")
    eval_batch_size: int = help_field(256, "batch size for evaluation")
    keep_best: bool = help_field(False, "restore the weights of the epoch with the best validation accuracy")
    bn_recalibrate: bool = help_field(
        False,
        "before each evaluation, re-estimate the BatchNorm statistics of frozen "
        "units on the training images (a no-grad pass in train mode)",
    )

    def __post_init__(self) -> None:
        refuse_first(
            {
                f"val_every={self.val_every} is not positive: pass N >= 1": self.val_every < 1,
                f"test_every={self.test_every} is not positive: pass --test-every N >= 1": self.test_every < 1,
                f"eval_batch_size={self.eval_batch_size} is not positive: pass --eval-batch-size N >= 1": (
                    self.eval_batch_size < 1
                ),
            }
        )


@dataclass
class RuntimeConfig(JsonConfig):
    """Where and how fast the training runs: the device and its speed switches."""

    device: str = help_field("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    amp: bool = help_field(False, "bfloat16 autocast on CUDA")
    compile: bool = help_field(
        False,
        "torch.compile the model for training and validation of final fine-tunes "
        "(fitness evaluations stay eager: each mask would recompile)",
    )
    channels_last: bool = help_field(False, "channels_last memory format (CUDA, and CPU where it helps convolutions)")

    def __post_init__(self) -> None:
        # which devices exist is known only where the run starts (trainer.resolve_device)
        blank = not isinstance(self.device, str) or not self.device.strip()
        refuse_first({f"device={self.device!r} is empty: use --device auto, cpu, cuda, cuda:N or mps": blank})


@dataclass
class TrainConfig(JsonConfig):
    """Defaults are the paper's: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 64,
    lr x0.1 every 30 epochs. The settings are grouped: ``optim``, ``augmentation``,
    ``evaluation`` and ``runtime``; a saved config of the earlier flat layout reads back
    (``moved``)."""

    recipe: str = help_field(
        "default",
        "the named recipe these settings started from: default, paper "
        "(the paper's SGD optimiser exactly) or bert (AdamW 5e-5, warm-up, cosine, head "
        "x20: how text encoders are fine-tuned); settings given explicitly override it",
    )
    epochs: int = help_field(5, "epochs to train")
    seed: int = help_field(0, "seed for shuffling, augmentation and dropout")
    optim: OptimConfig = field(default_factory=OptimConfig)
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    # the flat layout's keys (config.json before the groups): where each lives now
    moved: ClassVar[dict[str, str]] = {
        **{name: f"optim.{name}" for name in OptimConfig.__dataclass_fields__},
        "augment": "augmentation.policy",
        "crop_padding": "augmentation.crop_padding",
        "rrc_scale_min": "augmentation.rrc_scale_min",
        **{name: f"evaluation.{name}" for name in EvalConfig.__dataclass_fields__},
        **{name: f"runtime.{name}" for name in RuntimeConfig.__dataclass_fields__},
    }

    @classmethod
    def for_recipe(cls, name: str, **overrides: Any) -> TrainConfig:
        """The settings of recipe ``name`` (``RECIPES``) with ``overrides`` on top."""
        return recipe_config(name, **overrides)

    @property
    def truncatable(self) -> bool:
        """The first e epochs of this run are exactly an e-epoch run, and an e-epoch run can be
        continued into this one: the lr schedule does not depend on the run's length (cosine does)."""
        return self.optim.schedule in ("step", "constant")


# Named recipes: the values a recipe gives the settings a user does not set. "paper" is the
# optimiser of the paper exactly (SGD lr 0.01, momentum 0.9, weight decay 5e-4 on every
# trainable parameter, lr x0.1 every 30 epochs) with the pad-and-crop augmentation layerswarm
# used before recipes existed; "default" is the dataclass defaults (docs/results/fashion-mnist.md
# measures both).
PAPER_RECIPE: dict[str, Any] = {
    "optim.optimizer": "sgd",
    "optim.lr": 0.01,
    "optim.momentum": 0.9,
    "optim.weight_decay": 5e-4,
    "optim.schedule": "step",
    "optim.step_size": 30,
    "optim.gamma": 0.1,
    "augmentation.policy": "crop-flip",
    "optim.head_lr_mult": 1.0,
    "optim.warmup_epochs": 0.0,
    "optim.decay_norm_bias": True,
    "optim.label_smoothing": 0.0,
    "evaluation.bn_recalibrate": False,
    "optim.head_init": "cold",
}
# How BERT-style encoders are usually fine-tuned (Devlin et al.; Hugging Face's examples): AdamW at
# 5e-5 with weight decay 0.01 off LayerNorm and biases, a warm-up, a decay to zero, batch 32, no
# augmentation; the new head, which starts from random, at 20x that rate (1e-3), as a linear probe
# needs. docs/results/text.md measures it against the paper's optimiser on the text benchmark.
BERT_RECIPE: dict[str, Any] = {
    "optim.optimizer": "adamw",
    "optim.lr": 5e-5,
    "optim.weight_decay": 0.01,
    "optim.schedule": "cosine",
    "optim.warmup_epochs": 1.0,
    "optim.decay_norm_bias": False,
    "optim.head_lr_mult": 20.0,
    "optim.batch_size": 32,
    "augmentation.policy": "none",
    "optim.label_smoothing": 0.0,
    "evaluation.bn_recalibrate": False,
}
# recipe -> the dotted TrainConfig keys it sets
RECIPES: dict[str, dict[str, Any]] = {"default": {}, "paper": PAPER_RECIPE, "bert": BERT_RECIPE}


def recipe_config(name: str, **overrides: Any) -> TrainConfig:
    """``TrainConfig`` of recipe ``name`` with ``overrides`` on top (what the user set): each a
    field (``epochs=3``, ``optim=OptimConfig(...)``) or a dotted key, ``**{"optim.lr": 0.05}``."""
    if name not in RECIPES:
        raise LayerswarmError(f"unknown recipe '{name}': use {' or '.join(RECIPES)}")
    settings = TrainConfig().to_dict()
    for key, value in {**RECIPES[name], "recipe": name, **overrides}.items():
        set_dotted(settings, TrainConfig.current_key(key), value.to_dict() if isinstance(value, JsonConfig) else value)
    return TrainConfig.from_dict(settings)
