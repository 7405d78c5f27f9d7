"""Search plans from your own training code: :func:`create_study`, in optuna's shape.

A study finds the units of any ``nn.Module`` (:mod:`.units`), hands out :class:`Trial` plans
(:mod:`.trial`, a :class:`Plan` from :mod:`.plan`) that ``trial.apply(model)`` puts on the
model, takes the objective's value back, and keeps its records in a run folder
(:mod:`.records`) that ``layerswarm report`` and ``layerswarm export`` read.
"""

from .plan import Plan
from .records import load_plan, load_units
from .study import Study, create_study
from .trial import Trial
from .units import default_head, find_units

__all__ = [
    "Plan",
    "Study",
    "Trial",
    "create_study",
    "default_head",
    "find_units",
    "load_plan",
    "load_units",
]
