"""benchmarks/search_table.py: the seed table from run folders, on a real tiny search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from layerswarm.cli import main
from layerswarm.run.search import run_search
from test_search_run import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def test_table_of_searches_and_their_baselines(tmp_path, digits16):
    cfg = tiny_config()
    cfg = cfg.replace(
        search=cfg.search.replace(outcome=cfg.search.outcome.replace(baselines="linear,last-k:1", answer="validation"))
    )
    for seed in (1, 2):
        run_search(cfg.replace(seed=seed), tmp_path / f"tiny-default-s{seed}", data=digits16, report=False)
    # a searched mask fine-tuned again by `layerswarm finetune` (here with its frozen BatchNorm re-estimated)
    assert (
        main(
            [
                "finetune",
                "--model",
                "test_efficientnet",
                "--weights",
                "none",
                "--data",
                "digits",
                "--image-size",
                "16",
                "--train-per-class",
                "8",
                "--val-per-class",
                "4",
                "--epochs",
                "1",
                "--seed",
                "1",
                "--quiet",
                "--mask",
                str(tmp_path / "tiny-default-s1" / "best_mask.json"),
                "--bn-recalibrate",
                "--out",
                str(tmp_path / "tiny-recal-s1"),
            ]
        )
        == 0
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "search_table.py"), str(tmp_path / "tiny-*")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = out.strip().splitlines()
    assert lines[0].startswith("| strategy | seed 1 | seed 2 | mean ± std | verdicts | paired to ")
    assert lines[0].endswith(" | wall / final |")
    rows = {line.split("|")[1].strip(): line for line in lines[2:]}
    # the paired column: each row's per-seed difference to the best baseline (highest mean), averaged
    best = lines[0].split("paired to ")[1].split(" |")[0]
    summaries = [
        json.loads((tmp_path / f"tiny-default-s{seed}" / "baselines" / "summary.json").read_text())["accuracies"]
        for seed in (1, 2)
    ]
    means = {name: sum(s[name]["test_accuracy"] for s in summaries) / 2 for name in ("linear", "last-1")}
    assert best == max(means, key=lambda name: means[name])
    diffs = [100 * (s["search"]["test_accuracy"] - s[best]["test_accuracy"]) for s in summaries]
    assert [c.strip() for c in rows["tiny-default"].split("|")][-3].startswith(f"{sum(diffs) / 2:+.2f} ± ")
    assert set(rows) == {"tiny-default", "tiny-default answer", "tiny-recal", "baseline linear", "baseline last-1"}
    again = json.loads((tmp_path / "tiny-recal-s1" / "final" / "metrics.json").read_text())
    cells = [cell.strip() for cell in rows["tiny-recal"].split("|")[1:-1]]
    assert cells[1] == f"{100 * again['test_accuracy']:.2f}" and cells[2] == ""  # seed 1 only
    assert cells[-1] == "" and cells[-3] == ""  # a fine-tune has no verdict and no search cost to report
    for seed in (1, 2):
        summary = json.loads((tmp_path / f"tiny-default-s{seed}" / "baselines" / "summary.json").read_text())
        assert f"{100 * summary['accuracies']['search']['test_accuracy']:.2f}" in rows["tiny-default"]
        assert f"{100 * summary['accuracies']['linear']['test_accuracy']:.2f}" in rows["baseline linear"]
    assert rows["tiny-default"].rstrip(" |").endswith("x")  # the wall time as a multiple of one final fine-tune

    # --ceiling: per seed, the best test accuracy among the answered run's candidates, never below its answer
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "search_table.py"), "--ceiling", str(tmp_path / "tiny-default-s*")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]] for line in out.splitlines()[2:]}
    for i, seed in enumerate((1, 2)):
        summary = json.loads((tmp_path / f"tiny-default-s{seed}" / "baselines" / "summary.json").read_text())
        best = max(acc["test_accuracy"] for acc in summary["accuracies"].values())
        assert rows["tiny-default ceiling"][i] == f"{100 * best:.2f}"
        assert float(rows["tiny-default ceiling"][i]) >= float(rows["tiny-default answer"][i])
