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


def test_the_curve_fit_ranks_slow_climbers_where_they_end(tmp_path):
    # Three masks whose curves cross: the one that saturates fastest ends lowest, as the masks
    # that freeze most do (docs/concepts/fitness.md). The accuracy after 5 epochs ranks them
    # backwards; the exponential fit to those 5 epochs, read at 30, ranks them as they end.
    for name, plateau, rate in [("fast", 0.80, 1.0), ("middle", 0.90, 0.3), ("slow", 0.97, 0.12)]:
        v = curve(plateau, rate)
        (tmp_path / f"{name}__step30.json").write_text(
            json.dumps(
                {
                    "mask_name": name,
                    "mask": [1],
                    "epochs": 30,
                    "schedule": "step",
                    "seed": 0,
                    "data": "digits",
                    "val_by_epoch": v,
                    "test_accuracy": v[-1],
                    "test_images": 400,
                    "seconds": 1.0,
                }
            )
        )
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fitness_fidelity.py"), "--table", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
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
