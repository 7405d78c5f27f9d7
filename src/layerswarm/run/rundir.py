"""Run folders: is one there, replacing it (``--overwrite``), what ``config.json`` records
beyond the settings (command line, package versions, device and CPU kernels, resumes), and the checks every
run makes before it writes anything."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from ..config_utils import flatten
from ..errors import LayerswarmError

CONFIG_FILE = "config.json"
# Everything layerswarm writes into a run folder (search, finetune, report, export): what
# --overwrite removes. Other files the user put there stay.
RUN_OUTPUTS = (
    CONFIG_FILE,
    "evaluations.jsonl",
    "search_state.json",
    "best_mask.json",
    "final",
    "report.html",
    "figures",
    "tensorboard",
    "mask_export.json",
    "units.json",
)
# Keys config.json holds besides the settings: read back, they are never settings.
META_KEYS = ("command", "versions", "device", "cpu_kernels", "resumed", "kind")
PACKAGES = ("layerswarm", "torch", "torchvision", "timm", "numpy", "safetensors", "ray", "optuna")


def holds_run(out: str | Path) -> bool:
    """True when ``out`` holds a run's files (config.json or a final model)."""
    out = Path(out)
    return (out / CONFIG_FILE).exists() or (out / "final").exists()


def check_out_dir(out: str | Path, overwrite: bool, what: str = "search") -> None:
    """Refuse an ``--out`` that is a file, or that holds a run unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LayerswarmError(f"--out '{out}' is a file: pass a folder")
    if holds_run(out) and not overwrite:
        resume = f"--resume {out} to continue it, " if what == "search" else ""
        raise LayerswarmError(f"'{out}' already holds a run: pass {resume}--overwrite to replace it, or another --out")


def clear_run(out: str | Path) -> None:
    """Remove a previous run's outputs from ``out`` (``--overwrite``), once the new run starts."""
    out = Path(out)
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    for tmp in out.glob(".*.tmp"):  # an atomic write cut short
        tmp.unlink(missing_ok=True)


def check_classes(num_classes: int, classes: list[str] | None = None, flag: str = "--data") -> None:
    """A classifier needs two classes at least: one class gives 100% accuracy and means nothing."""
    if num_classes < 2:
        names = f" ({', '.join(map(str, classes))})" if classes else ""
        raise LayerswarmError(
            f"the data has {num_classes} class{'es' if num_classes != 1 else ''}{names}: a classifier needs "
            "at least 2; "
            f"check {flag} (an ImageFolder tree needs one subfolder of images per class)"
        )


def check_epochs(**epochs: int) -> None:
    """``check_epochs(final_epochs=0)`` -> one line naming the flag."""
    for name, value in epochs.items():
        if value is None or value < 1:
            flag = "--" + name.replace("_", "-")
            raise LayerswarmError(f"{name}={value}: a run trains at least 1 epoch; pass {flag} N with N >= 1")


def versions() -> dict[str, str]:
    """Versions of Python and the packages that decide a run's results (read from package
    metadata: nothing is imported)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def describe_device(device: Any) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA H200)``: the device a run actually used."""
    text = str(device)
    if getattr(device, "type", None) == "cuda":
        import torch

        text = f"{text} ({torch.cuda.get_device_name(device)})"
    return text


def cpu_kernels() -> str:
    """The CPU kernels torch dispatches to (``AVX512``, ``AVX2``, ...), and oneDNN's cap when
    ``ONEDNN_MAX_CPU_ISA`` sets one. Runs of one seed are bit-identical only on the same kernels:
    AVX-512 and AVX2 round convolutions differently and a fine-tune's trajectory forks
    (docs/results/index.md, "Reproducing a record")."""
    import torch  # here, not at the top: the checks before a run stay light

    text = torch.backends.cpu.get_cpu_capability()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{text}, oneDNN max {cap}" if cap else text


def now() -> str:
    return _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")


def command_line(argv: list[str] | None = None) -> list[str]:
    """The command line of this process, as the user typed it (``layerswarm search ...``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return ["layerswarm", *args]


def config_record(
    settings: dict, meta: dict | None, device: Any = None, previous: dict | None = None, changes: dict | None = None
) -> dict:
    """What config.json holds: the settings, then the command line, versions and device.

    A resumed run keeps the first command line and adds one ``resumed`` entry per resume
    (its command line and the settings it changed, old and new).
    """
    meta = dict(meta or {})
    record = dict(settings)
    if previous is not None:  # a resume
        for key in META_KEYS:
            if key in previous:
                record[key] = previous[key]
        resume = {
            "at": now(),
            "command": meta.get("command"),
            "changed": {k: {"old": old, "new": new} for k, (old, new) in (changes or {}).items()},
        }
        if device is not None:  # a resume on other kernels continues with other rounding: say so
            resume["cpu_kernels"] = cpu_kernels()
        record["resumed"] = list(previous.get("resumed", [])) + [resume]
    else:
        record["command"] = meta.get("command")
        record["versions"] = meta.get("versions") or versions()
        if device is not None:  # the CPU's share of the work even on a GPU (data, augmentation)
            record["cpu_kernels"] = cpu_kernels()
    if device is not None:
        record["device"] = describe_device(device)
    return record


def settings_only(config: dict) -> dict:
    """config.json without its record keys (command, versions, device, resumed)."""
    return {k: v for k, v in config.items() if k not in META_KEYS}


def differences(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ, with (old, new)."""
    a, b = flatten(old), flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def read_config_file(path: str | Path) -> dict:
    """A configuration file: JSON, or YAML (``.yaml``/``.yml``, or whatever is not JSON)."""
    path = Path(path)
    if not path.is_file():
        raise LayerswarmError(
            f"configuration file '{path}' does not exist: pass a JSON or YAML file, e.g. a run's config.json"
        )
    text = path.read_text(encoding="utf-8")
    import json

    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            raise ValueError("yaml")
        data = json.loads(text)
    except ValueError:
        try:
            import yaml
        except ImportError as err:
            raise LayerswarmError(
                f"'{path}' is not JSON and PyYAML is missing: pip install pyyaml, or pass JSON"
            ) from err
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            line = f" at line {where.line + 1}" if where is not None else ""
            raise LayerswarmError(
                f"configuration file '{path}' is neither JSON nor valid YAML{line}: fix its syntax"
            ) from err
    if not isinstance(data, dict):
        raise LayerswarmError(f"configuration file '{path}' holds no mapping: write keys such as model:, data:, final:")
    return data
