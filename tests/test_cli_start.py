"""Fast start: --help and --version import neither torch nor ray; Ctrl-C at any moment of a
command ends with one line and exit code 130, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HEAVY = ("torch", "ray", "timm", "torchvision", "numpy", "PIL", "matplotlib", "sklearn")


def test_help_of_every_command_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from layerswarm.cli import app, main\n"
        "for argv in [['--help'], ['--version']] + [[c, '--help'] for c in app.commands]:\n"
        "    assert main(argv) == 0, argv\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def _command() -> list[str]:
    script = Path(sys.executable).parent / "layerswarm"  # the installed entry point, as a user runs it
    return [str(script)] if script.is_file() else [sys.executable, "-m", "layerswarm.cli"]


@pytest.mark.parametrize("after", [0.3, 1.0, 2.5, 5.0])
def test_ctrl_c_at_any_moment_prints_one_line(tmp_path, after):
    """Start-up (imports), data loading, model building or training: wherever Ctrl-C lands."""
    out = tmp_path / "run"
    args = _command() + [
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
        "5",
        "--val-per-class",
        "3",
        "--searcher",
        "pso",
        "--particles",
        "2",
        "--generations",
        "3",
        "--fitness-epochs",
        "2",
        "--final-epochs",
        "2",
        "--quiet",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(after)
    if proc.poll() is not None:
        pytest.skip("the run ended before the interrupt")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0 and "results in" in stdout:
        pytest.skip("the run had written its results before the interrupt (it landed in the exit)")
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("layerswarm search: ")]
    assert proc.returncode == 130, stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("layerswarm: interrupted"), stderr[-3000:]
    if (out / "config.json").exists():  # the run had started: it says how to continue
        assert f"layerswarm search --resume {out}" in lines[0]
