"""Resume: a search stopped by Ctrl-C, then killed with SIGKILL mid-generation, then resumed
ends exactly as the same search run without interruption; so does the final fine-tune."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from layerswarm.executors import LocalExecutor
from layerswarm.fitness.mask_fitness import Evaluation
from layerswarm.io import read_json, read_jsonl
from layerswarm.run import search as search_module
from layerswarm.run.search import (
    CONFIG_FILE,
    EVALUATIONS_FILE,
    STATE_FILE,
    RunConfig,
    run_search,
    search_masks,
)
from layerswarm.searchers import create_searcher

PARTICLES, GENERATIONS = 4, 3
# --init baselines: 4 particles start on 4 of test_efficientnet's 5 baseline masks,
# the fifth is one evaluation before the swarm's first generation
TOTAL = PARTICLES * GENERATIONS + 1
CLI = [
    sys.executable,
    "-m",
    "layerswarm.cli",
    "search",
    "--model",
    "test_efficientnet",
    "--weights",
    "none",
    "--data",
    "digits",
    "--image-size",
    "16",
    "--train-per-class",
    "20",
    "--val-per-class",
    "10",
    "--lr",
    "0.1",
    "--batch-size",
    "16",
    "--searcher",
    "pso",
    "--particles",
    str(PARTICLES),
    "--generations",
    str(GENERATIONS),
    "--fitness-epochs",
    "1",
    "--final-epochs",
    "2",
    "--init",
    "baselines",
    "--final-select",
    "3",
    "--seed",
    "0",
    "--quiet",
]


def _lines(path: Path) -> int:
    return len(read_jsonl(path)) if path.exists() else 0


def _stop_after(args: list[str], out: Path, lines: int, sig: int, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the CLI and send ``sig`` once ``evaluations.jsonl`` has ``lines`` lines."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while _lines(out / EVALUATIONS_FILE) < lines:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the search ended before {lines} evaluations: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def _strip(record: dict) -> dict:
    """Without timings. ``epochs_trained`` stays: the fitness memo is seeded from the finished
    evaluations on resume, so a resumed run trains exactly the masks an uninterrupted one does."""
    return {k: v for k, v in record.items() if k not in ("seconds", "wall_seconds")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An interrupted-then-resumed run and the same run uninterrupted."""
    root = tmp_path_factory.mktemp("resume")
    resumed, straight = root / "resumed", root / "straight"

    # 1. Ctrl-C during generation 1: clean stop, exit 130, says how to resume
    first = _stop_after(CLI + ["--out", str(resumed)], resumed, 2, signal.SIGINT)
    assert first.returncode == 130, first.stderr[-2000:]
    assert f"layerswarm search --resume {resumed}" in first.stderr
    read_json(resumed / STATE_FILE)  # complete JSON: written atomically

    # 2. resume, then SIGKILL in the middle of generation 2
    killed_at = PARTICLES + 2
    second = _stop_after(CLI[:4] + ["--resume", str(resumed), "--quiet"], resumed, killed_at, signal.SIGKILL)
    assert second.returncode == -signal.SIGKILL
    done_before = _lines(resumed / EVALUATIONS_FILE)
    assert done_before < TOTAL, "the kill came too late to test anything"

    # 3. resume to the end (in this process), and the same configuration uninterrupted
    cfg = RunConfig.from_dict(read_json(resumed / CONFIG_FILE))
    after = run_search(cfg, resumed, resume=True, report=False)
    before = run_search(cfg, straight, report=False)
    return {"resumed": resumed, "straight": straight, "after": after, "before": before, "done_before": done_before}


def test_killed_and_resumed_search_equals_the_uninterrupted_one(runs):
    after, before = runs["after"], runs["before"]
    assert after["mask"] == before["mask"] and after["fitness"] == before["fitness"]
    assert after["test_accuracy"] == before["test_accuracy"]
    resumed = [r for r in read_jsonl(runs["resumed"] / EVALUATIONS_FILE) if not r.get("phase")]
    straight = {r["number"]: r for r in read_jsonl(runs["straight"] / EVALUATIONS_FILE) if not r.get("phase")}
    # the final selection (--final-select 3) after the resumes equals the uninterrupted one's
    selected = [
        [_strip(r) for r in read_jsonl(runs[k] / EVALUATIONS_FILE) if r.get("phase")] for k in ("resumed", "straight")
    ]
    assert len(selected[0]) == 3 and selected[0] == selected[1]
    # nothing finished was run twice (the local backend has one evaluation in flight)
    assert sorted(r["number"] for r in resumed) == list(range(TOTAL))
    assert len({r["fitness"] for r in resumed}) > 1, "all fitnesses equal: the comparison would prove nothing"
    for r in resumed:
        assert _strip(r) == _strip(straight[r["number"]])
    final_after = read_json(runs["resumed"] / "final" / "metrics.json")
    final_before = read_json(runs["straight"] / "final" / "metrics.json")
    assert [_strip(e) for e in final_after["epochs"]] == [_strip(e) for e in final_before["epochs"]]
    assert final_after["test_accuracy"] == final_before["test_accuracy"]
    state = read_json(runs["resumed"] / STATE_FILE)
    assert state == read_json(runs["straight"] / STATE_FILE)  # rng, positions, bests: all equal


def test_final_finetune_resumes(runs, monkeypatch):
    out = runs["resumed"]
    cfg = RunConfig.from_dict(read_json(out / CONFIG_FILE))
    finished = read_json(out / "final" / "metrics.json")

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished final fine-tune was run again")

    # finished: resuming reuses final/metrics.json
    with monkeypatch.context() as m:
        m.setattr(search_module, "run_finetune", must_not_run)
        again = run_search(cfg, out, resume=True, report=False)
    assert again["test_accuracy"] == finished["test_accuracy"]

    # killed during the final fine-tune (no metrics.json yet): it runs again, to the same result
    (out / "final" / "metrics.json").unlink()
    redone = run_search(cfg, out, resume=True, report=False)
    metrics = read_json(out / "final" / "metrics.json")
    assert redone["test_accuracy"] == finished["test_accuracy"]
    assert [_strip(e) for e in metrics["epochs"]] == [_strip(e) for e in finished["epochs"]]


WEIGHTS = np.sin(np.arange(1, 9))


class Interruptible:
    """A quick fake fitness; raises KeyboardInterrupt (Ctrl-C) at call number ``stop_at``."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls, self.stop_at = 0, stop_at

    def __call__(self, mask, epochs=None) -> Evaluation:
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return Evaluation(fitness=float(np.dot(mask, WEIGHTS)))


def test_ctrl_c_then_a_torn_line_then_resume(tmp_path):
    options = {"particles": 4, "generations": 3}
    straight = tmp_path / "straight"
    expected = search_masks(create_searcher("pso", 8, options, seed=3), LocalExecutor(Interruptible()), straight)

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        search_masks(create_searcher("pso", 8, options, seed=3), LocalExecutor(Interruptible(stop_at=7)), out)
    assert _lines(out / EVALUATIONS_FILE) == 6  # the evaluation in flight is not recorded
    with open(out / EVALUATIONS_FILE, "a") as fh:  # a kill in the middle of an append
        fh.write('{"number": 6, "generation": 1, "par')

    searcher = create_searcher("pso", 8, options, seed=3)
    searcher.load_state_dict(read_json(out / STATE_FILE))
    fitness = Interruptible()
    assert search_masks(searcher, LocalExecutor(fitness), out) == expected
    assert fitness.calls == 12 - 6  # only the unfinished evaluations ran
    records = read_jsonl(out / EVALUATIONS_FILE)
    assert [_strip(r) for r in records] == [_strip(r) for r in read_jsonl(straight / EVALUATIONS_FILE)]
    assert len((out / EVALUATIONS_FILE).read_text().splitlines()) == 12  # the torn line is gone


def _drop_new_keys(config: dict) -> dict:
    """A config as an older layerswarm wrote it: without the settings added since."""
    old = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for part in ("fitness", "final", "train"):
        if part in old:
            old[part].pop("val_every", None)
            old[part].pop("compile", None)
    if "speed" in old:
        old["speed"].pop("val_curve", None)
    return old


def test_runs_saved_before_new_settings_still_resume_compare_and_race(tmp_path):
    """Settings added later take their defaults when an older run, comparison or fitness table
    is read back; a real difference is still refused."""
    import json

    from layerswarm.data import DataConfig
    from layerswarm.errors import LayerswarmError
    from layerswarm.io import atomic_write_json
    from layerswarm.race import _fitness_part, _table_header
    from layerswarm.run.compare import CompareConfig, _normalised, plan_runs
    from layerswarm.run.search import CONFIG_FILE, RunConfig, _check_resume

    cfg = RunConfig()
    atomic_write_json(tmp_path / CONFIG_FILE, _drop_new_keys(cfg.to_dict()))
    _check_resume(tmp_path, cfg)
    with pytest.raises(LayerswarmError, match="different configuration"):
        _check_resume(tmp_path, cfg.replace(seed=1))

    header = _table_header(cfg, ["a", "b"])
    old_header = json.loads(json.dumps(header))
    old_header["config"] = _drop_new_keys(old_header["config"])
    assert _fitness_part(old_header) == _fitness_part(header)

    compare = CompareConfig(data=[DataConfig(data="digits")], strategies=["linear", "full"])
    for spec in plan_runs(compare, tmp_path / "cmp")[:2]:
        run_cfg = spec.config(compare)
        old = _drop_new_keys(run_cfg)
        old["options"] = {}  # linear had no options before linear.unit
        assert _normalised(old) == run_cfg
