"""Training settings shared by every fitness evaluation and every final fine-tune."""

from __future__ import annotations

from dataclasses import dataclass

from ..config_utils import JsonConfig, help_field

# The names the trainer knows; torch-free here so that the CLI shows them in --help without
# importing torch (training/augment.py and training/optim.py check against them).
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")
AUGMENTATIONS = ("rrc", "crop-flip", "crop", "none")
HEAD_INITS = ("cold", "warm")


@dataclass
class TrainConfig(JsonConfig):
    """Defaults are the paper's: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 64,
    lr x0.1 every 30 epochs."""

    recipe: str = help_field(
        "default",
        "the named recipe these settings started from: default, paper "
        "(the paper's SGD optimiser exactly) or bert (AdamW 5e-5, warm-up, cosine, head "
        "x20: how text encoders are fine-tuned); settings given explicitly override it",
    )
    epochs: int = help_field(5, "epochs to train")
    lr: float = help_field(0.01, "initial learning rate")
    momentum: float = help_field(0.9, "SGD momentum")
    weight_decay: float = help_field(5e-4, "weight decay (trainable parameters only)")
    batch_size: int = help_field(64, "training batch size")
    optimizer: str = help_field("sgd", "sgd or adamw")
    schedule: str = help_field("step", "step (x gamma every step_size epochs), cosine or constant")
    step_size: int = help_field(30, "epochs between lr decays for the step schedule")
    gamma: float = help_field(0.1, "lr decay factor for the step schedule")
    augment: str = help_field(
        "crop-flip",
        "train augmentation: rrc (random resized crop + flip), crop-flip (pad, random crop + flip), crop or none",
    )
    crop_padding: float = help_field(0.125, "random-crop padding as a fraction of the image size (crop, crop-flip)")
    rrc_scale_min: float = help_field(
        0.25,
        "smallest area fraction a random resized crop keeps (rrc); timm's "
        "ImageNet 0.08 cuts too much of a small dataset's objects",
    )
    head_lr_mult: float = help_field(1.0, "learning-rate multiplier of the new classification head")
    head_init: str = help_field(
        "cold",
        "where the new head starts: cold (a fresh random head, the paper's) or warm "
        "(a logistic regression fitted on the frozen backbone's features first, as LP-FT "
        "does, so fine-tuning starts from a head that already fits)",
    )
    warmup_epochs: float = help_field(0.0, "linear learning-rate warm-up from 0, in epochs (per step)")
    decay_norm_bias: bool = help_field(True, "apply weight decay to normalisation weights and biases too (the paper)")
    label_smoothing: float = help_field(0.0, "label smoothing of the cross-entropy loss")
    bn_recalibrate: bool = help_field(
        False,
        "before each evaluation, re-estimate the BatchNorm statistics of frozen "
        "units on the training images (a no-grad pass in train mode)",
    )
    keep_best: bool = help_field(False, "restore the weights of the epoch with the best validation accuracy")
    val_every: int = help_field(1, "validate every N epochs; the last epoch is always validated")
    eval_batch_size: int = help_field(256, "batch size for evaluation")
    test_every: int = help_field(1, "evaluate the test split every N epochs (final fine-tunes only)")
    seed: int = help_field(0, "seed for shuffling, augmentation and dropout")
    device: str = help_field("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    amp: bool = help_field(False, "bfloat16 autocast on CUDA")
    compile: bool = help_field(
        False,
        "torch.compile the model for training and validation of final fine-tunes "
        "(fitness evaluations stay eager: each mask would recompile)",
    )
    channels_last: bool = help_field(False, "channels_last memory format (CUDA, and CPU where it helps convolutions)")

    def __post_init__(self) -> None:
        if self.head_init not in HEAD_INITS:
            from ..errors import LayerswarmError

            raise LayerswarmError(f"head_init='{self.head_init}': use {' or '.join(HEAD_INITS)}")

    @classmethod
    def for_recipe(cls, name: str, **overrides) -> TrainConfig:
        """The settings of recipe ``name`` (``RECIPES``) with ``overrides`` on top."""
        return recipe_config(name, **overrides)

    @property
    def truncatable(self) -> bool:
        """The first e epochs of this run are exactly an e-epoch run, and an e-epoch run can be
        continued into this one: the lr schedule does not depend on the run's length (cosine does)."""
        return self.schedule in ("step", "constant")


# Named recipes: the values a recipe gives the settings a user does not set. "paper" is the
# optimiser of the paper exactly (SGD lr 0.01, momentum 0.9, weight decay 5e-4 on every
# trainable parameter, lr x0.1 every 30 epochs) with the pad-and-crop augmentation layerswarm
# used before recipes existed; "default" is the dataclass defaults (docs/results/fashion-mnist.md
# measures both).
PAPER_RECIPE: dict = {
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "step",
    "step_size": 30,
    "gamma": 0.1,
    "augment": "crop-flip",
    "head_lr_mult": 1.0,
    "warmup_epochs": 0.0,
    "decay_norm_bias": True,
    "label_smoothing": 0.0,
    "bn_recalibrate": False,
    "head_init": "cold",
}
# How BERT-style encoders are usually fine-tuned (Devlin et al.; Hugging Face's examples): AdamW at
# 5e-5 with weight decay 0.01 off LayerNorm and biases, a warm-up, a decay to zero, batch 32, no
# augmentation; the new head, which starts from random, at 20x that rate (1e-3), as a linear probe
# needs. docs/results/text.md measures it against the paper's optimiser on the text benchmark.
BERT_RECIPE: dict = {
    "optimizer": "adamw",
    "lr": 5e-5,
    "weight_decay": 0.01,
    "schedule": "cosine",
    "warmup_epochs": 1.0,
    "decay_norm_bias": False,
    "head_lr_mult": 20.0,
    "batch_size": 32,
    "augment": "none",
    "label_smoothing": 0.0,
    "bn_recalibrate": False,
}
RECIPES: dict[str, dict] = {"default": {}, "paper": PAPER_RECIPE, "bert": BERT_RECIPE}


def recipe_config(name: str, **overrides) -> TrainConfig:
    """``TrainConfig`` of recipe ``name`` with ``overrides`` on top (what the user set)."""
    if name not in RECIPES:
        from ..errors import LayerswarmError

        raise LayerswarmError(f"unknown recipe '{name}': use {' or '.join(RECIPES)}")
    return TrainConfig(**{**RECIPES[name], "recipe": name, **overrides})
