"""Every built-in searcher passes the shipped conformance suite, over masks and over levels."""

from __future__ import annotations

import pytest

from layerswarm.errors import LayerswarmError
from layerswarm.searchers import (
    SEARCHERS,
    LevelSpace,
    MaskSpace,
    PSOConfig,
    PSOSearcher,
    RandomConfig,
    RandomSearcher,
    Searcher,
    create_searcher,
    make_space,
    register_searcher,
)
from layerswarm.searchers.space import DEFAULT_LADDER
from layerswarm.searchers.testing import (
    CHECKS,
    SearcherConformance,
    check_finds_the_optimum,
    run_search,
)


class TestPSOConformance(SearcherConformance):
    @staticmethod
    def make(num_units: int, seed: int) -> Searcher:
        return PSOSearcher(num_units, PSOConfig(particles=4, generations=3), seed=seed)


class TestPSOOneGenerationConformance(SearcherConformance):
    """Smallest swarm the checks allow: one generation (an inertia schedule of length 1)."""

    @staticmethod
    def make(num_units: int, seed: int) -> Searcher:
        return PSOSearcher(num_units, PSOConfig(particles=2, generations=1), seed=seed)


class TestRandomConformance(SearcherConformance):
    @staticmethod
    def make(num_units: int, seed: int) -> Searcher:
        # 11 trials in batches of 4: the last batch is short.
        return RandomSearcher(num_units, RandomConfig(trials=11, batch_size=4), seed=seed)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_checks_usable_as_plain_functions(check) -> None:
    check(lambda n, seed: create_searcher("random", n, {"trials": 5, "batch_size": 1}, seed))


def test_registry_and_create() -> None:
    assert SEARCHERS["pso"] is PSOSearcher and SEARCHERS["random"] is RandomSearcher
    s = create_searcher("pso", 5, {"particles": 3, "generations": 2}, seed=1)
    assert isinstance(s, PSOSearcher) and s.config.particles == 3
    assert create_searcher("pso", 5, PSOConfig(particles=2), seed=1).config.particles == 2
    assert create_searcher("random", 5).config == RandomConfig()


def test_unknown_searcher_is_one_clear_line() -> None:
    with pytest.raises(LayerswarmError) as err:
        create_searcher("genetic", 5)
    message = str(err.value)
    assert "\n" not in message and "pso" in message and "random" in message


def test_unknown_config_key_is_refused_by_name() -> None:
    with pytest.raises(LayerswarmError, match="swarm_size"):
        create_searcher("pso", 5, {"swarm_size": 3})
    with pytest.raises(LayerswarmError, match="RandomConfig"):
        create_searcher("random", 5, PSOConfig())


def test_register_searcher() -> None:
    @register_searcher("tiny-random")
    class Tiny(RandomSearcher):
        pass

    try:
        assert SEARCHERS["tiny-random"] is Tiny and Tiny.name == "tiny-random"
        assert isinstance(create_searcher("tiny-random", 3, {"trials": 2}), Tiny)
        with pytest.raises(LayerswarmError, match="already taken"):
            register_searcher("pso")(Tiny)
    finally:
        SEARCHERS.pop("tiny-random", None)


def test_resume_refuses_other_searcher_or_size() -> None:
    state = PSOSearcher(4, PSOConfig(particles=2, generations=2)).state_dict()
    with pytest.raises(LayerswarmError, match="pso"):
        RandomSearcher(4).load_state_dict(state)
    with pytest.raises(LayerswarmError, match="units"):
        PSOSearcher(5).load_state_dict(state)


# --init baselines: every searcher, with the baseline masks in front, still passes every check.
SMALL = {
    "pso": {"particles": 4, "generations": 3},  # 4 particles take 4 of the 5 baselines, the wrapper asks the fifth
    "random": {"trials": 11, "batch_size": 4},
    "ga": {"trials": 23, "population": 6},
    "greedy": {"trials": 30, "start": "random"},
    "tpe": {"trials": 8, "batch_size": 3, "n_startup_trials": 3},
    "exhaustive": {"batch_size": 37},
}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_searcher_from_the_baselines_passes_every_check(name, check) -> None:
    most = 12 if name == "exhaustive" else 10**6  # exhaustive takes at most 12 units (as in test_searchers_more)
    check(lambda n, seed: create_searcher(name, min(n, most), SMALL[name], seed, init="baselines"))


def test_baseline_masks_and_where_they_go() -> None:
    from layerswarm.searchers import SeededSearcher, baseline_masks

    masks = dict(baseline_masks(17))
    assert masks == {
        "linear": [0] * 17,
        "full": [1] * 17,
        "last-1": [0] * 16 + [1],
        "last-2": [0] * 15 + [1] * 2,
        "last-4": [0] * 13 + [1] * 4,
    }  # 17 // 4 = 4: not twice
    assert list(dict(baseline_masks(40))) == ["linear", "full", "last-1", "last-2", "last-4", "last-10"]
    pso = create_searcher("pso", 17, {"particles": 10}, 0, init="baselines")
    assert isinstance(pso, PSOSearcher)  # all five in the swarm: no extra batch
    first = pso.ask()
    assert [t.info.get("init") for t in first[:5]] == list(masks) and all("init" not in t.info for t in first[5:])
    assert [x for x in first[0].position] == [0.25] * 17 and first[1].position == [0.75] * 17
    random_first = create_searcher("pso", 17, {"particles": 10}, 0).ask()
    assert [t.mask for t in first[5:]] == [t.mask for t in random_first[5:]]  # the other particles as before
    wrapped = create_searcher("tpe", 17, {"trials": 4}, 0, init="baselines")
    assert isinstance(wrapped, SeededSearcher) and [t.mask for t in wrapped.ask()] == list(masks.values())
    assert create_searcher("tpe", 17, {"trials": 4}, 0, init="random").name == "tpe"
    with pytest.raises(LayerswarmError, match="init"):
        create_searcher("pso", 5, None, 0, init="hand")


# --patience: every searcher that may stop early still passes every check.
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_searcher_with_patience_passes_every_check(name, check) -> None:
    most = 12 if name == "exhaustive" else 10**6
    check(lambda n, seed: create_searcher(name, min(n, most), SMALL[name], seed, patience=1))


# --- the level space (--space lr): every searcher passes every check there too ---
# four levels: the default's size, spelt out so that the tests do not follow it
LADDER = (0.0, 0.3, 1.0, 3.0)
LEVEL_MOST = {"exhaustive": 4}  # 4^4 = 256 plans, enumerated many times over by the resume check


def _level_searcher(name: str, n: int, seed: int, **kw) -> Searcher:
    return create_searcher(name, min(n, LEVEL_MOST.get(name, 10**6)), SMALL[name], seed, space=LevelSpace(LADDER), **kw)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_searcher_in_the_level_space_passes_every_check(name, check) -> None:
    check(lambda n, seed: _level_searcher(name, n, seed))


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_searcher_in_the_level_space_from_the_baselines_with_patience_passes_every_check(name, check) -> None:
    check(lambda n, seed: _level_searcher(name, n, seed, init="baselines", patience=2))


# Budgets that find the optimum of a 3-unit problem (64 plans of 4 levels, 8 masks) on most seeds.
FINDING = {
    "pso": {"particles": 10, "generations": 12},
    "random": {"trials": 200, "batch_size": 10},
    "ga": {"trials": 60, "population": 10},
    "greedy": {"trials": 40},
    "tpe": {"trials": 50, "n_startup_trials": 10},
    "exhaustive": {"batch_size": 16},
}


@pytest.mark.parametrize(
    "space",
    [MaskSpace(), LevelSpace(LADDER), LevelSpace((0.0, 1.0, 2.0))],
    ids=["mask", "lr4", "lr3"],
)
@pytest.mark.parametrize("name", sorted(FINDING))
def test_every_searcher_finds_the_optimum_of_its_space(name, space) -> None:
    check_finds_the_optimum(lambda n, seed: create_searcher(name, n, FINDING[name], seed, space=space))


def test_a_mask_space_search_is_the_level_search_of_two_levels_without_levels() -> None:
    """The mask space is the ladder (0, 1): same draws, the same masks, and no levels in its
    trials or state."""
    for name in sorted(SMALL):
        mask = run_search(create_searcher(name, 6, SMALL[name], 4))
        levels = run_search(create_searcher(name, 6, SMALL[name], 4, space=LevelSpace((0.0, 1.0))))
        assert [t.mask for t in mask] == [t.mask for t in levels] == [t.levels for t in levels], name
        assert all(t.levels is None and "levels" not in t.to_dict() for t in mask), name
    assert "space" not in create_searcher("pso", 3).state_dict()


def test_resume_refuses_another_space_or_ladder() -> None:
    state = create_searcher("pso", 4, {"particles": 2, "generations": 2}, space=LevelSpace(LADDER)).state_dict()
    with pytest.raises(LayerswarmError, match="space"):
        create_searcher("pso", 4, {"particles": 2, "generations": 2}).load_state_dict(state)
    with pytest.raises(LayerswarmError, match="ladder"):
        create_searcher(
            "pso", 4, {"particles": 2, "generations": 2}, space=LevelSpace((0.0, 1.0, 2.0))
        ).load_state_dict(state)
    masked = create_searcher("ga", 4, {"trials": 4}).state_dict()
    with pytest.raises(LayerswarmError, match="space"):
        create_searcher("ga", 4, {"trials": 4}, space=LevelSpace(LADDER)).load_state_dict(masked)


def test_a_searcher_without_space_refuses_a_level_space_in_one_line() -> None:
    @register_searcher("bits-only")
    class BitsOnly(RandomSearcher):
        def __init__(self, num_units, config=None, seed=0):
            super().__init__(num_units, config, seed)

    try:
        assert create_searcher("bits-only", 3, {"trials": 2}).space == MaskSpace()
        with pytest.raises(LayerswarmError, match="masks only") as err:
            create_searcher("bits-only", 3, {"trials": 2}, space=LevelSpace(LADDER))
        assert "\n" not in str(err.value)
    finally:
        SEARCHERS.pop("bits-only", None)


@pytest.mark.parametrize(
    "ladder, problem",
    [
        ("1,2", "first level must be 0"),
        ("0,1,0.5", "rise strictly"),
        ("0,0.3,3", "hold 1"),
        ("0", "2 to 10"),
        ("0,a", "not a list of numbers"),
        (",".join(str(i) for i in range(11)), "2 to 10"),
    ],
)
def test_a_bad_ladder_is_one_line_naming_the_problem(ladder, problem) -> None:
    with pytest.raises(LayerswarmError, match=problem) as err:
        make_space("lr", ladder)
    assert "\n" not in str(err.value)


def test_level_space_maps_positions_and_masks() -> None:
    space = LevelSpace(LADDER)
    # (0.5, 1] in three equal parts for levels 1..3; at or below 0.5 frozen
    assert space.levels_of_position([0.0, 0.5, 0.5001, 0.66, 0.67, 0.83, 0.84, 1.0]) == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
    ]
    assert [space.level_of_position(space.position_of_level(k, 0.3), 0.3) for k in range(4)] == [
        0,
        1,
        2,
        3,
    ]
    assert space.levels_of_mask([0, 1, 1]) == [0, 2, 2] and space.multipliers([0, 2, 3]) == [
        0.0,
        1.0,
        3.0,
    ]
    assert space.mask([0, 1, 3]) == [0, 1, 1] and space.size(3) == 64
    mask = MaskSpace()
    # where the baselines start
    assert [mask.position_of_level(k, 0.5) for k in (0, 1)] == [0.25, 0.75]
    assert make_space("lr").ladder == DEFAULT_LADDER and make_space("mask") == mask
    with pytest.raises(LayerswarmError, match="--space lr"):
        make_space("mask", "0,1,3")
