"""tpe, ga, greedy and exhaustive: the conformance suite, known answers, budgets, the race."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from layerswarm.data.config import ImageConfig, SplitConfig
from layerswarm.errors import LayerswarmError
from layerswarm.race import (
    BudgetSpent,
    RaceConfig,
    all_masks,
    full_mask,
    mask_key,
    pin_frozen,
    race_once,
    race_table,
    summarise,
    table_fitness,
)
from layerswarm.run.search_config import SearcherConfig
from layerswarm.searchers import (
    SEARCHERS,
    ExhaustiveConfig,
    ExhaustiveSearcher,
    GAConfig,
    GASearcher,
    GreedyConfig,
    GreedySearcher,
    Searcher,
    TPEConfig,
    TPESearcher,
    Trial,
    config_for_budget,
    create_searcher,
)
from layerswarm.searchers.testing import (
    SearcherConformance,
    check_other_seed_other_search,
    run_search,
)
from layerswarm.training.config import AugmentConfig, OptimConfig

# --- the conformance suite ---


class TestExhaustiveConformance(SearcherConformance):
    @staticmethod
    def make(num_units: int, seed: int) -> Searcher:
        return ExhaustiveSearcher(num_units, ExhaustiveConfig(batch_size=37), seed=seed)

    def test_other_seed_other_search(self) -> None:
        # The shipped check asks for 24 units, beyond exhaustive's limit of 12: same check at 12.
        with pytest.raises(LayerswarmError):
            self.make(24, 0)
        check_other_seed_other_search(lambda n, seed: self.make(min(n, 12), seed))


class TestGAConformance(SearcherConformance):
    @staticmethod
    def make(num_units: int, seed: int) -> Searcher:
        return GASearcher(num_units, GAConfig(trials=23, population=6), seed=seed)


class TestGreedyConformance(SearcherConformance):
    @staticmethod
    def make(num_units: int, seed: int) -> Searcher:
        return GreedySearcher(num_units, GreedyConfig(trials=30, start="random"), seed=seed)


class TestGreedyFrozenStartConformance(SearcherConformance):
    @staticmethod
    def make(num_units: int, seed: int) -> Searcher:
        return GreedySearcher(num_units, GreedyConfig(trials=40), seed=seed)

    def test_other_seed_other_search(self) -> None:
        # The all-frozen start and its flips are the same for every seed by design; the seed
        # drives the restarts, so whole runs differ.
        make = lambda seed: GreedySearcher(9, GreedyConfig(trials=80), seed=seed)  # noqa: E731
        runs = [[t.mask for t in run_search(make(seed))] for seed in (0, 1)]
        assert runs[0][:10] == runs[1][:10] and runs[0] != runs[1]


class TestTPEConformance(SearcherConformance):
    @staticmethod
    def make(num_units: int, seed: int) -> Searcher:
        return TPESearcher(num_units, TPEConfig(trials=8, batch_size=3, n_startup_trials=3), seed=seed)


# --- synthetic landscapes with known answers ---


def separable(weights: np.ndarray):
    """f(mask) = sum of the weights of the fine-tuned units: optimum = the positive ones."""
    return lambda mask: float(np.dot(mask, weights))


WEIGHTS = np.array([0.3, -0.2, 0.5, -0.1, 0.05, 0.4, -0.3, 0.2, -0.05, 0.1])
OPTIMUM = [int(w > 0) for w in WEIGHTS]


def drive(searcher: Searcher, fitness) -> list:
    trials = []
    while not searcher.is_done():
        batch = searcher.ask()
        trials.extend(batch)
        for t in batch:
            searcher.tell(t.number, fitness(t.mask))
    return trials


def test_exhaustive_visits_every_mask_once_and_finds_the_optimum() -> None:
    weights = WEIGHTS[:7]
    s = ExhaustiveSearcher(7, ExhaustiveConfig(batch_size=20), seed=3)
    trials = drive(s, separable(weights))
    assert sorted(mask_key(t.mask) for t in trials) == sorted(mask_key(m) for m in all_masks(7))
    assert s.best()[0] == [int(w > 0) for w in weights]
    binary = ExhaustiveSearcher(3, ExhaustiveConfig(batch_size=8, order="binary"), seed=5).ask()
    assert [t.mask for t in binary] == [list(m) for m in itertools.product((0, 1), repeat=3)]


def test_exhaustive_refuses_more_than_12_units_in_one_line() -> None:
    with pytest.raises(LayerswarmError) as err:
        create_searcher("exhaustive", 13)
    assert "\n" not in str(err.value) and "12" in str(err.value) and "granularity" in str(err.value)


def test_greedy_climbs_a_separable_landscape_unit_by_unit() -> None:
    f = separable(WEIGHTS)
    s = GreedySearcher(10, GreedyConfig(trials=200), seed=0)
    trials = drive(s, f)
    assert s.best()[0] == OPTIMUM
    # From all frozen, round r's best mask fine-tunes the r largest positive units; after
    # the k positive units, one more round finds nothing that helps and a restart follows.
    k, order = sum(OPTIMUM), np.argsort(-WEIGHTS)
    for r in range(1, k + 1):
        round_best = best_within([t for t in trials if t.generation == r], f)
        assert round_best == [int(j in order[:r]) for j in range(10)], f"round {r}"
    assert all(t.info["step"] == "flips" for t in trials if 1 <= t.generation <= k + 1)
    assert f(best_within([t for t in trials if t.generation == k + 1], f)) < f(OPTIMUM)
    assert [t.info["step"] for t in trials if t.generation == k + 2] == ["restart"]


def best_within(trials, fitness) -> list[int]:
    return max(trials, key=lambda t: fitness(t.mask)).mask


def test_searchers_never_ask_a_mask_twice() -> None:
    for make in (
        lambda: GASearcher(8, GAConfig(trials=100), seed=1),
        lambda: GreedySearcher(8, GreedyConfig(trials=100), seed=1),
        lambda: TPESearcher(8, TPEConfig(trials=40, n_startup_trials=5), seed=1),
    ):
        masks = [mask_key(t.mask) for t in drive(make(), separable(WEIGHTS[:8]))]
        assert len(masks) == len(set(masks)), type(make()).__name__


def test_ga_finds_the_optimum_and_evolves_its_threshold() -> None:
    found, thresholds = 0, set()
    for seed in range(5):
        s = GASearcher(10, GAConfig(trials=150), seed=seed)
        trials = drive(s, separable(WEIGHTS))
        for t in trials:  # the mask is the unit genes above the evolved threshold
            assert t.mask == [int(g > t.info["threshold"]) for g in t.position]
            thresholds.add(round(t.info["threshold"], 6))
        found += s.best()[0] == OPTIMUM
    assert found >= 4, f"GA found the optimum of 1024 masks in {found}/5 seeds with 150 evaluations"
    assert len(thresholds) > 20


def test_tpe_beats_its_own_random_start() -> None:
    # 10 units, 1024 masks: after 10 random masks TPE must find better ones, mostly the optimum.
    found = 0
    for seed in range(3):
        s = TPESearcher(10, TPEConfig(trials=60, n_startup_trials=10), seed=seed)
        trials = drive(s, separable(WEIGHTS))
        start = max(separable(WEIGHTS)(t.mask) for t in trials[:10])
        assert s.best()[1] > start
        found += s.best()[0] == OPTIMUM
    assert found >= 2


def test_tpe_resume_refuses_a_record_it_cannot_replay() -> None:
    s = TPESearcher(6, TPEConfig(trials=10, n_startup_trials=2), seed=0)
    for t in s.ask():
        s.tell(t.number, 0.5)
    state = json.loads(json.dumps(s.state_dict()))
    number, bits, fit = state["batches"][0][0]
    state["batches"][0][0] = [number, "".join("1" if b == "0" else "0" for b in bits), fit]
    with pytest.raises(LayerswarmError, match="replaying"):
        TPESearcher(6, seed=0).load_state_dict(state)


# --- one budget for every searcher ---


@pytest.mark.parametrize("name", sorted(SEARCHERS))
def test_config_for_budget_spends_the_budget(name: str) -> None:
    options = config_for_budget(name, 30, batch_size=10)
    s = create_searcher(name, 9, options, seed=0)
    told = len(run_search(s))
    if name == "exhaustive":
        assert told == 2**9
    elif name == "pso":
        assert options == {"particles": 10, "generations": 3} and told == 30
    else:
        assert told == 30


def test_cli_search_config_uses_the_budget() -> None:
    from layerswarm.cli import _search_config

    base = dict(
        model_name="test_resnet",
        model_weights="none",
        model_granularity="stage",
        data_data="digits",
        pso_particles=5,
        pso_generations=4,
        pso_c1=1.5,
        pso_c2=1.5,
        pso_inertia_start=1.4,
        pso_inertia_end=0.7,
        pso_velocity_max=None,
        fitness_epochs=1,
        final_epochs=1,
        search_retries=1,
        seed=0,
        out_dir="x",
        search_backend="local",
        search_address=None,
        search_cpus_per_trial=1,
        search_gpus_per_trial=0.0,
    )
    ga, pso = {"search_searcher": "ga", "budget": None}, {"search_searcher": "pso", "budget": None}
    cfg, _ = _search_config({**base, **ga}, set())  # the default budget
    assert (
        cfg.search.method.options["trials"] == 120 and cfg.search.method.options["population"] == 5
    )  # the swarm's 10 x 12
    cfg, _ = _search_config({**base, **pso, "budget": 23}, set())
    assert cfg.search.method.options["particles"] == 5 and cfg.search.method.options["generations"] == 5
    assert cfg.search.method.options["c1"] == 1.5
    cfg, _ = _search_config({**base, **pso}, set())  # n x G
    assert cfg.search.method.options["generations"] == 4
    with pytest.raises(LayerswarmError, match="--generations is a PSO option"):
        _search_config({**base, **ga}, {"pso_generations"})


# --- the race ---


def test_memo_budget_charges_new_masks_only() -> None:
    from layerswarm.race.runner import _FitnessExecutor
    from layerswarm.speed import MemoExecutor

    calls = []
    memo = MemoExecutor(_FitnessExecutor(lambda m: calls.append(m) or float(sum(m))), 2, budget_epochs=4)

    def trial(number, mask):
        return Trial(number=number, generation=0, index=number, mask=mask)

    got = [(t.number, ev.fitness) for t, ev in memo.run([trial(0, [1, 0]), trial(1, [1, 0]), trial(2, [1, 1])])]
    assert sorted(got) == [(0, 1.0), (1, 1.0), (2, 2.0)] and len(calls) == 2 and memo.spent == 4
    assert [ev.fitness for _, ev in memo.run([trial(3, [1, 1])])] == [2.0]  # a repeat: free
    with pytest.raises(BudgetSpent):
        list(memo.run([trial(4, [0, 0])]))
    assert len(calls) == 2 and memo.spent == 4


def synthetic_table(num_units: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    w, pair = rng.normal(0, 0.05, num_units), rng.normal(0, 0.03, (num_units, num_units))
    return {
        mask_key(m): float(0.5 + np.dot(m, w) + np.array(m) @ pair @ np.array(m) / num_units)
        for m in all_masks(num_units)
    }


def test_race_once_respects_the_budget_and_traces_the_best() -> None:
    table = synthetic_table(6)
    for name in SEARCHERS:
        run = race_once(name, 6, table_fitness(table), budget=20, seed=1, fitness_epochs=2, batch_size=5)
        spent = [s for s, _ in run.trace]
        best = [b for _, b in run.trace]
        assert spent == list(range(2, 2 * len(spent) + 1, 2)) and run.spent <= 40
        assert best == sorted(best) and best[-1] == run.best_fitness == table[mask_key(run.best_mask)]
    exhaustive = race_once("exhaustive", 6, table_fitness(table), budget=64, seed=0)
    assert exhaustive.best_fitness == max(table.values()) and exhaustive.spent == 64


def test_summarise_epochs_to_reach_the_reference() -> None:
    from layerswarm.race import RaceRun

    cfg = RaceConfig(searchers=["pso", "fast"], budget=8, seeds=1)
    runs = [
        RaceRun("pso", 0, [[1, 0.1], [2, 0.5], [8, 0.7]], [1], 0.7, 8, 8),
        RaceRun("fast", 0, [[1, 0.6], [2, 0.8]], [1], 0.8, 2, 2),
    ]
    s = summarise(runs, cfg, optimum=0.8)
    assert s["target"] == 0.7
    assert s["searchers"]["fast"]["epochs_to_match_reference_mean"] == 2
    assert s["searchers"]["fast"]["reached_reference_within_quarter"] == 1.0
    assert s["searchers"]["pso"]["reached_reference_within_quarter"] == 0.0
    assert s["searchers"]["fast"]["found_optimum"] == 1.0 and s["curves"]["pso"][2] == 0.5


def test_pin_frozen_and_full_mask_round_trip() -> None:
    table = synthetic_table(4)
    sub = pin_frozen(table, 4, [0, 2])
    assert len(sub) == 4
    for key, value in sub.items():
        full = full_mask([int(b) for b in key], 4, [0, 2])
        assert full[0] == full[2] == 0 and table[mask_key(full)] == value


def write_table(path, table: dict[str, float], num_units: int) -> None:
    lines = [{"kind": "header", "config": {"model": {"name": "m"}}, "units": [f"u{i}" for i in range(num_units)]}]
    lines += [{"kind": "entry", "mask": k, "fitness": v, "seconds": 0.0} for k, v in table.items()]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_race_table_writes_summary_and_plot(tmp_path) -> None:
    path = tmp_path / "table.jsonl"
    table = synthetic_table(5)
    write_table(path, table, 5)
    cfg = RaceConfig(searchers=["pso", "greedy", "exhaustive"], budget=16, batch_size=4, seeds=2)
    summary = race_table(path, cfg, tmp_path / "race")
    assert (tmp_path / "race" / "race.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "race" / "summary.json").read_text())
    assert saved["optimum"] == max(table.values()) and set(saved["searchers"]) == {"pso", "greedy", "exhaustive"}
    assert summary["table"]["optimum_masks"] == [max(table, key=table.get)]
    assert len(saved["curves"]["greedy"]) == 16


def test_race_table_refuses_an_incomplete_table(tmp_path) -> None:
    path = tmp_path / "table.jsonl"
    table = synthetic_table(4)
    table.pop("1111")
    write_table(path, table, 4)
    with pytest.raises(LayerswarmError, match="15 of the 16"):
        race_table(path, RaceConfig(searchers=["random"], budget=4, seeds=1), tmp_path / "race")
    # Pinning unit 0 frozen races the complete half of the table.
    cfg = RaceConfig(searchers=["exhaustive"], budget=8, seeds=1, frozen_units=[0])
    summary = race_table(path, cfg, tmp_path / "race")
    assert summary["searchers"]["exhaustive"]["found_optimum"] == 1.0
    assert not math.isnan(summary["target"] or 0.0)


def test_fitness_table_trains_each_mask_once_and_resumes(tmp_path) -> None:
    from layerswarm.data import DataConfig
    from layerswarm.models.bundle import ModelConfig
    from layerswarm.race import FitnessTable, build_table, load_table
    from layerswarm.run.search import RunConfig
    from layerswarm.training import TrainConfig

    cfg = RunConfig(
        model=ModelConfig(name="test_resnet", weights="none", granularity="stage"),
        data=DataConfig(
            data="digits", image=ImageConfig(size=16), splits=SplitConfig(train_per_class=4, val_per_class=3)
        ),
        fitness=TrainConfig(epochs=1, optim=OptimConfig(batch_size=16), augmentation=AugmentConfig(policy="none")),
    )
    path = tmp_path / "table.jsonl"
    table = FitnessTable(cfg, path)
    masks = [[0] * len(table.units), [1] * len(table.units)]
    first = build_table(cfg, path, masks=masks[:1])
    again = FitnessTable(cfg, path)
    calls = []
    evaluate = again.evaluator
    again.evaluator = lambda m: calls.append(m) or evaluate(m)
    assert again(masks[0]) == first[mask_key(masks[0])] and calls == []  # read, not retrained
    again(masks[1])
    again(masks[1])
    assert calls == [masks[1]]
    header, entries = load_table(path)
    assert header["units"] == table.units and set(entries) == {mask_key(m) for m in masks}
    with pytest.raises(LayerswarmError, match="another configuration"):
        FitnessTable(cfg.__class__(model=cfg.model, data=cfg.data, fitness=cfg.fitness.replace(epochs=2)), path)
    # Settings that do not change a fitness (searcher, final fine-tune) reuse the table.
    from layerswarm.run.config import SearchConfig

    other_search = cfg.__class__(
        model=cfg.model,
        data=cfg.data,
        fitness=cfg.fitness,
        final=cfg.final.replace(epochs=3),
        search=SearchConfig(method=SearcherConfig(name="ga")),
    )
    assert set(load_table(FitnessTable(other_search, path).path)[1]) == {mask_key(m) for m in masks}


def test_race_entries_carry_options() -> None:
    from layerswarm.race import parse_entry

    assert parse_entry("greedy:start=random/kick=3") == ("greedy", {"start": "random", "kick": 3})
    assert parse_entry("pso") == ("pso", {})
    table = synthetic_table(5)
    run = race_once("greedy:start=full", 5, table_fitness(table), budget=3, seed=0)
    assert run.trace[0][1] == table["11111"]
    with pytest.raises(LayerswarmError, match="key=value"):
        parse_entry("greedy:random")


def test_live_race_trains_masks_as_met_and_resumes_from_its_table(tmp_path, capsys) -> None:
    import json

    from layerswarm.cli import main

    args = [
        "race",
        "--live",
        "--model",
        "test_resnet",
        "--weights",
        "none",
        "--granularity",
        "stage",
        "--data",
        "digits",
        "--image-size",
        "16",
        "--train-per-class",
        "4",
        "--val-per-class",
        "3",
        "--batch-size",
        "16",
        "--augment",
        "none",
        "--searchers",
        "random,greedy",
        "--budget",
        "4",
        "--seeds",
        "2",
        "--out",
        str(tmp_path / "race"),
    ]
    assert main(args) == 0
    trained = [json.loads(line) for line in (tmp_path / "race" / "fitness.jsonl").read_text().splitlines()[1:]]
    err = capsys.readouterr().err
    assert err.count("trained ") == len(trained) > 4  # every mask trained once, shared by all runs
    summary = json.loads((tmp_path / "race" / "summary.json").read_text())
    assert set(summary["searchers"]) == {"random", "greedy"} and summary["table"]["masks"] == len(trained)
    assert all(r["mean_spent"] <= 4 for r in summary["searchers"].values())
    assert main(args) == 0  # again: every mask is read from the table, none trained
    assert "trained " not in capsys.readouterr().err
    assert main(["race", "--out", str(tmp_path / "x")]) == 2
    assert "--table FILE" in capsys.readouterr().err


def test_ga_on_a_small_budget_breeds_from_the_baselines() -> None:
    """The default search: 10 evaluations, population 5 = the 5 baseline masks of 17 units, then
    bred masks, none of them asked twice."""
    from layerswarm.searchers import baseline_masks, config_for_budget, create_searcher

    options = config_for_budget("ga", 10)
    assert options["population"] == 5 and options["trials"] == 10
    searcher = create_searcher("ga", 17, options, seed=0, init="baselines")
    first = searcher.ask()
    assert [t.mask for t in first] == [m for _, m in baseline_masks(17)]
    for t in first:
        searcher.tell(t.number, sum(t.mask) / 17)
    seen = [t.mask for t in first]
    while not searcher.is_done():
        batch = searcher.ask()
        assert batch and all(t.mask not in seen for t in batch)
        seen += [t.mask for t in batch]
        for t in batch:
            searcher.tell(t.number, sum(t.mask) / 17)
    assert len(seen) == 10
