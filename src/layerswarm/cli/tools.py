"""The small commands: layers, models, strategies, report, export, predict."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..errors import LayerswarmError
from .common import app, model_options


@app.command()
@model_options(without=("weights",))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def layers(model_name: str, model_granularity: str, model_pooling: str, as_json: bool) -> None:
    """List the layer units of a model: one mask bit each."""
    name, granularity, pooling = model_name, model_granularity, model_pooling
    from ..models import create_model
    from ..units import split_units

    # Units depend on the architecture only: skip downloading weights.
    weights = "pretrained" if name.startswith("efficientnet_lite") else "none"
    model, info = create_model(name, num_classes=2, weights=weights, pooling=pooling)
    units = split_units(model, info.head, granularity)
    if as_json:
        click.echo(
            json.dumps(
                {"model": name, "granularity": granularity, "head": info.head, "units": [u.to_dict() for u in units]},
                indent=2,
            )
        )
        return
    click.echo(f"{name}: {len(units)} units ({granularity}); head {', '.join(info.head)} always trained")
    for u in units:
        click.echo(f"{u.index:>4}  {u.name:<40} {u.num_params:>12,d} params  {len(u.params)} tensors")


@app.command()
@click.argument("pattern", required=False, default="*")
def models(pattern: str) -> None:
    """List model names (timm, torchvision as tv:NAME, offline EfficientNet-Lite, offline text
    encoders; any local Hugging Face folder also works as hf:PATH)."""
    import fnmatch

    import timm
    import torchvision

    from ..models.config import TEXT_MODELS
    from ..models.efficientnet_lite import LITE_MODELS

    offline = [*LITE_MODELS, *TEXT_MODELS]
    names = (
        [n for n in offline if fnmatch.fnmatch(n, pattern)]
        + timm.list_models(pattern)
        + [f"tv:{n}" for n in torchvision.models.list_models() if fnmatch.fnmatch(n, pattern.removeprefix("tv:"))]
    )
    names = list(dict.fromkeys(names))  # the offline EfficientNet-Lite names are timm names too
    if not names:
        raise LayerswarmError(
            f"no model name matches '{pattern}': use a shell pattern such as 'resnet*' or '*vit*', "
            "or list every name with: layerswarm models"
        )
    for n in names:
        click.echo(n)


@app.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def strategies(as_json: bool) -> None:
    """List the fine-tuning strategies and their options."""
    from ..strategies.describe import describe_strategies, format_strategies

    click.echo(json.dumps(describe_strategies(), indent=2) if as_json else format_strategies())


@app.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--out", "out_file", type=click.Path(dir_okay=False), default=None, help="HTML file (default DIR/report.html)"
)
def report(run_dir: str, out_file: str | None) -> None:
    """Write report.html (figures embedded, also as DIR/figures/*.png) for a search or comparison."""
    from ..report import write_report

    click.echo(f"report: {write_report(run_dir, out_file)}")


@app.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--out", "out_file", type=click.Path(dir_okay=False), default=None, help="JSON file (default DIR/mask_export.json)"
)
def export(run_dir: str, out_file: str | None) -> None:
    """Write the run's mask as parameter-name patterns and a requires_grad map, for your own
    timm, PyTorch or Hugging Face training code (README: "Use a mask elsewhere")."""
    from ..deploy.export import export_mask
    from ..io import read_json

    path = export_mask(run_dir, out_file)
    spec = read_json(path)
    click.echo(
        f"mask {''.join(map(str, spec['mask']))}: {len(spec['frozen_patterns'])} frozen patterns, "
        f"{sum(not v for v in spec['requires_grad'].values())}/{len(spec['requires_grad'])} parameters frozen -> {path}"
    )
    if spec.get("lr_multipliers"):  # a --space lr plan: its units' rates, as optimizer groups
        click.echo(
            "lr multipliers per unit: "
            + " ".join(f"{r:g}" for r in spec["lr_multipliers"])
            + f" ({len(spec['param_groups'])} parameter groups: layerswarm.param_groups)"
        )


@app.command()
@click.argument("run_dir", type=click.Path())
@click.argument("inputs", nargs=-1, metavar="[IMAGES | TEXTS]...")
@click.option(
    "--lines",
    "lines_files",
    multiple=True,
    metavar="FILE",
    help="text model: classify each non-empty line of FILE (UTF-8; - for standard input); repeatable",
)
@click.option(
    "--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="classes to show per image or text"
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def predict(
    run_dir: str, inputs: tuple[str, ...], lines_files: tuple[str, ...], top_k: int, device: str, as_json: bool
) -> None:
    """Classify images or texts with the final model of RUN_DIR (a search or finetune --out folder).

    An image model takes IMAGES: image files, or folders of them; unreadable images are skipped
    with one warning naming them. A text model takes TEXTS (quote each one; put -- before
    the first if it starts with -) and the lines of --lines FILE. Output: per input, its top classes with
    probabilities ('image' or 'text' and
    'top_k' with --json)."""
    from ..deploy.predict import Predictor, format_predictions, read_text_lines

    if not inputs and not lines_files:
        raise LayerswarmError(
            "nothing to classify: pass image files or folders of them, or texts (or --lines FILE) for a text model"
        )
    predictor = Predictor(run_dir, device=device)
    if predictor.is_text:
        texts = list(inputs)
        for i, text in enumerate(texts):
            if not text.strip():
                raise LayerswarmError(f"text {i + 1} is empty: pass non-empty texts")
            if os.path.isfile(text):  # os.path: False, not an error, for a text too long to be a path
                click.echo(
                    f"layerswarm: warning: '{text}' is a file, classified as the text '{text}'; to classify "
                    f"its lines pass --lines {text}",
                    err=True,
                )
        for spec in lines_files:
            texts.extend(read_text_lines(spec))
        results = predictor.predict_texts(texts, top_k=top_k)
    else:
        if lines_files:
            raise LayerswarmError(
                f"--lines reads texts but '{predictor.path}' holds an image model "
                f"({predictor.model_name}): pass image files or folders of them"
            )
        results = _predict_images(predictor, inputs, top_k)
    click.echo(json.dumps([r.to_dict() for r in results], indent=2) if as_json else format_predictions(results))


def _predict_images(predictor, images: tuple[str, ...], top_k: int) -> list:
    """Image files and folders' images, ranked; files that do not decode are skipped with a warning."""
    import torch

    from ..data.imagefolder import list_images

    paths: list[str] = []
    for image in images:
        if os.path.isdir(image):  # os.path: False, not an error, for a text too long to be a path
            found = list_images(Path(image))
            if not found:
                raise LayerswarmError(f"folder '{image}' holds no image files: pass image files or a folder of them")
            paths.extend(map(str, found))
        elif not os.path.exists(image):
            raise LayerswarmError(f"image '{image}' does not exist: pass image files or folders of them")
        else:
            paths.append(image)
    good, batches, skipped = [], [], []
    for p in paths:  # one at a time: a file that does not decode is skipped, not fatal to the batch
        try:
            batches.append(predictor.load_images([p]))
            good.append(p)
        except LayerswarmError:
            skipped.append(p)
    shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
    if not good:
        raise LayerswarmError(
            f"no readable image to classify ({shown} could not be decoded): pass JPEG, PNG or other image files"
        )
    if skipped:
        click.echo(f"layerswarm: warning: skipped {len(skipped)} unreadable image(s): {shown}", err=True)
    return predictor.rank(good, predictor.probabilities(torch.cat(batches)), top_k)
