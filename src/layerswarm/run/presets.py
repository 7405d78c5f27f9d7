"""Named presets of ``layerswarm search``: a set of option values under one flag.

``--preset paper`` is the paper's Algorithm 1 exactly (docs/concepts/method.md): random initial
positions, n = 10 particles, G = 12 generations, maxEpoch = 5 fitness epochs, no final selection, no
baselines (the searched mask answers), a 110-epoch final fine-tune, and the paper's optimiser
(``--recipe paper``). A preset fills only the options not given on the command line: an
explicit flag still wins.
The preset's name is recorded in ``config.json`` (``preset``).
"""

from __future__ import annotations

from typing import Any

from ..errors import LayerswarmError

# option name (the click keyword of ``layerswarm search``) -> value
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "searcher": "pso", "budget": None, "particles": 10, "generations": 12,
        "c1": 1.5, "c2": 1.5, "inertia_start": 1.4, "inertia_end": 0.7, "velocity_max": None,
        "fitness_epochs": 5, "fitness_steps": None, "fitness_repeats": 1, "fitness_score": "accuracy",
        "final_epochs": 110, "train_recipe": "paper",
        "init": "random", "final_select": 0, "select_epochs": None, "patience": 0, "baselines": "none", "answer": "mask",
        "space": "mask", "ladder": None,
    },
}

# an option the preset leaves alone when the user gave its alternative (a budget in steps)
ALTERNATIVES: dict[str, tuple[str, ...]] = {"fitness_epochs": ("fitness_steps",), "fitness_steps": ("fitness_epochs",)}


def apply_preset(kw: dict[str, Any], given: set[str]) -> set[str]:
    """Set the options of the preset named by ``kw["preset"]`` that are not in ``given`` (the
    options on the command line); returns the names it set, for they now count as given."""
    name = kw.get("preset")
    if name is None:
        return set()
    if name not in PRESETS:
        raise LayerswarmError(f"unknown preset '{name}': use {' or '.join(PRESETS)}")
    applied = set()
    for option, value in PRESETS[name].items():
        if option in kw and option not in given and not given & set(ALTERNATIVES.get(option, ())):
            kw[option] = value
            applied.add(option)
    return applied | {"preset"}
