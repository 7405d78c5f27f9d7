"""Every Python block of docs/guides/own-training-code.md runs as printed; the run examples of
the quickstart and the API page build their configuration as printed.

The blocks of one section run in order in one namespace, the sections in page order in one
folder (the timm section reads the study folder the first section wrote).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).parents[1] / "docs" / "guides" / "own-training-code.md"


def sections() -> dict[str, list[str]]:
    """Section heading -> its ```python blocks, in page order."""
    out: dict[str, list[str]] = {}
    for part in re.split(r"^## ", GUIDE.read_text(encoding="utf-8"), flags=re.M)[1:]:
        heading = part.splitlines()[0].strip()
        out[heading] = re.findall(r"```python\n(.*?)```", part, re.S)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("guide")


def run_section(heading: str, folder: Path, monkeypatch) -> dict:
    blocks = sections()[heading]
    assert blocks, f"section {heading!r} has no python block"
    monkeypatch.chdir(folder)
    scope: dict = {"__name__": "__guide__"}
    for block in blocks:
        exec(compile(block, f"{GUIDE.name}: {heading}", "exec"), scope)  # noqa: S102 - our own docs
    return scope


def test_the_guide_has_a_section_per_integration():
    assert list(sections()) == [
        "A study with your own objective",
        "Hugging Face `Trainer`",
        "Lightning",
        "peft (LoRA)",
        "timm's training script",
    ]


def test_study_section(folder, monkeypatch):
    scope = run_section("A study with your own objective", folder, monkeypatch)
    assert (folder / "runs" / "study" / "best_mask.json").is_file()
    assert len((folder / "runs" / "study" / "evaluations.jsonl").read_text().splitlines()) == 8
    assert len(scope["study"].trials) == 6 and scope["study"].direction == "minimize"


def test_trainer_section(folder, monkeypatch):
    scope = run_section("Hugging Face `Trainer`", folder, monkeypatch)
    assert len(scope["study"].trials) == 8 and scope["study"].best_value >= 0.0
    assert [u.name for u in scope["study"].units][1] == "bert.encoder.layer.0"


def test_lightning_section(folder, monkeypatch):
    pytest.importorskip("lightning")
    scope = run_section("Lightning", folder, monkeypatch)
    assert len(scope["study"].trials) == 4 and all(t.state == "complete" for t in scope["study"].trials)


def test_peft_section(folder, monkeypatch):
    pytest.importorskip("peft")
    scope = run_section("peft (LoRA)", folder, monkeypatch)
    adapted = {
        n.split(".encoder.layer.")[1].split(".")[0] for n, _ in scope["lora"].named_modules() if n.endswith("lora_A")
    }
    assert adapted == {"1", "3"}


def test_timm_section(folder, monkeypatch):
    if not (folder / "runs" / "study").is_dir():  # run alone: the study it reads first
        run_section("A study with your own objective", folder, monkeypatch)
    scope = run_section("timm's training script", folder, monkeypatch)
    held = sum(len(g["params"]) for g in scope["optimizer"].param_groups)
    assert held == sum(p.requires_grad for p in scope["model"].parameters()) > 0


@pytest.mark.parametrize("page", ["quickstart.md", "reference/api.md"])
def test_the_python_run_examples_build_their_configuration(page, monkeypatch):
    """The pages' ``run_search`` examples build a valid configuration as printed (the run itself,
    minutes of training, is replaced by a stand-in that keeps the configuration)."""
    import layerswarm
    import layerswarm.run.search

    seen = []

    def stand_in(cfg, out_dir, **kw):
        seen.append(cfg)
        return {"mask": [1], "test_accuracy": 0.0}

    monkeypatch.setattr(layerswarm.run.search, "run_search", stand_in)
    monkeypatch.setattr(layerswarm, "run_search", stand_in, raising=False)
    text = (GUIDE.parents[1] / page).read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "run_search(" in b]
    assert blocks, f"{page} has no run_search example"
    for block in blocks:
        exec(compile(block, page, "exec"), {"__name__": "__doc_example__"})  # noqa: S102 - our own docs
    assert seen and all(isinstance(cfg, layerswarm.RunConfig) for cfg in seen)
