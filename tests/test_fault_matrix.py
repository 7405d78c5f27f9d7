"""The fault matrix (docs/guides/faults.md), each fault through the command line: a deterministic
evaluation error, a second process on a running folder, SIGTERM in the search and in the final
fine-tune, a full disk, a NaN loss in the search and in the final fine-tune. Each shows one line
and its exit code; where the run is resumable, ``--resume`` ends exactly as an uninterrupted run.

Faults are injected with ``LAYERSWARM_FAILPOINTS`` (layerswarm.run.failpoints) in a child
process; the uninterrupted run and the resumes run in this process (no second start-up)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from layerswarm.cli import main
from layerswarm.io import read_json, read_jsonl
from layerswarm.run.failpoints import ENV
from layerswarm.run.lock import LOCK_FILE

PARTICLES, GENERATIONS = 3, 2
ARGS = [
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
    "--max-test",
    "40",
    "--batch-size",
    "16",
    "--lr",
    "0.05",
    "--searcher",
    "pso",
    "--particles",
    str(PARTICLES),
    "--generations",
    str(GENERATIONS),
    "--fitness-epochs",
    "1",
    "--final-epochs",
    "4",
    "--baselines",
    "none",
    "--quiet",
]
STEPS_PER_EPOCH = 5  # 80 training images in batches of 16
CLI = [sys.executable, "-m", "layerswarm.cli", "search"]


def _start(args: list[str], failpoints: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())  # CPU results depend on it: as in this process
    if failpoints:
        env[ENV] = failpoints
    return subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _run(args: list[str], failpoints: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = _start(args, failpoints)
    stdout, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the run ended (or hung) before the moment to test: " + proc.communicate()[1][-2000:])
        time.sleep(0.01)


def _last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    return stderr.strip().splitlines()[-1]


def _strip(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("seconds", "wall_seconds")}


def _resume_equals_straight(out: Path, straight: Path) -> None:
    """``--resume out`` (in this process) ends with the uninterrupted run's files, bit for bit."""
    assert main(["search", "--resume", str(out), "--quiet"]) == 0
    a, b = (read_jsonl(d / "evaluations.jsonl") for d in (out, straight))
    assert [_strip(r) for r in a] == [_strip(r) for r in b]  # one record per evaluation, all equal
    assert read_json(out / "search_state.json") == read_json(straight / "search_state.json")
    ma, mb = (read_json(d / "final" / "metrics.json") for d in (out, straight))
    assert [_strip(e) for e in ma["epochs"]] == [_strip(e) for e in mb["epochs"]]
    assert ma["test_accuracy"] == mb["test_accuracy"] and ma["mask"] == mb["mask"]
    wa, wb = (load_file(str(d / "final" / "model.safetensors")) for d in (out, straight))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The run no fault touched."""
    out = tmp_path_factory.mktemp("faults") / "straight"
    assert main(["search", *ARGS, "--out", str(out)]) == 0
    records = read_jsonl(out / "evaluations.jsonl")
    assert len(records) == PARTICLES * GENERATIONS and all(r["status"] == "ok" for r in records)
    assert len({r["fitness"] for r in records}) > 1, "all fitnesses equal: comparisons would prove nothing"
    return out


def test_a_deterministic_evaluation_error_stops_the_first_batch_and_resumes(tmp_path, straight):
    out = tmp_path / "run"
    proc = _run([*ARGS, "--out", str(out)], failpoints="evaluate=raise:TypeError")
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = _last_line(proc.stderr)
    assert line.startswith(
        f"layerswarm: error: every evaluation of the first batch failed ({PARTICLES} of "
        f"{PARTICLES}); the first, evaluation 0 (generation 0, particle 0) failed with TypeError: "
        f"injected by {ENV} evaluate=raise:TypeError: fix its cause"
    ), line
    assert line.endswith(f"then continue with: layerswarm search --resume {out}")
    records = read_jsonl(out / "evaluations.jsonl")
    assert [r["status"] for r in records] == ["failed"] * PARTICLES  # the first batch, and no more
    assert not (out / "final").exists()  # no mask that no evaluation scored was fine-tuned
    # after the fix (no failpoint), --resume evaluates the failed batch again and ends as the
    # uninterrupted run
    _resume_equals_straight(out, straight)


def test_a_second_process_on_a_running_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    first = _start([*ARGS, "--out", str(out)])
    _wait_for(first, lambda: (out / "evaluations.jsonl").is_file())
    first.send_signal(signal.SIGSTOP)  # it holds the folder, however long the second takes to start
    try:
        began = time.monotonic()
        second = _run(["--resume", str(out), "--quiet"])
        took = time.monotonic() - began
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2
    line = _last_line(second.stderr)
    assert line == (
        f"layerswarm: error: '{out}' is in use by another layerswarm run (process {first.pid}): "
        f"wait for it to end, or stop it, then continue with: layerswarm search --resume {out}"
    )
    assert took < 5, took  # refused at start-up, before loading data or building a model
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-3000:]  # the first finished normally
    numbers = [r["number"] for r in read_jsonl(out / "evaluations.jsonl")]
    assert numbers == list(range(PARTICLES * GENERATIONS))  # no line from the second process
    assert read_json(out / "config.json").get("resumed") is None
    assert (out / LOCK_FILE).read_text().strip() == str(first.pid)
    # the lock went with the process: the finished run takes a resume at once
    assert main(["search", "--resume", str(out), "--quiet"]) == 0


def test_sigterm_mid_search_exits_143_and_resumes_to_the_same_result(tmp_path, straight):
    out = tmp_path / "run"
    proc = _start([*ARGS, "--out", str(out)])
    _wait_for(proc, lambda: len(read_jsonl(out / "evaluations.jsonl")) >= 2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    assert _last_line(stderr) == (
        f"layerswarm: terminated (SIGTERM): progress is saved in {out}; continue with: layerswarm search --resume {out}"
    )
    done = len(read_jsonl(out / "evaluations.jsonl"))
    assert 2 <= done < PARTICLES * GENERATIONS and not list(out.glob(".*.tmp"))
    read_json(out / "search_state.json")  # whole
    _resume_equals_straight(out, straight)


def test_sigterm_mid_final_finetune_exits_143_and_resumes_to_the_same_result(tmp_path, straight):
    out = tmp_path / "run"
    checkpoint = out / "final" / "checkpoint.pt"
    proc = _start([*ARGS, "--out", str(out)])
    _wait_for(proc, checkpoint.exists)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    if (out / "final" / "metrics.json").exists():
        pytest.skip("the final fine-tune finished before the signal")
    assert proc.returncode == 143, stderr[-3000:]
    assert _last_line(stderr).endswith(f"continue with: layerswarm search --resume {out}")
    epochs = len(torch.load(checkpoint, map_location="cpu", weights_only=True)["state"]["history"])
    assert 1 <= epochs < 4
    _resume_equals_straight(out, straight)


def test_a_full_disk_on_the_third_write_keeps_every_earlier_file_and_resumes(tmp_path, straight):
    out = tmp_path / "run"
    proc = _run([*ARGS, "--out", str(out)], failpoints="write=raise:ENOSPC@3")
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = _last_line(proc.stderr)
    # config.json, search_state.json, then the first evaluation's line
    failed = out / "evaluations.jsonl"
    assert line.startswith(f"layerswarm: error: cannot write '{failed}': No space left on device"), line
    assert f"(ENOSPC): free space on the disk of '{out}'" in line
    assert line.endswith(f"then continue with: layerswarm search --resume {out}")
    assert read_json(out / "config.json")["search"]["method"]["name"] == "pso"  # the earlier files, whole
    assert read_json(out / "search_state.json")["generation"] == 0
    assert not failed.exists() and not list(out.glob(".*.tmp"))
    _resume_equals_straight(out, straight)


def test_a_nan_loss_marks_evaluations_diverged_and_the_search_goes_on(tmp_path):
    out = tmp_path / "run"
    proc = _run([*ARGS, "--out", str(out)], failpoints="loss=nan@3")
    records = read_jsonl(out / "evaluations.jsonl")
    # every batch was evaluated (a diverged fine-tune is a result, not a failure that stops it)
    assert [r["number"] for r in records] == list(range(PARTICLES * GENERATIONS))
    for r in records:
        assert r["status"] == "diverged" and r["fitness"] is None
        assert r["error"] == "NonFiniteLossError: non-finite loss nan at step 3 (epoch 1)"
    # no evaluation gave a fitness: nothing is fine-tuned, and the line says what to change
    assert proc.returncode == 1
    assert _last_line(proc.stderr) == (
        f"layerswarm: error: every fitness evaluation ({len(records)}) diverged, "
        "a non-finite loss, with lr 0.05: "
        "nothing to fine-tune; start a new run with a lower --lr, e.g. 0.005"
    )
    assert not (out / "final").exists()
    assert main(["report", str(out)]) == 0  # the report shows them
    page = (out / "report.html").read_text()
    assert "Evaluations without a fitness" in page and page.count("<td>diverged</td>") == len(records)


def test_a_nan_loss_in_the_final_finetune_stops_with_the_learning_rate(tmp_path):
    out = tmp_path / "run"
    step = STEPS_PER_EPOCH + 3  # beyond every 1-epoch fitness fine-tune, in the final's second epoch
    proc = _run([*ARGS, "--out", str(out)], failpoints=f"loss=nan@{step}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert all(r["status"] == "ok" for r in read_jsonl(out / "evaluations.jsonl"))
    assert _last_line(proc.stderr) == (
        f"layerswarm: error: the mask fine-tune ({out / 'final'}) diverged, non-finite loss nan "
        f"at step {step} "
        "(epoch 2), with lr 0.05: pass a lower --lr, e.g. 0.005"
    )
    assert not (out / "final" / "model.safetensors").exists() and not (out / "final" / "metrics.json").exists()
    history = torch.load(out / "final" / "checkpoint.pt", map_location="cpu", weights_only=True)["state"]["history"]
    assert len(history) == 1 and json.dumps(history)  # the last whole epoch before it, intact
