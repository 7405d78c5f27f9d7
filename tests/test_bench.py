"""The benchmark: the plain reference and layerswarm exact agree; the JSON has the promised shape."""

from __future__ import annotations

import json

from layerswarm.bench import BenchPreset, format_table, run_bench
from layerswarm.cli import main
from layerswarm.models.bundle import ModelConfig
from layerswarm.speed import SpeedConfig

RUN_KEYS = {
    "wall_seconds",
    "evaluations",
    "epochs_trained",
    "images_per_second",
    "peak_memory_mb",
    "best_fitness",
    "best_mask",
    "test_accuracy",
}


def test_reference_and_exact_agree_and_json_has_every_field(digits16, tmp_path):
    preset = BenchPreset(
        particles=3,
        generations=3,
        fitness_epochs=2,
        final_epochs=1,
        throughput_epochs=1,
        lr=0.1,
        approximate=SpeedConfig(fidelity="halving", halving_keep=0.34, fitness_train_fraction=0.5),
    )
    path = tmp_path / "bench.json"
    result = run_bench(
        preset=preset,
        seeds=(0, 1),
        model=ModelConfig(name="test_resnet", weights="none"),
        data=digits16,
        json_path=path,
        log=lambda _: None,
    )
    saved = json.loads(path.read_text())
    for name in ("reference", "exact", "approximate"):
        assert RUN_KEYS <= set(saved[name]), name
    assert set(saved["ratios"]) == {"exact", "approximate"}
    assert {"trainer", "bare_loop", "ratio"} <= set(saved["throughput"])

    ref, exact = result["reference"], result["exact"]
    assert len(set(ref["fitnesses"])) > 1  # fitnesses differ between masks: the comparison means something
    assert exact["fitnesses"] == ref["fitnesses"] and exact["masks"] == ref["masks"]  # bit-exact, independent code
    assert result["exact_check"] == {"same_masks": True, "max_fitness_difference": 0.0}
    assert exact["epochs_trained"] <= ref["epochs_trained"]
    assert ref["epochs_trained"] == 3 * 3 * 2 and ref["evaluations"] == 9
    assert set(result["approximate"]["seeds"]) == {"0", "1"} and set(result["exact"]["seeds"]) == {"0"}
    assert "| exact |" in format_table(result)


def test_bench_refuses_bad_seeds(capsys):
    assert main(["bench", "--seeds", "a,b"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_bench_without_the_exact_run(digits16):
    preset = BenchPreset(
        particles=2,
        generations=1,
        fitness_epochs=1,
        final_epochs=1,
        throughput_epochs=1,
        lr=0.1,
        approximate=SpeedConfig(fitness_train_fraction=0.5),
    )
    result = run_bench(
        preset=preset,
        seeds=(3,),
        model=ModelConfig(name="test_resnet", weights="none"),
        data=digits16,
        log=lambda _: None,
        throughput=False,
        exact=False,
        ablation=True,
    )
    assert "exact" not in result
    assert set(result["ratios"]) == {
        "approximate",
        "approximate:halving",
        "approximate:early-stop",
        "approximate:subset",
    }
    assert set(result["ablation_test_gap_points"]) == set(result["ratios"]) - {"approximate"}
    assert result["approximate:subset"]["epochs_trained"] == 2  # its own switches: 2 particles x 1 epoch
    assert "approximate:halving minus reference" in format_table(result)
    assert set(result["reference"]["seeds"]) == {"3"} and "| exact |" not in format_table(result)
