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
