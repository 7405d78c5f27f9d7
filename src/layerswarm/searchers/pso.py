"""Particle swarm optimisation over freeze masks: the paper's Algorithm 1 (docs/concepts/method.md).

Choices where the paper is open, kept fixed so that runs are reproducible:

* Initialisation: positions x_i ~ U(0, 1)^L (``--init baselines``: the first particles then
  moved onto the baseline masks, :meth:`PSOSearcher.place_initial_masks`), then velocities v_i ~ U(-init_velocity,
  init_velocity)^L (clipped to ``velocity_max`` when set), both drawn as one (n, L) array,
  particle by particle. p_i = x_i with f(p_i) = -inf; p_g = x_1 with f(p_g) = -inf.
* Best updates use strict ``>`` in particle order, so ties keep the older best.
* The velocity and position update runs after every generation, the last included (steps
  16-17 sit inside the loop of Algorithm 1); after the last one it is unused but keeps the
  random stream the same as the paper's loop.
* Inertia after generation t (t = 0..G-1): linear from ``inertia_start`` to ``inertia_end``.
* Random draws per update: for each particle in index order, an r1 vector of L draws then
  an r2 vector of L draws (one ``rng.random((n, 2, L))`` call, which is the same stream).
* After the update, velocities are clipped to ``[-velocity_max, velocity_max]`` when set and
  positions to [0, 1]. By default (``wall_velocity="keep"``) that is all, exactly the
  paper's update rules. ``wall_velocity="zero"`` also zeroes the velocity of a clamped
  coordinate (an absorbing wall): a kept velocity points into the wall and, with inertia
  above 1, pins the particle there. On a 12-unit synthetic problem, 10 particles x 30
  generations find the optimum in ~90% of seeds with absorbing walls, ~60% without.
* In :meth:`PSOSearcher.state_dict` non-finite fitnesses are the strings "-inf"/"inf".
* A level space (``--space lr``, :mod:`layerswarm.searchers.space`): x <= threshold is frozen
  and (threshold, 1] is cut into K - 1 equal parts for levels 1..K-1; with the mask space's two
  levels that is the rule above, so the swarm and its random stream do not change.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from layerswarm.searchers.base import (
    BatchSearcher,
    Trial,
    batch_summary,
    decode_float,
    encode_float,
)
from layerswarm.searchers.pso_config import PSOConfig
from layerswarm.searchers.space import LevelSpace

__all__ = [
    "PSOSearcher",
    "absorb_at_walls",
    "inertia",
    "position_to_mask",
    "update_position",
    "update_velocity",
]


# --- The maths, as pure functions so that they can be checked on hand-computed numbers ---


def inertia(t: int, generations: int, start: float = 1.4, end: float = 0.7) -> float:
    """Inertia weight after generation ``t`` (0-based): ``start`` at 0, ``end`` at G-1."""
    if generations <= 1:
        return float(start)
    return float(start - (start - end) * t / (generations - 1))


def update_velocity(
    v: np.ndarray,
    x: np.ndarray,
    p: np.ndarray,
    g: np.ndarray,
    r1: np.ndarray,
    r2: np.ndarray,
    alpha: float,
    c1: float,
    c2: float,
    vmax: float | None = None,
) -> np.ndarray:
    """v <- alpha v + c1 r1 (p - x) + c2 r2 (g - x), then clipped to [-vmax, vmax] if set."""
    new = alpha * v + c1 * r1 * (p - x) + c2 * r2 * (g - x)
    if vmax is not None:
        new = np.clip(new, -vmax, vmax)
    return new


def update_position(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """x <- x + v, clipped to [0, 1] where positions are defined."""
    return np.clip(x + v, 0.0, 1.0)


def absorb_at_walls(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v with 0 where x + v leaves [0, 1], the coordinates that :func:`update_position` clamps.

    Without this, a particle clamped at a wall whose p_i and p_g sit there too keeps a
    velocity into the wall that inertia >= 1 even grows: it cannot move for generations.
    """
    moved = x + v
    return np.where((moved < 0.0) | (moved > 1.0), 0.0, v)


def position_to_mask(x: np.ndarray, threshold: float = 0.5) -> list[int]:
    """Mask of one position: 1 (fine-tune) where x > threshold, else 0 (freeze)."""
    return [int(b) for b in (np.asarray(x) > threshold)]


class PSOSearcher(BatchSearcher):
    """Algorithm 1 as an ask/tell searcher: one ``ask()`` is one generation of n particles."""

    name = "pso"
    config_class = PSOConfig

    def __init__(
        self, num_units: int, config: PSOConfig | None = None, seed: int = 0, space: LevelSpace | None = None
    ) -> None:
        super().__init__(num_units, seed, config, space)
        cfg, n, L = self.config, self.config.particles, num_units
        self._x = self._rng.random((n, L))
        v0 = self._rng.uniform(-cfg.init_velocity, cfg.init_velocity, (n, L))
        self._v = v0 if cfg.velocity_max is None else np.clip(v0, -cfg.velocity_max, cfg.velocity_max)
        self._p = self._x.copy()
        self._p_fit = np.full(n, -math.inf)
        self._g = self._x[0].copy()
        self._g_fit = -math.inf
        self._generation = 0  # generations fully told so far (= index of the next one)

    def place_initial_masks(self, masks: list[tuple[str, list[int]]]) -> list[tuple[str, list[int]]]:
        """The first particles start on ``masks``: x = threshold / 2 for a frozen unit, (1 + threshold) / 2
        for a trained one (0.25 / 0.75; in a level space the middle of the level at the run's rate),
        p_i = x_i; their velocities stay the random draws."""
        thr, taken, space = self.config.threshold, masks[: self.config.particles], self.space
        for i, (_, mask) in enumerate(taken):
            levels = space.levels_of_mask(mask)
            self._x[i] = [space.position_of_level(level, thr) for level in levels]
        self._p, self._g = self._x.copy(), self._x[0].copy()
        self._initial_names = [name for name, _ in taken]
        return masks[len(taken) :]

    # --- ask/tell ---

    def _new_batch(self, first_number: int) -> list[Trial]:
        thr = self.config.threshold
        names = getattr(self, "_initial_names", []) if self._generation == 0 else []
        return [
            self._make_trial(
                self.space.levels_of_position(x, thr),
                number=first_number + i,
                generation=self._generation,
                index=i,
                position=[float(a) for a in x],
                info={"init": names[i]} if i < len(names) else {},
            )
            for i, x in enumerate(self._x)
        ]

    def _finish_batch(self, trials: list[Trial], fitnesses: list[float]) -> None:
        cfg, t = self.config, self._generation
        # Steps 8-13, particle by particle so that the swarm best follows the paper's order.
        for j, phi in enumerate(fitnesses):
            if phi > self._p_fit[j]:
                self._p[j] = self._x[j]
                self._p_fit[j] = phi
            if phi > self._g_fit:
                self._g = self._x[j].copy()
                self._g_fit = phi
        alpha = inertia(t, cfg.generations, cfg.inertia_start, cfg.inertia_end)
        self._history.append(batch_summary(t, fitnesses, self._g_fit, alpha))
        # Steps 16-17: all velocities, then all positions.
        r = self._rng.random((cfg.particles, 2, self.num_units))
        self._v = update_velocity(
            self._v, self._x, self._p, self._g, r[:, 0], r[:, 1],
            alpha, cfg.c1, cfg.c2, cfg.velocity_max,
        )  # fmt: skip
        x_old = self._x
        self._x = update_position(x_old, self._v)
        if cfg.wall_velocity == "zero":
            self._v = absorb_at_walls(x_old, self._v)
        self._generation += 1

    def is_done(self) -> bool:
        return self._generation >= self.config.generations

    def best(self) -> tuple[list[int], float]:
        """Plan (mask, or levels) of the swarm best p_g and f(p_g) (x_1's and -inf while every
        evaluation failed); ``RuntimeError`` before the first generation is told, as for every
        searcher."""
        if self._generation == 0:
            raise RuntimeError(f"{self.name} searcher: no generation has been told yet, so no best mask")
        return self.space.levels_of_position(self._g, self.config.threshold), float(self._g_fit)

    @property
    def generation(self) -> int:
        """Generations fully told so far."""
        return self._generation

    # --- checkpointing ---

    def state_dict(self) -> dict[str, Any]:
        return self._saved_state(
            generation=self._generation,
            x=self._x.tolist(),
            v=self._v.tolist(),
            p=self._p.tolist(),
            p_fit=[encode_float(f) for f in self._p_fit],
            g=self._g.tolist(),
            g_fit=encode_float(self._g_fit),
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore exactly, config included (the saved config wins over the constructor's)."""
        self._load_saved_state(state)
        self._generation = int(state["generation"])
        self._x = np.array(state["x"], dtype=float)
        self._v = np.array(state["v"], dtype=float)
        self._p = np.array(state["p"], dtype=float)
        self._p_fit = np.array([decode_float(f) for f in state["p_fit"]], dtype=float)
        self._g = np.array(state["g"], dtype=float)
        self._g_fit = decode_float(state["g_fit"])
