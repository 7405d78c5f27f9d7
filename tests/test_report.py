"""The report of a tiny real run: every figure a valid, non-empty PNG, the table, the config."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from PIL import Image

from layerswarm.cli import main
from layerswarm.data import DataConfig
from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.io import read_jsonl
from layerswarm.models.bundle import ModelConfig
from layerswarm.report import write_report
from layerswarm.report.loader import generation_summaries, load_report_data
from layerswarm.run.config import RunConfig, SearchConfig
from layerswarm.run.search import run_search
from layerswarm.run.search_config import AnswerConfig, SearcherConfig
from layerswarm.training import TrainConfig
from layerswarm.training.config import EvalConfig, OptimConfig

FIGURES = ["fig1_masks", "fig2_accuracy", "fig3_convergence", "fig4_swarm"]


def tiny_config() -> RunConfig:
    return RunConfig(
        model=ModelConfig(name="test_efficientnet", weights="none"),
        data=DataConfig(
            data="digits",
            image=ImageConfig(size=16),
            splits=SplitConfig(train_per_class=8, val_per_class=4, max_test=60),
        ),
        fitness=TrainConfig(epochs=1, optim=OptimConfig(batch_size=16)),
        final=TrainConfig(epochs=2, optim=OptimConfig(batch_size=16), evaluation=EvalConfig(test_every=1)),
        search=SearchConfig(
            method=SearcherConfig(name="pso", options={"particles": 2, "generations": 2}),
            outcome=AnswerConfig(baselines="none", answer="mask"),
        ),
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits16):
    """2 particles x 2 generations x 1 epoch, final 2 epochs; run_search writes the report."""
    out = tmp_path_factory.mktemp("report") / "run"
    result = run_search(tiny_config(), out, data=digits16)
    return out, result


def _embedded_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)]


def _check_png(data: bytes) -> Image.Image:
    """A decodable PNG with something drawn on it (not one flat colour)."""
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    assert image.width > 200 and image.height > 150
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10
    return image


def test_search_writes_a_self_contained_report(run):
    out, result = run
    html = (out / "report.html").read_text()
    pngs = _embedded_pngs(html)
    assert len(pngs) == len(FIGURES)
    for key, data in zip(FIGURES, pngs, strict=True):
        _check_png(data)
        assert (out / "figures" / f"{key}.png").read_bytes() == data  # also written as files
    # nothing fetched from elsewhere: no scripts, stylesheets or remote images
    assert not re.search(r"<script|<link|src=['\"]http", html)
    # the table: the searched mask's strategy with its final test accuracy
    row = re.search(r"<tr class=\"search\">(.*?)</tr>", html).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[1] == "pso" and f"{result['test_accuracy']:.4f}" in cells
    # the configuration and the mask
    assert "test_efficientnet" in html and "search.method.options.particles" in html
    assert "".join(map(str, result["mask"])) in html


def test_loader_reads_the_run(run):
    out, result = run
    data = load_report_data(out)
    assert len(data.runs) == 1 and data.runs[0].is_search
    record = data.runs[0]
    assert record.mask == result["mask"] and record.dataset == "digits"
    metrics = json.loads((out / "final" / "metrics.json").read_text())
    assert record.test_curve == [(e["epoch"], e["test_accuracy"]) for e in metrics["epochs"]]
    # the per-generation summary rebuilt from evaluations.jsonl is the searcher's own history
    own = json.loads((out / "best_mask.json").read_text())["history"]
    rebuilt = generation_summaries(read_jsonl(out / "evaluations.jsonl"))
    assert [r[k] for r in rebuilt for k in ("best_fitness", "mean_fitness")] == pytest.approx(
        [r[k] for r in own for k in ("best_fitness", "mean_fitness")]
    )


def test_report_of_a_comparison_folder(run, tmp_path):
    """A comparison (here: the search plus a full fine-tune laid out as 'compare' writes them)
    gets the curves of both strategies and a table row for each."""
    from layerswarm.run.compare import CompareConfig, run_compare

    cfg = CompareConfig(
        model=ModelConfig(name="test_efficientnet", weights="none"),
        data=[
            DataConfig(
                data="digits",
                image=ImageConfig(size=16),
                splits=SplitConfig(train_per_class=8, val_per_class=4, max_test=60),
            )
        ],
        strategies=["full", "pso"],
        options={"pso": {"particles": 2, "generations": 2, "fitness_epochs": 1}},
        train=TrainConfig(epochs=2, optim=OptimConfig(batch_size=16), evaluation=EvalConfig(test_every=1)),
        repeats=1,
    )
    run_compare(cfg, tmp_path / "cmp")
    assert main(["report", str(tmp_path / "cmp")]) == 0
    html = (tmp_path / "cmp" / "report.html").read_text()
    assert len(_embedded_pngs(html)) == len(FIGURES)
    data = load_report_data(tmp_path / "cmp")
    assert sorted(r.strategy for r in data.runs) == ["full", "pso"]
    assert set(data.curves()["digits"]) == {"full", "pso"}
    assert "written by <code>layerswarm compare</code>" in html  # the compare table is shown
    for strategy in ("full", "pso"):
        assert re.search(rf"<td>{strategy}</td>", html)


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no runs in" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(Exception, match="is not a folder"):
        write_report(tmp_path / "missing")
