"""What data to load, how to split it and how to read it: small dataclasses, each validated on creation."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from layerswarm.config_utils import JsonConfig, help_field, refuse_first
from layerswarm.errors import LayerswarmError

# Names accepted by ``DataConfig.data`` besides a folder path.
BUILTIN_DATASETS: tuple[str, ...] = ("digits", "fashion-mnist")
# Paper datasets read from a local copy: ``NAME:ROOT`` (or ``NAME`` with ``data_root``).
PAPER_DATASETS: tuple[str, ...] = ("caltech256-30", "caltech256-60", "mit-indoor", "stanford-dogs")
BAD_IMAGE_POLICIES: tuple[str, ...] = ("skip", "error")
INTERPOLATIONS: tuple[str, ...] = ("bilinear", "bicubic")
# Built-in datasets of small images keep an input size of their own: upsampling 8 x 8 digits or
# 28 x 28 Fashion-MNIST to 224 costs 12-50x the compute and adds no detail.
BUILTIN_INPUT = {
    "digits": {"size": 32, "crop_pct": 1.0, "interpolation": "bilinear"},
    "fashion-mnist": {"size": 64, "crop_pct": 1.0, "interpolation": "bilinear"},
}
DEFAULT_MAX_LENGTH = 128  # tokens: most sentence-classification fine-tunes use 128
# What an ImageNet model expects when nothing else says (timm's defaults).
IMAGENET_INPUT = {"size": 224, "crop_pct": 0.875, "interpolation": "bilinear"}


@dataclass
class SplitConfig(JsonConfig):
    """How the data is split into train, validation and test, and how much of each is kept."""

    seed: int = help_field(0, "seed of every data split")
    train_per_class: int | None = help_field(
        None,
        "few-shot: keep K training images per class, taken after validation is held out (default: all remaining)",
    )
    val_per_class: int | None = help_field(
        None,
        "validation images per class held out of the training images (default: use --val-fraction)",
    )
    val_holdout_fraction: float = help_field(
        0.2,
        "fraction of each class's training images held out for validation when --val-per-class is not given",
    )
    test_fraction: float = help_field(
        0.2,
        "fraction of each class held out for testing, only for datasets without a test split "
        "(digits, a single-folder ImageFolder)",
    )
    max_test: int | None = help_field(None, "cap on test images (stratified sample) for quick runs")

    def __post_init__(self) -> None:
        for name, flag in (
            ("train_per_class", "--train-per-class"),
            ("val_per_class", "--val-per-class"),
            ("max_test", "--max-test"),
        ):
            value = getattr(self, name)
            refuse_first(
                {
                    f"{name}={value} must be at least 1: pass {flag} N with N >= 1, or leave it unset": (
                        value is not None and value < 1
                    )
                }
            )
        for name, flag in (("val_holdout_fraction", "--val-fraction"), ("test_fraction", "--test-fraction")):
            value = getattr(self, name)
            refuse_first(
                {f"{name}={value} is outside (0, 1): pass {flag} F with 0 < F < 1, e.g. 0.2": not 0.0 < value < 1.0}
            )


@dataclass
class ImageConfig(JsonConfig):
    """How image files are read and fed to the model (left unset: from the model or the dataset)."""

    size: int | None = help_field(
        None,
        "input size SIZE x SIZE (default: the model's pretrained input size, e.g. 224, for "
        "folders and paper datasets; 32 for digits and 64 for fashion-mnist, whose images are "
        "small)",
    )
    crop_pct: float | None = help_field(
        None,
        "images are resized to SIZE / CROP_PCT and centre-cropped to SIZE, as timm evaluates "
        "(default: the model's pretrained crop_pct, e.g. 0.875, for folders and paper datasets; "
        "1.0 for digits and fashion-mnist)",
    )
    interpolation: str | None = help_field(
        None,
        "resize interpolation of image files: bilinear or bicubic (default: the model's "
        "pretrained one); digits and fashion-mnist are resized bilinear, antialiased",
    )
    on_bad_image: str = help_field(
        "skip",
        "unreadable image files: 'skip' them with one warning, or 'error'",
    )

    def __post_init__(self) -> None:
        refuse_first(
            {
                f"crop_pct={self.crop_pct} is outside (0, 1]: pass --crop-pct F, e.g. 0.875": (
                    self.crop_pct is not None and not 0.0 < self.crop_pct <= 1.0
                ),
                f"interpolation={self.interpolation!r} is not known: pass --interpolation "
                f"{' or '.join(INTERPOLATIONS)}": self.interpolation not in (None, *INTERPOLATIONS),
                f"image_size={self.size} is not positive: pass --image-size N with N >= 1": (
                    self.size is not None and self.size < 1
                ),
                f"on_bad_image={self.on_bad_image!r} is not known: pass --on-bad-image skip or "
                "--on-bad-image error": self.on_bad_image not in BAD_IMAGE_POLICIES,
            }
        )


@dataclass
class TextConfig(JsonConfig):
    """How text data is read and tokenized (with a text model)."""

    max_length: int | None = help_field(
        None,
        f"text: tokens kept per text, longer ones are cut (default: {DEFAULT_MAX_LENGTH}, or less "
        "where the model's positions end)",
    )
    text_column: str = help_field("text", "text: the column (CSV/TSV header, JSONL key) holding the text")
    label_column: str = help_field("label", "text: the column holding the label")
    categories: str = help_field(
        "10",
        "wordnet: N (the N lexicographer categories with the most noun "
        "definitions) or a comma list of names, e.g. noun.animal,noun.food",
    )
    tokenizer: str | None = help_field(None, "text: the tokenizer (default: the model's own)")

    def __post_init__(self) -> None:
        refuse_first(
            {
                f"max_length={self.max_length} is too short: pass --max-length N with N >= 2": (
                    self.max_length is not None and self.max_length < 2
                )
            }
        )


@dataclass
class DataConfig(JsonConfig):
    """Dataset choice, its splits (``splits``), and how images (``image``) and texts (``text``)
    are read; every setting maps to a CLI option. A saved config of the earlier flat layout
    reads back (``moved``)."""

    data: str = help_field(
        "digits",
        "dataset: 'digits', 'fashion-mnist', a paper dataset as NAME:ROOT (caltech256-30, "
        "caltech256-60, mit-indoor, stanford-dogs) or a path to an ImageFolder tree (class "
        "subfolders of images, optionally under train/ val/ test/); text (with a text model): "
        "'wordnet', a .csv/.tsv/.jsonl file, or a folder of class subfolders of .txt files",
    )
    data_root: str | None = help_field(
        None,
        "folder holding the dataset files when --data is a name (fashion-mnist default: "
        "/usr/share/datasets/fashion-mnist)",
    )
    splits: SplitConfig = field(default_factory=SplitConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    text: TextConfig = field(default_factory=TextConfig)

    # the flat layout's keys (config.json before the groups): where each lives now
    moved: ClassVar[dict[str, str]] = {
        **{
            name: f"splits.{name}" for name in ("seed", "train_per_class", "val_per_class", "test_fraction", "max_test")
        },
        "val_fraction": "splits.val_holdout_fraction",
        "image_size": "image.size",
        **{name: f"image.{name}" for name in ("crop_pct", "interpolation", "on_bad_image")},
        **{name: f"text.{name}" for name in TextConfig.__dataclass_fields__},
    }

    def __post_init__(self) -> None:
        if not isinstance(self.data, str) or not self.data.strip():
            raise LayerswarmError("data is empty: pass --data 'digits', 'fashion-mnist', NAME:ROOT or a folder path")

    def resolved(self, model_input: dict | None = None) -> DataConfig:
        """This config with the input size, crop and interpolation filled in: from the dataset's
        own default for digits and fashion-mnist, else from ``model_input`` (``size``, ``crop_pct``,
        ``interpolation``: the model's pretrained config), else ImageNet's 224 / 0.875. Values
        set explicitly stay; resolving twice changes nothing."""
        if model_input and "tokenizer" in model_input:  # a text model: its tokenizer reads the data
            return replace(self, text=replace(self.text, tokenizer=self.text.tokenizer or model_input["tokenizer"]))
        key = self.data.strip().lower().replace("_", "-").replace("fashionmnist", "fashion-mnist")
        base = BUILTIN_INPUT.get(key, model_input or IMAGENET_INPUT)
        image = self.image
        return replace(
            self,
            image=replace(
                image,
                size=image.size or int(base["size"]),
                crop_pct=image.crop_pct or float(base.get("crop_pct", 1.0)),
                interpolation=image.interpolation or base.get("interpolation", "bilinear"),
            ),
        )

    def describe_input(self, input_config: dict) -> str:
        """What the model is fed, for the start-up line: ``input_config`` of the loaded splits."""
        if "max_length" in input_config:
            return f"texts of at most {input_config['max_length']} tokens ({input_config.get('tokenizer')}'s tokenizer)"
        return f"{self.image.size} px (resize {self.resize_size}, centre crop; {self.image.interpolation})"

    @property
    def resize_size(self) -> int:
        """Images are resized to this size before the centre crop to ``image.size``."""
        image = self.resolved().image
        size, crop = image.size or 0, image.crop_pct or 1.0  # resolved: both set
        return max(size, round(size / crop))


def dataset_label(spec: str | None) -> str:
    """The short name of a ``--data`` value: ``digits``, a folder's name, a paper dataset's NAME."""
    if not spec:
        return ""
    spec = str(spec).strip()
    if ":" in spec and not Path(spec).exists():  # a paper dataset, NAME:ROOT
        return spec.split(":", 1)[0]
    return Path(spec).name or spec
