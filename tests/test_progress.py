"""Progress bars and log lines, and TensorBoard logs, of a search."""

from __future__ import annotations

import io
import math

import pytest
from click.testing import CliRunner

from layerswarm.cli import app
from layerswarm.cli.progress import Listeners, SearchProgress, format_evaluation, search_budget
from layerswarm.cli.tensorboard import TensorBoardLogger, flat_hparams
from layerswarm.run.search_config import SearcherConfig


def _records(generations: int = 2, particles: int = 3) -> list[dict]:
    fitness = [0.2, 0.5, 0.4, 0.3, None, 0.7]  # one failed evaluation in generation 2
    out = []
    for g in range(generations):
        for p in range(particles):
            n = g * particles + p
            out.append(
                {
                    "number": n,
                    "generation": g,
                    "particle": p,
                    "mask": [1, 0, n % 2],
                    "fitness": fitness[n],
                    "seconds": 1.5,
                    "val_curve": [] if fitness[n] is None else [fitness[n]],
                    "error": "RuntimeError: boom" if fitness[n] is None else None,
                }
            )
    return out


def _epochs(n: int = 2) -> list[dict]:
    return [
        {"epoch": e + 1, "lr": 0.01, "train_loss": 2.0 - e, "train_accuracy": 0.1 * e, "val_accuracy": 0.2 + 0.1 * e}
        for e in range(n)
    ]


def test_log_lines_without_bars_when_not_a_terminal():
    out = io.StringIO()
    progress = SearchProgress(2, 3, fitness_epochs=2, final_epochs=3, file=out)
    assert not progress.bars  # a StringIO is not a terminal
    for record in _records():
        progress.on_evaluation(record)
    for record in _epochs(3):
        progress.on_final_epoch(record)
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 6 + 3 and "\r" not in out.getvalue()
    assert lines[0].startswith("gen  1/2  particle  1/3  fitness 0.2000  best 0.2000  mask 100 (1/3)")
    assert "best 0.5000" in lines[2]  # the best so far, not the evaluation's own fitness
    assert "particle  2/3  FAILED (RuntimeError: boom)" in lines[4]
    assert lines[6].startswith("final epoch   1/3  loss 2.0000  val 0.2000")


def test_quiet_prints_nothing():
    out = io.StringIO()
    progress = SearchProgress(2, 3, 2, 3, quiet=True, file=out, bars=None)
    for record in _records():
        progress.on_evaluation(record)
    progress.close()
    assert out.getvalue() == ""


def test_bars_count_search_generations_particles_and_epochs():
    out = io.StringIO()
    progress = SearchProgress(2, 3, fitness_epochs=2, final_epochs=3, file=out, bars=True)
    records = _records()
    for record in records[:4]:
        for e in _epochs(2):
            progress.on_fitness_epoch(e)
        assert progress.epoch.n == 2 and progress.epoch.total == 2
        progress.on_evaluation(record)
        assert progress.epoch.n == 0  # reset for the next evaluation
    assert (progress.search.n, progress.search.total) == (4, 6)
    assert (progress.generation.n, progress.generation.total) == (1, 2)
    assert (progress.particle.n, progress.particle.total) == (1, 3)
    assert "search" in out.getvalue() and "4/6" in out.getvalue()  # drawn, with counts
    progress.close()


def test_resumed_bars_start_where_the_run_stopped():
    progress = SearchProgress(12, 10, 5, 110, done=23, file=io.StringIO(), bars=True)
    assert (progress.search.n, progress.generation.n, progress.particle.n) == (23, 2, 3)
    progress.close()


def test_search_budget_of_each_searcher():
    assert search_budget("pso", {"particles": 10, "generations": 12}) == (12, 10)
    assert search_budget("random", {"trials": 25, "batch_size": 10}) == (3, 10)
    assert search_budget("ga", {"trials": 10, "population": 5}) == (None, 5)  # its generations: as many as it needs
    assert search_budget("other", {}) == (None, None)
    assert format_evaluation({"generation": 0, "particle": 0, "mask": [1] * 100, "fitness": 0.5}, 0.5).count("1") > 64


def _scalars(path, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_logs_every_evaluation_generation_and_the_final_run(tmp_path):
    logger = TensorBoardLogger(tmp_path, {"model": {"name": "m"}, "search": {"options": {"particles": 3}}, "seed": 0})
    listeners = Listeners([logger, None])
    for record in _records():
        for e in _epochs(2):
            listeners.on_fitness_epoch(e)
        listeners.on_evaluation(record)
    for e in _epochs(3):
        listeners.on_final_epoch({**e, "test_accuracy": 0.5 + 0.1 * e["epoch"]})
    listeners.close({"fitness": 0.7, "test_accuracy": 0.8})

    best = _scalars(tmp_path / "search", "search/best_fitness")
    mean = _scalars(tmp_path / "search", "search/mean_fitness")
    assert [s for s, _ in best] == [1, 2] and [v for _, v in best] == pytest.approx([0.5, 0.7])
    assert [v for _, v in mean] == pytest.approx([(0.2 + 0.5 + 0.4) / 3, (0.3 + 0.7) / 2])  # failed left out
    assert [s for s, _ in _scalars(tmp_path / "search", "search/fitness")] == [0, 1, 2, 3, 5]
    evals = sorted(p.name for p in (tmp_path / "evals").iterdir())
    assert evals[0] == "eval-0000-g1-p1" and len(evals) == 6
    loss = _scalars(tmp_path / "evals" / "eval-0004-g2-p2", "fitness/train_loss")
    assert loss == [(1, pytest.approx(2.0)), (2, pytest.approx(1.0))]
    test = _scalars(tmp_path / "final", "final/test_accuracy")
    assert [s for s, _ in test] == [1, 2, 3] and test[-1][1] == pytest.approx(0.8)
    assert any(p.name.startswith("events") for p in (tmp_path / "search").iterdir())


def test_flat_hparams_are_tensorboard_values():
    flat = flat_hparams({"a": {"b": 1, "c": None, "d": [1, 2]}, "e": True, "f": math.pi})
    assert flat == {"a.b": 1, "a.c": "null", "a.d": "[1, 2]", "e": True, "f": math.pi}


def test_cli_search_logs_lines_tensorboard_and_report(tmp_path):
    """The real command: log lines (no bars: the runner is not a terminal), TensorBoard, report."""
    out = tmp_path / "run"
    args = [
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
        "6",
        "--val-per-class",
        "3",
        "--max-test",
        "30",
        "--batch-size",
        "16",
        "--searcher",
        "pso",
        "--particles",
        "2",
        "--generations",
        "1",
        "--fitness-epochs",
        "1",
        "--final-epochs",
        "1",
        "--init",
        "baselines",
        "--out",
        str(out),
        "--tensorboard",
    ]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert err.count("gen  1/1  particle") == 2 and "final epoch   1/1" in err and "\r" not in err
    assert "final test accuracy" in result.stdout
    assert (out / "report.html").is_file()
    assert len(_scalars(out / "tensorboard" / "final", "final/val_accuracy")) == 1
    # --init baselines: 2 particles hold 2 of the 5 baseline masks, 3 are asked before the swarm
    assert [line.split()[1] for line in err.splitlines() if line.startswith("init ")] == ["last-1", "last-2", "last-4"]
    assert len(list((out / "tensorboard" / "evals").iterdir())) == 2 + 3

    quiet = CliRunner().invoke(app, [*args[:-3], "--out", str(tmp_path / "q"), "--quiet"], catch_exceptions=False)
    assert quiet.exit_code == 0 and "particle" not in quiet.stderr


def test_a_ga_search_bar_counts_its_budget_and_the_log_its_population():
    from layerswarm.run.config import RunConfig, SearchConfig

    cfg = RunConfig(search=SearchConfig(method=SearcherConfig(name="ga", options={"trials": 10, "population": 5})))
    out = io.StringIO()
    progress = SearchProgress.for_config(cfg, file=out, bars=True)
    assert (progress.search.total, progress.particle.total, progress.generation.total) == (10, 5, None)
    progress.close()
    line = format_evaluation(
        {"generation": 2, "particle": 1, "mask": [0, 1], "fitness": 0.5, "seconds": 1.0},
        0.5,
        *search_budget("ga", cfg.search.method.options),
    )
    assert line.startswith("gen  3  particle  2/5  fitness")  # no made-up count of generations
