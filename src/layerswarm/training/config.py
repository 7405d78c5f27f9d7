"""Training settings shared by every fitness evaluation and every final fine-tune."""

from __future__ import annotations

from dataclasses import dataclass

from ..config_utils import JsonConfig, help_field


@dataclass
class TrainConfig(JsonConfig):
    """Defaults are the paper's: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 64,
    lr x0.1 every 30 epochs."""

    epochs: int = help_field(5, "epochs to train")
    lr: float = help_field(0.01, "initial learning rate")
    momentum: float = help_field(0.9, "SGD momentum")
    weight_decay: float = help_field(5e-4, "weight decay (trainable parameters only)")
    batch_size: int = help_field(64, "training batch size")
    optimizer: str = help_field("sgd", "sgd or adamw")
    schedule: str = help_field("step", "step (x gamma every step_size epochs), cosine or constant")
    step_size: int = help_field(30, "epochs between lr decays for the step schedule")
    gamma: float = help_field(0.1, "lr decay factor for the step schedule")
    augment: str = help_field("crop-flip", "train augmentation: crop-flip, crop or none")
    crop_padding: float = help_field(0.125, "random-crop padding as a fraction of the image size")
    keep_best: bool = help_field(False, "restore the weights of the epoch with the best validation accuracy")
    val_every: int = help_field(1, "validate every N epochs; the last epoch is always validated")
    eval_batch_size: int = help_field(256, "batch size for evaluation")
    test_every: int = help_field(1, "evaluate the test split every N epochs (final fine-tunes only)")
    seed: int = help_field(0, "seed for shuffling, augmentation and dropout")
    device: str = help_field("cpu", "cpu, cuda, cuda:N or mps")
    amp: bool = help_field(False, "bfloat16 autocast on CUDA")
    compile: bool = help_field(False, "torch.compile the model for training and validation of final fine-tunes "
                               "(fitness evaluations stay eager: each mask would recompile)")
    channels_last: bool = help_field(False, "channels_last memory format (CUDA, and CPU where it helps convolutions)")

    @property
    def truncatable(self) -> bool:
        """The first e epochs of this run are exactly an e-epoch run, and an e-epoch run can be
        continued into this one: the lr schedule does not depend on the run's length (cosine does)."""
        return self.schedule in ("step", "constant")
