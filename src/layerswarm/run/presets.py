"""Named presets: a configuration stated once, for Python and the command line alike.

``paper`` is Algorithm 1 of the paper exactly: random initial positions, n = 10 particles,
G = 12 generations, c1 = c2 = 1.5, inertia 1.4 to 0.7, maxEpoch = 5 fitness epochs, the whole
budget (no patience), no final selection, no baselines (the searched mask answers), a 110-epoch
final fine-tune, and the paper's optimiser (recipe ``paper``).

From Python: ``RunConfig.from_preset("paper", data=...)``; on the command line:
``layerswarm search --preset paper``, where the options given still win and the preset's values
override a ``--config`` file's. The preset's name is recorded in ``config.json`` (``preset``).
"""

from __future__ import annotations

from typing import Any

from ..errors import LayerswarmError

# preset -> the config.json keys it sets (dotted) and their values; every other key keeps its
# default. A ``PART.recipe`` key brings that recipe's settings (training.config.RECIPES) with it.
# A key of the earlier flat layout (``search.patience``) would be read at its place now.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "search.method.name": "pso",
        "search.method.options.particles": 10,
        "search.method.options.generations": 12,
        "search.method.options.c1": 1.5,
        "search.method.options.c2": 1.5,
        "search.method.options.inertia_start": 1.4,
        "search.method.options.inertia_end": 0.7,
        "search.method.options.velocity_max": None,
        "search.method.init": "random",
        "search.method.patience": 0,
        "search.method.space": "mask",
        "search.method.ladder": None,
        "search.fitness.steps": None,
        "search.fitness.repeats": 1,
        "search.fitness.score": "accuracy",
        "search.selection.top": 0,
        "search.selection.epochs": None,
        "search.outcome.baselines": "none",
        "search.outcome.answer": "mask",
        "fitness.recipe": "paper",
        "fitness.epochs": 5,
        "final.recipe": "paper",
        "final.epochs": 110,
    },
}


def preset_values(name: str) -> dict[str, Any]:
    """The dotted config keys preset ``name`` sets, or one line naming the presets."""
    if name not in PRESETS:
        raise LayerswarmError(f"unknown preset '{name}': use {' or '.join(PRESETS)}")
    return PRESETS[name]
