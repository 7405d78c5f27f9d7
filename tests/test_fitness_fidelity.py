"""benchmarks/fitness_fidelity.py --table: the scores it ranks stored learning curves by."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def curve(plateau: float, rate: float, epochs: int = 30) -> list[float]:
    return [plateau - (plateau - 0.1) * math.exp(-rate * t) for t in range(1, epochs + 1)]


def write_run(folder: Path, name: str, val: list[float], mask: list[int], rates: list[float] | None = None) -> None:
    """A stored 30-epoch run as the study writes it, tested at its last validation value."""
    record = {
        "mask_name": name,
        "mask": mask,
        "epochs": 30,
        "schedule": "step",
        "seed": 0,
        "data": "digits",
        "val_by_epoch": val,
        "test_accuracy": val[-1],
        "test_images": 400,
        "seconds": 1.0,
    }
    if rates:
        record["lr_multipliers"] = rates
    (folder / f"{name}__step30.json").write_text(json.dumps(record))


def table(folder: Path) -> str:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fitness_fidelity.py"), "--table", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_curve_fit_ranks_slow_climbers_where_they_end(tmp_path):
    # Three masks whose curves cross: the one that saturates fastest ends lowest, as the masks
    # that freeze most do (docs/concepts/fitness.md). The accuracy after 5 epochs ranks them
    # backwards; the exponential fit to those 5 epochs, read at 30, ranks them as they end.
    for name, plateau, rate in [("fast", 0.80, 1.0), ("middle", 0.90, 0.3), ("slow", 0.97, 0.12)]:
        write_run(tmp_path, name, curve(plateau, rate), [1])
    out = table(tmp_path)
    rows = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:4]
        for line in out.splitlines()
        if line.startswith("| ") and " | " in line
    }
    assert rows["truncated, 5 epochs (val)"][0] == "-1.00"
    assert rows["exponential fit to 5 epochs, read at epoch 30"] == [
        "1.00",
        f"{100 * curve(0.97, 0.12)[-1]:.2f}",
        "0.00",
    ]


def _load_study():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fitness_fidelity", ROOT / "benchmarks" / "fitness_fidelity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plans_are_ladder_levels_and_leave_the_masks_as_they_were():
    study = _load_study()
    plans = study.plans(17, 12, seed=0)
    assert len(plans) == 12 and len({tuple(p) for p in plans.values()}) == 12
    for rates in plans.values():
        assert len(rates) == 17 and any(rates) and set(rates) <= set(study.DEFAULT_LADDER)
    assert any(len(set(rates) - {0.0}) > 1 for rates in plans.values())  # levels, not only bits
    assert study.plans(17, 12, seed=0) == plans and study.plans(17, 12, seed=1) != plans
    # the masks are still the ones the stored digits study ran, so it resumes with only the plans to run
    records = [json.loads(f.read_text()) for f in (ROOT / "benchmarks/results/fidelity/digits").glob("*__step30.json")]
    stored = {r["mask_name"]: r["mask"] for r in records if "lr_multipliers" not in r}
    assert stored and study.masks(17, 18, seed=0) == stored
    stored_plans = {r["mask_name"]: r["lr_multipliers"] for r in records if "lr_multipliers" in r}
    assert stored_plans == plans  # and the plans are the ones its records ran


def test_the_table_ranks_masks_and_plans_each_on_their_own(tmp_path):
    # Masks whose 5-epoch validation orders them as they end, plans whose 5-epoch validation orders
    # them backwards (the fast-rising high-rate plans end lowest): the within-kind rows say so.
    runs = [("m1", 0.80, 0.30, None), ("m2", 0.90, 0.30, None), ("m3", 0.97, 0.30, None)]
    runs += [("p1", 0.80, 1.0, [3.0, 0.3]), ("p2", 0.90, 0.3, [1.0, 0.3]), ("p3", 0.97, 0.12, [0.3, 1.0])]
    for name, plateau, rate, rates in runs:
        write_run(tmp_path, name, curve(plateau, rate), [1, 1], rates)
    out = table(tmp_path)
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in out.splitlines() if " | " in line}
    assert rows["truncated, 5 epochs (val), masks only"][0] == "1.00"
    assert rows["truncated, 5 epochs (val), plans only"][0] == "-1.00"
    assert rows["truncated, 5 epochs (val), plans only"][-1].rstrip(" |") == "3"
    assert any(key.startswith("p1 `3 0.3`") for key in rows)  # a plan is listed by its levels
