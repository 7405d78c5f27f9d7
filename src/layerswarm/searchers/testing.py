"""Conformance checks that every searcher must pass (like optuna's shipped sampler tests).

Each check is a plain function ``check(make)`` where ``make(num_units, seed)`` returns a
fresh searcher with a small finite budget; it raises ``AssertionError`` on a violation.
Reuse them from pytest either by subclassing::

    class TestMySearcherConformance(SearcherConformance):
        @staticmethod
        def make(num_units, seed):
            return MySearcher(num_units, MyConfig(trials=12), seed=seed)

or by parametrising over :data:`CHECKS`. No pytest import here: this module ships.

A factory may return a searcher over any space (``searcher.space``: the mask space, or a level
space of :mod:`layerswarm.searchers.space`): the checks read the plans as ``Trial.unit_levels``.
:func:`check_finds_the_optimum` is apart from :data:`CHECKS`: its factory must give a budget
large enough to find the optimum of :func:`level_objective`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from layerswarm.searchers.base import Searcher, Trial

Factory = Callable[[int, int], Searcher]

NUM_UNITS = 9
MAX_ASKS = 10_000  # a finite budget must end well before this


def fitness_of(trial: Trial) -> float:
    """Deterministic fitness, distinct per trial so that the best is unambiguous."""
    weights = np.sin(np.arange(1, len(trial.mask) + 1))  # fixed, mixed-sign preferences
    return float(np.dot(trial.unit_levels, weights)) + 1e-6 * trial.number


def level_optimum(num_units: int, levels: int) -> list[int]:
    """The plan :func:`level_objective` peaks at: every level used, frozen and trained units
    mixed."""
    return [(3 * j + 1) % levels for j in range(num_units)]


def level_objective(num_units: int, levels: int) -> Callable[[Trial], float]:
    """A separable objective over plans: minus the weighted distance of each unit's level from its
    level in :func:`level_optimum` (a unit two levels off costs twice one level off), so that a
    searcher that reads neighbouring levels as neighbours can climb it; 0 only at the optimum."""
    target = level_optimum(num_units, levels)
    weights = [1.0 + 0.1 * j for j in range(num_units)]

    def fitness(trial: Trial) -> float:
        levels = trial.unit_levels
        return -sum(w * abs(a - b) for w, a, b in zip(weights, levels, target, strict=True))

    return fitness


def _expect_raises(exc: type[BaseException], fn: Callable[[], Any], what: str) -> None:
    try:
        fn()
    except exc:
        return
    raise AssertionError(f"{what}: expected {exc.__name__}")


def _pending(searcher: Searcher) -> list[Trial]:
    pending = getattr(searcher, "pending", None)
    assert callable(pending), f"{type(searcher).__name__} has no pending() method"
    return pending()


def check_pending_and_best_are_the_contract(make: Factory) -> None:
    """``pending()`` is the base class's (declared there, not an extra); ``best()`` raises
    ``RuntimeError`` before any result, also with a batch asked and partly told."""
    searcher = make(NUM_UNITS, 0)
    assert type(searcher).pending is not Searcher.pending, "pending() is not implemented"
    assert _pending(searcher) == [], "pending() before any ask() must be empty"
    _expect_raises(RuntimeError, searcher.best, "best() before any ask()")
    batch = searcher.ask()
    assert [t.number for t in _pending(searcher)] == [t.number for t in batch]
    _expect_raises(RuntimeError, searcher.best, "best() before any tell")
    if len(batch) > 1:
        searcher.tell(batch[0].number, fitness_of(batch[0]))
        _expect_raises(RuntimeError, searcher.best, "best() with the first batch partly told")


def run_search(
    searcher: Searcher,
    fitness: Callable[[Trial], float] = fitness_of,
    reverse: bool = False,
) -> list[Trial]:
    """Ask/tell until done; returns every trial in ask order."""
    trials: list[Trial] = []
    for _ in range(MAX_ASKS):
        if searcher.is_done():
            return trials
        batch = searcher.ask()
        trials.extend(batch)
        for trial in reversed(batch) if reverse else batch:
            searcher.tell(trial.number, fitness(trial))
    raise AssertionError(f"not done after {MAX_ASKS} asks: is the budget finite?")


def _restore(make: Factory, searcher: Searcher, seed: int) -> Searcher:
    """A new searcher, built with another seed, restored from a JSON round trip."""
    text = json.dumps(searcher.state_dict(), allow_nan=False)  # strict JSON, no -Infinity
    restored = make(NUM_UNITS, seed + 1)
    restored.load_state_dict(json.loads(text))
    return restored


# --- the checks ---


def check_ask_returns_valid_masks(make: Factory) -> None:
    """Masks of 0/1 ints; in a level space also levels, ints in [0, K), 0 exactly where the
    mask freezes; in the mask space no levels (the mask is the plan)."""
    for num_units in (1, NUM_UNITS):
        searcher = make(num_units, 0)
        # a factory may cap the units (exhaustive)
        num_units, space = searcher.num_units, searcher.space
        batch = searcher.ask()
        assert batch, "ask() returned no trials"
        for trial in batch:
            assert len(trial.mask) == num_units, "mask length != num_units"
            assert all(type(b) is int and b in (0, 1) for b in trial.mask), "mask not 0/1 ints"
            if space.name == "mask":
                assert trial.levels is None, "a mask-space trial carries levels"
            else:
                levels = trial.levels
                assert levels is not None and len(levels) == num_units, "levels length != num_units"
                assert all(type(v) is int and 0 <= v < space.levels for v in levels), "levels not in [0, K)"
                assert trial.mask == space.mask(levels), "mask not 1 exactly where the level is > 0"
            if trial.position is not None:
                assert len(trial.position) == num_units, "position length != num_units"


def check_numbers_unique_and_increasing(make: Factory) -> None:
    numbers = [t.number for t in run_search(make(NUM_UNITS, 0))]
    assert numbers == sorted(set(numbers)), f"trial numbers not unique and increasing: {numbers}"
    assert len({(t.generation, t.index) for t in run_search(make(NUM_UNITS, 0))}) == len(numbers)


def check_tell_out_of_order(make: Factory) -> None:
    in_order = run_search(make(NUM_UNITS, 3))
    searcher = make(NUM_UNITS, 3)
    reversed_ = run_search(searcher, reverse=True)
    assert [t.to_dict() for t in reversed_] == [t.to_dict() for t in in_order], (
        "telling a batch in reverse order changed later trials"
    )


def check_tell_unknown_or_twice_raises(make: Factory) -> None:
    searcher = make(NUM_UNITS, 0)
    _expect_raises(ValueError, lambda: searcher.tell(0, 1.0), "tell before any ask")
    batch = searcher.ask()
    _expect_raises(ValueError, lambda: searcher.tell(10**9, 1.0), "tell of an unknown number")
    searcher.tell(batch[0].number, 1.0)
    _expect_raises(ValueError, lambda: searcher.tell(batch[0].number, 2.0), "tell twice")


def check_ask_with_pending_trials_raises(make: Factory) -> None:
    searcher = make(NUM_UNITS, 0)
    batch = searcher.ask()
    _expect_raises(RuntimeError, searcher.ask, "ask() before telling the batch")
    for trial in batch[:-1]:
        searcher.tell(trial.number, 0.5)
    _expect_raises(RuntimeError, searcher.ask, "ask() with one trial untold")
    assert [t.number for t in _pending(searcher)] == [batch[-1].number]
    searcher.tell(batch[-1].number, 0.5)
    assert _pending(searcher) == []


def check_finishes(make: Factory) -> None:
    searcher = make(NUM_UNITS, 0)
    run_search(searcher)
    assert searcher.is_done()
    _expect_raises(RuntimeError, searcher.ask, "ask() after is_done()")


def check_same_seed_same_search(make: Factory) -> None:
    a, b = make(NUM_UNITS, 7), make(NUM_UNITS, 7)
    trials_a, trials_b = run_search(a), run_search(b)
    assert [t.to_dict() for t in trials_a] == [t.to_dict() for t in trials_b], "not reproducible"
    assert a.best() == b.best()
    assert a.history() == b.history()


def _first_drawn(searcher: Searcher) -> list[list[int]]:
    """The masks of the first batch with a trial the searcher drew (not a fixed initial mask,
    ``info["init"]``, which is the same for every seed), telling each batch before."""
    while True:
        batch = searcher.ask()
        drawn = [t.unit_levels for t in batch if "init" not in t.info]
        if drawn:
            return drawn
        for trial in batch:
            searcher.tell(trial.number, fitness_of(trial))


def check_other_seed_other_search(make: Factory) -> None:
    masks = [_first_drawn(make(24, seed)) for seed in (0, 1)]
    assert masks[0] != masks[1], "seeds 0 and 1 gave the same first batch"


def check_initial_masks_asked_first(make: Factory) -> None:
    """With ``--init baselines`` every baseline mask is asked before any mask the searcher drew,
    marked with its name, and the best is never below theirs."""
    from layerswarm.searchers.seeded import baseline_masks, with_initial_masks

    for num_units in (1, 2, NUM_UNITS):
        inner = make(num_units, 0)
        expected = baseline_masks(inner.num_units)  # a factory may cap the units (exhaustive)
        searcher = with_initial_masks(inner, "baselines")
        trials = run_search(searcher)
        first_drawn = next((i for i, t in enumerate(trials) if "init" not in t.info), len(trials))
        head = {t.info["init"]: t.mask for t in trials[:first_drawn]}
        assert head == dict(expected), f"{num_units} units: first asks {head}, expected the baselines {dict(expected)}"
        _, best = searcher.best()
        assert best >= max(fitness_of(t) for t in trials[:first_drawn]), "the best is below a baseline's fitness"


def check_resume_mid_batch_and_between_batches(make: Factory) -> None:
    reference = make(NUM_UNITS, 5)
    expected = run_search(reference)
    n = len(expected)
    # Cut after k tells, k covering the start, mid-batch, batch ends and the end; with
    # ask_next, the next batch is also asked (none of it told) before the cut.
    cuts = sorted({0, 1, n // 2, n - 1, n, *range(0, n, max(1, n // 7))})
    for cut in cuts:
        for ask_next in (False, True):
            searcher = make(NUM_UNITS, 5)
            seen: list[Trial] = []
            told = 0
            while told < cut:
                batch = searcher.ask()
                seen.extend(batch)
                for trial in batch[: cut - told]:
                    searcher.tell(trial.number, fitness_of(trial))
                    told += 1
            if ask_next and not _pending(searcher) and not searcher.is_done():
                seen.extend(searcher.ask())
            restored = _restore(make, searcher, 5)
            pending = _pending(restored)
            assert [t.to_dict() for t in pending] == [t.to_dict() for t in _pending(searcher)]
            for trial in pending:
                restored.tell(trial.number, fitness_of(trial))
            seen.extend(run_search(restored))
            where = f"restored after {cut} tells (ask_next={ask_next})"
            assert [t.to_dict() for t in seen] == [t.to_dict() for t in expected], f"{where}: the search diverged"
            assert restored.best() == reference.best(), f"{where}: another best"
            assert restored.history() == reference.history(), f"{where}: another history"


def check_state_dict_is_strict_json_with_failures(make: Factory) -> None:
    searcher = make(NUM_UNITS, 0)
    batch = searcher.ask()
    searcher.tell(batch[0].number, -math.inf)  # a told failure inside an outstanding batch
    restored = _restore(make, searcher, 0)
    for trial in _pending(searcher):
        searcher.tell(trial.number, -math.inf)
        restored.tell(trial.number, -math.inf)
    assert restored.history() == searcher.history()
    run_search(searcher, fitness=lambda t: -math.inf)
    restored = _restore(make, searcher, 0)
    assert restored.history() == searcher.history()
    assert restored.best() == searcher.best()
    assert restored.is_done()


def check_best_is_max_told(make: Factory) -> None:
    searcher = make(NUM_UNITS, 11)
    trials = run_search(searcher)
    top = max(trials, key=fitness_of)
    mask, value = searcher.best()
    assert value == fitness_of(top), f"best() fitness {value} != max told {fitness_of(top)}"
    assert mask == top.unit_levels, "best() is not the plan of the best told trial"


def check_failed_evaluations_never_best(make: Factory) -> None:
    def flaky(trial: Trial) -> float:
        # The first trial and every other one fail, so -inf comes first and often.
        return -math.inf if trial.number % 2 == 0 else fitness_of(trial)

    searcher = make(NUM_UNITS, 2)
    trials = run_search(searcher, fitness=flaky)
    finite = [t for t in trials if math.isfinite(flaky(t))]
    assert finite, "budget too small for this check: make() must allow >= 2 trials"
    mask, value = searcher.best()
    top = max(finite, key=flaky)
    assert math.isfinite(value) and value == flaky(top), "a failed evaluation became the best"
    assert mask == top.unit_levels


def check_finds_the_optimum(
    make: Factory, num_units: int = 3, seeds: tuple[int, ...] = (0, 1, 2), min_found: int = 2
) -> None:
    """In at least ``min_found`` of ``seeds``, the searcher's best is the optimum of
    :func:`level_objective` over its space (every plan's levels scored, so a searcher that
    skipped the upper levels, or read them in the wrong order, misses it)."""
    found = []
    for seed in seeds:
        searcher = make(num_units, seed)
        levels = searcher.space.levels
        run_search(searcher, fitness=level_objective(num_units, levels))
        best, value = searcher.best()
        found.append(best == level_optimum(num_units, levels) and value == 0.0)
    hits = [s for s, f in zip(seeds, found, strict=True) if f]
    assert len(hits) >= min_found, f"found the optimum with seeds {hits} of {list(seeds)}: fewer than {min_found}"


CHECKS: list[Callable[[Factory], None]] = [
    check_ask_returns_valid_masks,
    check_pending_and_best_are_the_contract,
    check_numbers_unique_and_increasing,
    check_tell_out_of_order,
    check_tell_unknown_or_twice_raises,
    check_ask_with_pending_trials_raises,
    check_finishes,
    check_same_seed_same_search,
    check_other_seed_other_search,
    check_resume_mid_batch_and_between_batches,
    check_state_dict_is_strict_json_with_failures,
    check_best_is_max_told,
    check_failed_evaluations_never_best,
    check_initial_masks_asked_first,
]


def run_conformance(make: Factory) -> None:
    """Run every check; the first violation raises ``AssertionError``."""
    for check in CHECKS:
        check(make)


class SearcherConformance:
    """Base class for pytest: subclass it as ``Test...`` and define ``make(num_units, seed)``.

    Its name does not start with ``Test`` so that importing it does not collect it.
    """

    @staticmethod
    def make(num_units: int, seed: int) -> Searcher:
        raise NotImplementedError("define make(num_units, seed) in the subclass")

    def test_ask_returns_valid_masks(self) -> None:
        check_ask_returns_valid_masks(self.make)

    def test_pending_and_best_are_the_contract(self) -> None:
        check_pending_and_best_are_the_contract(self.make)

    def test_numbers_unique_and_increasing(self) -> None:
        check_numbers_unique_and_increasing(self.make)

    def test_tell_out_of_order(self) -> None:
        check_tell_out_of_order(self.make)

    def test_tell_unknown_or_twice_raises(self) -> None:
        check_tell_unknown_or_twice_raises(self.make)

    def test_ask_with_pending_trials_raises(self) -> None:
        check_ask_with_pending_trials_raises(self.make)

    def test_finishes(self) -> None:
        check_finishes(self.make)

    def test_same_seed_same_search(self) -> None:
        check_same_seed_same_search(self.make)

    def test_other_seed_other_search(self) -> None:
        check_other_seed_other_search(self.make)

    def test_resume_mid_batch_and_between_batches(self) -> None:
        check_resume_mid_batch_and_between_batches(self.make)

    def test_state_dict_is_strict_json_with_failures(self) -> None:
        check_state_dict_is_strict_json_with_failures(self.make)

    def test_best_is_max_told(self) -> None:
        check_best_is_max_told(self.make)

    def test_failed_evaluations_never_best(self) -> None:
        check_failed_evaluations_never_best(self.make)

    def test_initial_masks_asked_first(self) -> None:
        check_initial_masks_asked_first(self.make)
