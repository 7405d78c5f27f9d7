"""Compare strategies the way the paper's Tables 2 and 3 do: same splits, schedule and seeds.

Layout of the output folder (every file written atomically)::

    compare.json                              the comparison's configuration
    results.md, results.csv                   the table, rewritten after every run
    <dataset>/<strategy>/repeat-<r>/run.json  the run's own configuration
    <dataset>/<strategy>/repeat-<r>/final/    model.safetensors, metrics.json

Repeat ``r`` trains with seed ``seed + r`` (new head, shuffling, augmentation, the strategy's
own draws); the data split stays the same across repeats unless ``resplit``. A run whose
``final/metrics.json`` exists is read back, not re-run, so an interrupted comparison continues
where it stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config_utils import with_defaults
from ..data import DataConfig, DatasetSplits, load_dataset
from ..errors import LayerswarmError
from ..io import atomic_write_json, atomic_write_text, read_json
from ..models.bundle import ModelConfig, build_bundle
from ..strategies import STRATEGIES, create_strategy
from ..training import TrainConfig
from .config import DEFAULT_STRATEGIES, EARLY_EPOCH, CompareConfig
from .finetune import run_finetune

log = logging.getLogger(__name__)

RUN_FILE = "run.json"


def make_strategy(name: str, options: dict | None):
    """The strategy ``name`` with ``options``, or one line naming the bad option and the valid ones."""
    try:
        return create_strategy(name, options or None)
    except LayerswarmError:
        raise  # already one line naming the valid options
    except (TypeError, ValueError) as err:
        known = ", ".join(f.name for f in dataclasses.fields(STRATEGIES[name].Config)) or "none"
        raise LayerswarmError(f"bad option for strategy '{name}' ({err}): its options are {known}") from err


def validate_compare(cfg: CompareConfig) -> None:
    """Fail before any training on a comparison no run could carry out: the configuration's own
    checks, then every strategy built with its options."""
    cfg.validate()
    for name in cfg.strategies:
        make_strategy(name, cfg.options.get(name))


def dataset_labels(data: list[DataConfig]) -> list[str]:
    """A short, unique, file-safe label per dataset (the folder name and the table column)."""
    labels: list[str] = []
    for d in data:
        spec = d.data.strip()
        name = spec.split(":", 1)[0] if ":" in spec and not Path(spec).exists() else Path(spec).name or spec
        label = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "data"
        base, i = label, 2
        while label in labels:
            label, i = f"{base}-{i}", i + 1
        labels.append(label)
    return labels


@dataclass
class RunSpec:
    """One (dataset, strategy, repeat) cell of the comparison."""

    dataset: str
    strategy: str
    repeat: int
    seed: int
    data: DataConfig
    path: Path

    def config(self, cfg: CompareConfig) -> dict:
        """Everything the run's result depends on: it must match for a saved result to be reused."""
        strategy = make_strategy(self.strategy, cfg.options.get(self.strategy))
        model = cfg.model if strategy.weights is None else cfg.model.replace(weights=strategy.weights)
        return {
            "dataset": self.dataset,
            "strategy": self.strategy,
            "options": strategy.config.to_dict(),
            "repeat": self.repeat,
            "seed": self.seed,
            "model": model.to_dict(),
            "data": self.data.to_dict(),
            "train": cfg.train.replace(seed=self.seed).to_dict(),
        }

    @property
    def metrics_path(self) -> Path:
        return self.path / "final" / "metrics.json"


def plan_runs(cfg: CompareConfig, out: Path) -> list[RunSpec]:
    """Every run, in execution order: dataset, then repeat, then strategy, so that an interrupted
    comparison has whole repeats of every strategy rather than all repeats of a few."""
    runs = []
    for label, data in zip(dataset_labels(cfg.data), cfg.data, strict=True):
        for r in range(cfg.repeats):
            split = (
                dataclasses.replace(data, splits=dataclasses.replace(data.splits, seed=data.splits.seed + r))
                if cfg.resplit
                else data
            )
            for name in cfg.strategies:
                runs.append(RunSpec(label, name, r, cfg.seed + r, split, out / label / name / f"repeat-{r}"))
    return runs


def _normalised(run_cfg: dict) -> dict:
    """A saved run config through the dataclasses: settings added since take their defaults."""
    try:
        options = STRATEGIES[run_cfg["strategy"]].Config
        return with_defaults(
            run_cfg, {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "options": options}
        )
    except (KeyError, TypeError, ValueError):
        return run_cfg  # not comparable: the caller refuses it


def run_one(spec: RunSpec, cfg: CompareConfig, data: DatasetSplits) -> dict:
    """Train one run (or read back its finished result)."""
    run_cfg = spec.config(cfg)
    saved = spec.path / RUN_FILE
    if saved.is_file() and _normalised(read_json(saved)) != run_cfg:
        raise LayerswarmError(
            f"'{spec.path}' holds a run with a different configuration: use a new --out folder, or the "
            "original settings"
        )
    if spec.metrics_path.is_file():
        return read_json(spec.metrics_path)
    atomic_write_json(saved, run_cfg)
    strategy = make_strategy(spec.strategy, cfg.options.get(spec.strategy))
    model = ModelConfig.from_dict(run_cfg["model"])
    train = cfg.train.replace(seed=spec.seed)
    bundle = build_bundle(model, data.num_classes, train, seed=spec.seed)
    return run_finetune(bundle, data, strategy, train, spec.path / "final", seed=spec.seed)


def run_compare(
    cfg: CompareConfig,
    out_dir: str | Path,
    on_run: Callable[[RunSpec, dict, bool], None] | None = None,
    on_start: Callable[[RunSpec], None] | None = None,
) -> Table:
    """Run every strategy on every dataset ``cfg.repeats`` times; write and return the table.

    ``on_run(spec, metrics, reused)`` is called after each run (``reused``: read back from disk).
    """
    from ..models.factory import pretrained_input

    validate_compare(cfg)
    # every dataset at the model's pretrained input unless it has a size of its own (compare.json records it)
    cfg = cfg.replace(data=[d.resolved(pretrained_input(cfg.model.name)) for d in cfg.data])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "compare.json", cfg.to_dict())
    runs = plan_runs(cfg, out)
    cache: dict[str, DatasetSplits] = {}
    results: dict[tuple[str, str, int], dict] = {}
    for spec in runs:
        reused = spec.metrics_path.is_file()
        if reused:
            metrics = run_one(spec, cfg, None)  # type: ignore[arg-type]  # read back, no data needed
        else:
            key = str(sorted(spec.data.to_dict().items()))
            if key not in cache:
                cache.clear()  # one dataset in memory at a time
                cache[key] = load_dataset(spec.data)
            if on_start is not None:
                on_start(spec)
            metrics = run_one(spec, cfg, cache[key])
        results[(spec.dataset, spec.strategy, spec.repeat)] = metrics
        table = summarise(cfg, results)
        write_table(table, out)
        if on_run is not None:
            on_run(spec, metrics, reused)
    from ..report import try_write_report  # report.html + figures/; a failure is only logged

    try_write_report(out)
    return summarise(cfg, results)


# --- the table ---


def early_accuracy(metrics: dict, epoch: int = EARLY_EPOCH) -> float | None:
    """Test accuracy measured at ``epoch`` (1-based), if the run measured it then."""
    for record in metrics.get("epochs", []):
        if record.get("epoch") == epoch:
            return record.get("test_accuracy")
    return None


@dataclass
class Cell:
    """One strategy on one dataset, over its finished repeats."""

    test: list[float] = field(default_factory=list)
    early: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @staticmethod
    def _mean_std(values: list[float]) -> tuple[float, float]:
        if not values:
            return math.nan, math.nan
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    @property
    def test_stats(self) -> tuple[float, float]:
        return self._mean_std(self.test)

    @property
    def early_stats(self) -> tuple[float, float]:
        return self._mean_std(self.early)

    @property
    def mean_seconds(self) -> float:
        return statistics.fmean(self.seconds) if self.seconds else math.nan


@dataclass
class Table:
    strategies: list[str]
    datasets: list[str]
    cells: dict[tuple[str, str], Cell]
    repeats: int

    def markdown(self) -> str:
        head = ["strategy"]
        for d in self.datasets:
            head += [f"{d} test acc %", f"{d} acc @{EARLY_EPOCH} ep %", f"{d} time/run"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s in self.strategies:
            row = [s]
            for d in self.datasets:
                c = self.cells[(s, d)]
                done = "" if len(c.test) == self.repeats else f" ({len(c.test)}/{self.repeats})"
                row += [_pct(*c.test_stats) + done, _pct(*c.early_stats), _secs(c.mean_seconds)]
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        head = ["strategy"]
        for d in self.datasets:
            head += [
                f"{d}_test_mean",
                f"{d}_test_std",
                f"{d}_acc{EARLY_EPOCH}_mean",
                f"{d}_acc{EARLY_EPOCH}_std",
                f"{d}_seconds_per_run",
                f"{d}_runs",
            ]
        writer.writerow(head)
        for s in self.strategies:
            row: list = [s]
            for d in self.datasets:
                c = self.cells[(s, d)]
                row += [*map(_num, c.test_stats), *map(_num, c.early_stats), _num(c.mean_seconds), len(c.test)]
            writer.writerow(row)
        return buf.getvalue()


def _pct(mean: float, std: float) -> str:
    return "n/a" if math.isnan(mean) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def _secs(s: float) -> str:
    return "n/a" if math.isnan(s) else f"{s:.0f} s"


def _num(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.6g}"


def summarise(cfg: CompareConfig, results: dict[tuple[str, str, int], dict]) -> Table:
    datasets = dataset_labels(cfg.data)
    cells = {(s, d): Cell() for s in cfg.strategies for d in datasets}
    for (d, s, _), m in sorted(results.items()):
        cell = cells[(s, d)]
        cell.test.append(m["test_accuracy"])
        early = early_accuracy(m)
        if early is not None:
            cell.early.append(early)
        cell.seconds.append(m.get("wall_seconds", m.get("seconds", math.nan)))
    return Table(list(cfg.strategies), datasets, cells, cfg.repeats)


def write_table(table: Table, out: Path) -> None:
    atomic_write_text(out / "results.md", table.markdown())
    atomic_write_text(out / "results.csv", table.csv())


# --- command-line helpers (the click command in cli/experiments.py stays thin) ---


def parse_options(pairs: list[str] | tuple[str, ...]) -> dict[str, dict]:
    """``["pso.particles=4", "l2sp.alpha=0.01"]`` -> ``{"pso": {"particles": 4}, "l2sp": {...}}``.

    Values are read as JSON when they parse (numbers, true/false, null, lists), else as text.
    """
    options: dict[str, dict] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        name, dot, option = key.strip().rpartition(".")
        if not sep or not dot or not name or not option:
            raise LayerswarmError(f"--option '{pair}' is not STRATEGY.KEY=VALUE: e.g. --option pso.particles=4")
        options.setdefault(name, {})[option] = parse_value(value)
    return options


def parse_value(text: str):
    """JSON when it parses (numbers, true/false, null, lists), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_strategy_options(name: str, pairs: list[str] | tuple[str, ...]) -> dict:
    """``finetune --option k=4`` (or ``last-k.k=4``) -> ``{"k": 4}`` for strategy ``name``."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().removeprefix(f"{name}.")
        if not sep or not key or "." in key:
            raise LayerswarmError(f"--option '{pair}' is not KEY=VALUE for strategy '{name}': e.g. --option k=4")
        options[key] = parse_value(value)
    return options


def parse_strategies(text: str | None) -> list[str]:
    if text is None:
        return list(DEFAULT_STRATEGIES)
    names = [s.strip() for s in text.split(",") if s.strip()]
    for name in names:
        if name not in STRATEGIES:
            create_strategy(name)  # raises the one-line error, with close matches
    return names
