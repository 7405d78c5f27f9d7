"""One source of defaults: every option of `layerswarm search`, `finetune` and `compare` defaults
to its library field's value, the commands without options run the library's default
configuration, and saved runs read back as they ran."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import layerswarm.run.search
from layerswarm.cli import app, main
from layerswarm.cli.options import FieldOption
from layerswarm.config_utils import flatten
from layerswarm.data import DataConfig
from layerswarm.models.config import ModelConfig
from layerswarm.run.config import CompareConfig, RunConfig, SearchConfig
from layerswarm.run.rundir import META_KEYS
from layerswarm.searchers import PSOConfig
from layerswarm.training import TrainConfig

RESULTS = Path(__file__).parents[1] / "benchmarks" / "results"
RUN, COMPARE = RunConfig(), CompareConfig()

# Options not generated from a config field: the library value each must default to. A new
# option belongs in a config dataclass (then cli/common.py generates it), or here.
NOT_FIELDS = {
    "search": {
        "fitness_epochs": RUN.fitness.epochs,
        "final_epochs": RUN.final.epochs,
        "seed": RUN.seed,
        # PSOConfig's n for PSO, another searcher's own batch (checked below)
        "pso_particles": None,
        "budget": None,  # PSO: particles x generations, others: PSOConfig().budget (checked below)
        "preset": None,
        "out_dir": None,
        "resume_dir": None,
        "overwrite": False,
        "config_file": None,
        "quiet": False,
        "tensorboard": False,
    },
    "finetune": {
        "epochs": RUN.final.epochs,
        "seed": RUN.seed,
        "strategy": None,
        "mask_file": None,
        "options": (),
        "overwrite": False,
        "config_file": None,
        "tensorboard": False,
        "quiet": False,
    },
    "compare": {
        "epochs": COMPARE.train.epochs,
        "test_every": COMPARE.train.evaluation.test_every,
        "strategies": ",".join(COMPARE.strategies),
        "options": (),
        "quiet": False,
    },
}
REQUIRED = {"search": [], "finetune": ["--out", "x"], "compare": ["--data", "digits", "--out", "x"]}


def _field_default(cls: type, key: str):
    """The default of the setting at dotted ``key`` of ``cls`` (``optim.lr``: through its group)."""
    *groups, name = key.split(".")
    for group in groups:
        cls = next(type(f.default_factory()) for f in dataclasses.fields(cls) if f.name == group)
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


@pytest.mark.parametrize("command", sorted(NOT_FIELDS))
def test_every_option_defaults_to_its_library_value(command):
    """What the command receives for each option it is not given."""
    cmd = app.commands[command]
    params = [p for p in cmd.params if p.name != "help"]
    assert len({o for p in params for o in p.opts}) == sum(len(p.opts) for p in params), "a flag twice"
    with cmd.make_context(command, list(REQUIRED[command])) as ctx:
        values = ctx.params
    required = {p.name for p in params if p.required}
    for param in params:
        if param.name in required:
            continue
        if isinstance(param, FieldOption):
            cls, key = param.config_field
            assert values[param.name] == _field_default(cls, key), (command, param.name)
        else:
            assert param.name in NOT_FIELDS[command], f"{command} --{param.name}: not generated, not listed here"
            assert values[param.name] == NOT_FIELDS[command][param.name], (command, param.name)


@pytest.fixture
def captured(monkeypatch):
    seen = {}

    def fake_run_search(cfg, out_dir, **kw):
        seen["cfg"] = cfg
        return {
            "mask": [0],
            "fitness": 0.5,
            "test_accuracy": 0.5,
            "units": ["u"],
            "out_dir": str(out_dir),
        }

    monkeypatch.setattr(layerswarm.run.search, "run_search", fake_run_search)
    return seen


def test_search_without_options_runs_the_library_default(tmp_path, captured):
    assert main(["search", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    cfg = captured["cfg"]
    # the swarm's settings with an option are written out; the library leaves them to PSOConfig
    assert PSOConfig.from_dict(cfg.search.method.options) == PSOConfig()
    search = cfg.search.replace(method=cfg.search.method.replace(options={}))
    assert cfg.replace(search=search) == RunConfig()
    assert (cfg.search.method.patience, cfg.search.outcome.baselines, cfg.search.outcome.answer) == (
        3,
        "linear,full,last-k",
        "validation",
    )


def test_another_searcher_gets_the_swarms_budget(tmp_path, captured):
    assert main(["search", "--searcher", "random", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert captured["cfg"].search.method.options["trials"] == PSOConfig().budget


def test_finetune_without_options_fine_tunes_as_a_searchs_final(tmp_path, monkeypatch):
    from layerswarm.cli import finetune_cmd

    settings = {}

    def stop_after(kw, given):
        settings.update(build(kw, given))
        raise KeyboardInterrupt  # nothing is loaded or written

    build = finetune_cmd._finetune_settings
    monkeypatch.setattr(finetune_cmd, "_finetune_settings", stop_after)
    assert main(["finetune", "--out", str(tmp_path / "run"), "--quiet"]) == 130
    assert settings["train"] == RUN.final.to_dict() and settings["seed"] == RUN.seed
    assert settings["model"] == ModelConfig().to_dict() and settings["data"] == DataConfig().to_dict()
    assert not (tmp_path / "run").exists()


def test_compare_without_options_runs_the_library_default(tmp_path, monkeypatch):
    import layerswarm.run.compare

    seen = {}

    def fake_run_compare(cfg, out_dir, **kw):
        seen["cfg"] = cfg
        raise KeyboardInterrupt

    monkeypatch.setattr(layerswarm.run.compare, "run_compare", fake_run_compare)
    assert main(["compare", "--data", "digits", "--out", str(tmp_path / "c"), "--quiet"]) == 130
    assert seen["cfg"] == CompareConfig()


def test_the_numpy_free_init_names_are_the_searchers():
    from layerswarm.run import search_config
    from layerswarm.searchers import INITS

    assert search_config.INITS == INITS


def test_a_saved_search_without_newer_keys_reads_as_it_ran(tmp_path, captured):
    """Runs saved before --patience, --baselines and --answer existed searched the whole budget,
    had no baselines and answered with the searched mask: read back, they still do."""
    assert SearchConfig.from_dict({}).method.patience == 0 and SearchConfig().method.patience == 3
    old = sorted(
        p.parent for p in RESULTS.glob("search/*/config.json") if "patience" not in json.loads(p.read_text())["search"]
    )
    assert old, "no record without patience left: this test would prove nothing"
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.json").write_text((old[0] / "config.json").read_text())
    assert RunConfig.from_dict(json.loads((run / "config.json").read_text())).search.method.patience == 0
    assert main(["search", "--resume", str(run), "--quiet"]) == 0
    assert captured["cfg"].search.method.patience == 0
    assert (
        main(
            [
                "search",
                "--config",
                str(run / "config.json"),
                "--out",
                str(tmp_path / "again"),
                "--quiet",
            ]
        )
        == 0
    )
    assert captured["cfg"].search.method.patience == 0  # a run's config.json repeats that run
    mine = tmp_path / "mine.yaml"  # a file of the user's: what it leaves out takes the library's defaults
    mine.write_text("fitness:\n  epochs: 2\n")
    assert main(["search", "--config", str(mine), "--out", str(tmp_path / "mine"), "--quiet"]) == 0
    assert captured["cfg"].search == RunConfig().search and captured["cfg"].fitness.epochs == 2


def test_every_recorded_run_config_round_trips():
    """config.json of the recorded runs (read by --resume, --config and the tables) reads back
    with every setting it holds, each at its place in the groups, and writes back to what it reads."""
    files = sorted(RESULTS.glob("search/*/config.json"))
    assert files
    for path in files:
        saved = json.loads(path.read_text())
        cfg = RunConfig.from_dict(saved)
        assert RunConfig.from_dict(cfg.to_dict()) == cfg, path
        settings = flatten({k: v for k, v in saved.items() if k not in META_KEYS})
        read = flatten(cfg.to_dict())
        assert {k: read.get(RunConfig.current_key(k)) for k in settings} == settings, path


def test_train_defaults_are_the_default_recipe():
    assert TrainConfig.for_recipe("default") == TrainConfig()
