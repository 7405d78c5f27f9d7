"""PSO maths on hand-computed numbers, Algorithm 1's semantics, and a synthetic search."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import numpy as np
import pytest

from layerswarm.errors import LayerswarmError
from layerswarm.searchers import PSOConfig, PSOSearcher, RandomConfig, RandomSearcher, Searcher
from layerswarm.searchers.pso import (
    absorb_at_walls,
    inertia,
    position_to_mask,
    update_position,
    update_velocity,
)

# --- inertia schedule ---


def test_inertia_is_linear_from_start_to_end() -> None:
    values = [inertia(t, 12, 1.4, 0.7) for t in range(12)]
    assert values[0] == pytest.approx(1.4) and values[-1] == pytest.approx(0.7)
    assert values[1] == pytest.approx(1.4 - 0.7 / 11)
    assert np.allclose(np.diff(values), -0.7 / 11)


def test_inertia_single_generation_is_start() -> None:
    assert inertia(0, 1, 1.4, 0.7) == 1.4


# --- velocity and position updates on hand-computed numbers ---

V = np.array([0.2, -0.1])
X = np.array([0.5, 0.9])
P = np.array([0.7, 0.4])
G = np.array([1.0, 0.0])
R1 = np.array([0.5, 0.2])
R2 = np.array([0.1, 1.0])


def test_velocity_update_hand_computed() -> None:
    # d0: 1.4*0.2 + 1.5*0.5*(0.7-0.5) + 1.5*0.1*(1.0-0.5) = 0.28 + 0.15 + 0.075 = 0.505
    # d1: 1.4*-0.1 + 1.5*0.2*(0.4-0.9) + 1.5*1.0*(0.0-0.9) = -0.14 - 0.15 - 1.35 = -1.64
    v = update_velocity(V, X, P, G, R1, R2, alpha=1.4, c1=1.5, c2=1.5)
    assert v == pytest.approx([0.505, -1.64])


def test_velocity_bound() -> None:
    v = update_velocity(V, X, P, G, R1, R2, alpha=1.4, c1=1.5, c2=1.5, vmax=0.5)
    assert v == pytest.approx([0.5, -0.5])
    small = update_velocity(V, X, P, G, R1, R2, alpha=1.4, c1=1.5, c2=1.5, vmax=10.0)
    assert small == pytest.approx([0.505, -1.64])


def test_position_update_clamps_to_unit_interval() -> None:
    assert update_position(X, np.array([0.505, -1.64])) == pytest.approx([1.0, 0.0])
    assert update_position(np.array([0.2, 0.3]), np.array([0.1, 0.1])) == pytest.approx([0.3, 0.4])


def test_absorbing_walls_zero_only_clamped_coordinates() -> None:
    x = np.array([0.5, 0.9, 0.2])
    v = np.array([0.6, -0.5, 0.1])
    assert absorb_at_walls(x, v) == pytest.approx([0.0, -0.5, 0.1])


def test_mask_threshold_is_strict() -> None:
    assert position_to_mask(np.array([0.5, 0.5000001, 0.0, 1.0])) == [0, 1, 0, 1]


# --- Algorithm 1 semantics ---


def reference_generation(rng: np.random.Generator, x, v, p, p_fit, g, g_fit, fitness, alpha, cfg: PSOConfig):
    """An independent, loop-by-loop transcription of one generation of Algorithm 1."""
    p, p_fit, g = p.copy(), p_fit.copy(), g.copy()
    for j, phi in enumerate(fitness):
        if phi > p_fit[j]:
            p[j], p_fit[j] = x[j], phi
        if phi > g_fit:
            g, g_fit = x[j].copy(), phi
    new_v = np.empty_like(v)
    for i in range(len(x)):  # documented draw order: r1 vector, then r2 vector, per particle
        r1 = rng.random(x.shape[1])
        r2 = rng.random(x.shape[1])
        new_v[i] = alpha * v[i] + cfg.c1 * r1 * (p[i] - x[i]) + cfg.c2 * r2 * (g - x[i])
    if cfg.velocity_max is not None:
        new_v = np.clip(new_v, -cfg.velocity_max, cfg.velocity_max)
    moved = x + new_v
    if cfg.wall_velocity == "zero":
        new_v[(moved < 0) | (moved > 1)] = 0.0
    return np.clip(moved, 0, 1), new_v, p, p_fit, g, g_fit


@pytest.mark.parametrize(
    "cfg",
    [
        PSOConfig(particles=5, generations=4),
        PSOConfig(particles=3, generations=3, velocity_max=0.3, wall_velocity="keep"),
    ],
    ids=["paper", "vmax-keep"],
)
def test_matches_reference_transcription(cfg: PSOConfig) -> None:
    num_units, seed = 7, 42
    rng = np.random.Generator(np.random.PCG64(seed))
    x = rng.random((cfg.particles, num_units))
    v = rng.uniform(-cfg.init_velocity, cfg.init_velocity, x.shape)
    if cfg.velocity_max is not None:
        v = np.clip(v, -cfg.velocity_max, cfg.velocity_max)
    p, p_fit, g, g_fit = x.copy(), np.full(cfg.particles, -math.inf), x[0].copy(), -math.inf
    fit_rng = np.random.default_rng(0)

    searcher = PSOSearcher(num_units, cfg, seed=seed)
    for t in range(cfg.generations):
        trials = searcher.ask()
        assert np.array_equal([tr.position for tr in trials], x)  # exact, not approx
        assert [tr.mask for tr in trials] == [position_to_mask(xi) for xi in x]
        assert [(tr.generation, tr.index) for tr in trials] == [(t, i) for i in range(len(x))]
        fitness = fit_rng.random(cfg.particles).round(1)  # rounding makes ties happen
        fitness[fit_rng.random(cfg.particles) < 0.2] = -math.inf
        for tr in reversed(trials):
            searcher.tell(tr.number, float(fitness[tr.index]))
        alpha = inertia(t, cfg.generations, cfg.inertia_start, cfg.inertia_end)
        x, v, p, p_fit, g, g_fit = reference_generation(rng, x, v, p, p_fit, g, g_fit, fitness, alpha, cfg)
        assert searcher.best() == (position_to_mask(g), g_fit)
        assert searcher.history()[-1]["inertia"] == pytest.approx(alpha)
    assert searcher.is_done()


def test_global_best_starts_as_first_particle() -> None:
    searcher = PSOSearcher(6, PSOConfig(particles=4, generations=2), seed=3)
    first = searcher.ask()
    with pytest.raises(RuntimeError):  # no result yet: best() raises, as for every searcher
        searcher.best()
    for trial in first:  # all failed: p_g stays x_1, with fitness -inf
        searcher.tell(trial.number, -math.inf)
    assert searcher.best() == (first[0].mask, -math.inf)


def test_ties_keep_the_earlier_particle() -> None:
    searcher = PSOSearcher(6, PSOConfig(particles=4, generations=2), seed=3)
    batch = searcher.ask()
    for trial in reversed(batch):  # tell order must not matter, particle order does
        searcher.tell(trial.number, 0.5 if trial.index >= 1 else 0.1)
    assert searcher.best() == (batch[1].mask, 0.5)


def test_history_rows() -> None:
    searcher = PSOSearcher(5, PSOConfig(particles=3, generations=3), seed=0)
    told = [[0.1, 0.4, -math.inf], [0.2, 0.3, 0.25], [0.9, 0.0, 0.5]]
    for values in told:
        for trial in searcher.ask():
            searcher.tell(trial.number, values[trial.index])
    rows = searcher.history()
    assert [r["generation"] for r in rows] == [0, 1, 2]
    assert [r["best_fitness"] for r in rows] == [0.4, 0.4, 0.9]
    assert [r["max_fitness"] for r in rows] == [0.4, 0.3, 0.9]
    assert [r["mean_fitness"] for r in rows] == pytest.approx([0.25, 0.25, 1.4 / 3])
    assert [r["failed"] for r in rows] == [1, 0, 0]
    assert [r["inertia"] for r in rows] == pytest.approx([1.4, 1.05, 0.7])


def test_nan_fitness_is_refused() -> None:
    searcher = PSOSearcher(4, PSOConfig(particles=2, generations=1))
    trial = searcher.ask()[0]
    with pytest.raises(ValueError, match="-inf"):
        searcher.tell(trial.number, math.nan)


def test_state_encodes_minus_inf_as_string() -> None:
    searcher = PSOSearcher(4, PSOConfig(particles=2, generations=2))
    state = json.loads(json.dumps(searcher.state_dict(), allow_nan=False))
    assert state["g_fit"] == "-inf" and state["p_fit"] == ["-inf", "-inf"]


# --- config ---


def test_config_defaults_are_the_papers_and_documented() -> None:
    cfg = PSOConfig()
    assert (cfg.particles, cfg.generations, cfg.c1, cfg.c2) == (10, 12, 1.5, 1.5)
    assert (cfg.inertia_start, cfg.inertia_end, cfg.threshold) == (1.4, 0.7, 0.5)
    assert cfg.velocity_max is None and cfg.budget == 120
    assert all(f.metadata.get("help") for f in fields(PSOConfig))


def test_config_json_round_trip() -> None:
    cfg = PSOConfig(particles=3, velocity_max=0.25, wall_velocity="keep")
    assert PSOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    "bad",
    [{"particles": 0}, {"generations": 0}, {"velocity_max": 0.0}, {"wall_velocity": "bounce"}],
)
def test_invalid_config_is_a_clear_error(bad: dict) -> None:
    with pytest.raises(LayerswarmError, match="invalid PSO config"):
        PSOConfig(**bad)


# --- a cheap synthetic search with a hidden best mask ---

UNITS = 12


def hidden_mask(seed: int) -> np.ndarray:
    return np.random.default_rng(1000 + seed).integers(0, 2, UNITS)


def search(searcher: Searcher, hidden: np.ndarray) -> float:
    """Fitness = fraction of units agreeing with the hidden mask; returns the best found."""
    while not searcher.is_done():
        for trial in searcher.ask():
            searcher.tell(trial.number, float(np.mean(np.array(trial.mask) == hidden)))
    mask, value = searcher.best()
    assert value == float(np.mean(np.array(mask) == hidden))
    return value


def test_pso_finds_the_hidden_mask() -> None:
    # The paper's update (velocity kept at the walls): 20 particles x 30 generations find all
    # 12 bits in 18 of seeds 0-19. The threshold leaves a small margin.
    cfg = PSOConfig(particles=20, generations=30)
    found = [search(PSOSearcher(UNITS, cfg, seed=s), hidden_mask(s)) for s in range(20)]
    assert sum(f == 1.0 for f in found) >= 16
    assert min(found) >= 1 - 2 / UNITS


def test_absorbing_walls_find_the_hidden_mask_more_often() -> None:
    # 10 particles x 30 generations find all 12 bits in ~90% of seeds (16 of seeds 0-19);
    # 20 particles in ~98% (all of seeds 0-19). The threshold leaves a small margin.
    cfg = PSOConfig(particles=10, generations=30, wall_velocity="zero")
    found = [search(PSOSearcher(UNITS, cfg, seed=s), hidden_mask(s)) for s in range(20)]
    assert sum(f == 1.0 for f in found) >= 15
    assert min(found) >= 1 - 1 / UNITS  # the misses are one bit off
    big = PSOConfig(particles=20, generations=30, wall_velocity="zero")
    assert all(search(PSOSearcher(UNITS, big, seed=s), hidden_mask(s)) == 1.0 for s in range(8))


def test_random_search_is_worse_for_the_same_budget() -> None:
    pso_cfg = PSOConfig(particles=10, generations=30)
    rnd_cfg = RandomConfig(trials=pso_cfg.budget, batch_size=10)
    pso = [search(PSOSearcher(UNITS, pso_cfg, seed=s), hidden_mask(s)) for s in range(20)]
    rnd = [search(RandomSearcher(UNITS, rnd_cfg, seed=s), hidden_mask(s)) for s in range(20)]
    assert sum(f == 1.0 for f in pso) > sum(f == 1.0 for f in rnd)
    assert np.mean(pso) > np.mean(rnd)
