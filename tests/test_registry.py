"""One registry helper and one configuration mechanism, shared by searchers, strategies and backends."""

from __future__ import annotations

import pytest

from layerswarm.config_utils import UnknownKeyError
from layerswarm.data import DataConfig
from layerswarm.errors import LayerswarmError
from layerswarm.executors import EXECUTORS, register_executor
from layerswarm.searchers import SEARCHERS, create_searcher
from layerswarm.strategies import STRATEGIES, Strategy, create_strategy, register_strategy


def test_every_registry_refuses_a_taken_name_and_names_the_known_ones() -> None:
    class Other(Strategy):
        name = "full"

    with pytest.raises(LayerswarmError, match="already taken"):
        register_strategy(Other)
    with pytest.raises(LayerswarmError, match="already taken"):
        register_executor("local")(lambda *a, **k: None)
    assert register_strategy(STRATEGIES["full"]) is STRATEGIES["full"]  # the same entry again: fine
    for registry, name in ((STRATEGIES, "ful"), (EXECUTORS, "rey"), (SEARCHERS, "psoo")):
        with pytest.raises(LayerswarmError) as err:
            registry.lookup(name)
        message = str(err.value)
        assert "\n" not in message and f"unknown {registry.kind} '{name}'" in message and "did you mean" in message


def test_unknown_keys_are_refused_in_one_place_for_every_config() -> None:
    for make in (
        lambda: DataConfig.from_dict({"bogus": 1}),
        lambda: create_searcher("ga", 4, {"bogus": 1}),
        lambda: create_strategy("l2sp", {"bogus": 1}),
    ):
        with pytest.raises(UnknownKeyError, match="has no option 'bogus'"):
            make()
