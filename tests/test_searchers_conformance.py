"""Every built-in searcher passes the shipped conformance suite."""

from __future__ import annotations

import pytest

from layerswarm.errors import LayerswarmError
from layerswarm.searchers import (
    SEARCHERS,
    PSOConfig,
    PSOSearcher,
    RandomConfig,
    RandomSearcher,
    Searcher,
    create_searcher,
    register_searcher,
)
from layerswarm.searchers.testing import CHECKS, SearcherConformance


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
    assert masks == {"linear": [0] * 17, "full": [1] * 17, "last-1": [0] * 16 + [1], "last-2": [0] * 15 + [1] * 2,
                     "last-4": [0] * 13 + [1] * 4}  # 17 // 4 = 4: not twice
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
