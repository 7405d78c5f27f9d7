"""The searcher race: every searcher, the same budget in fitness-epochs, best fitness vs spent.

Two ways to pay for fitness:

* real: one short fine-tune per new mask (:class:`FitnessTable`, live), and through the
  search driver's memo (:class:`~layerswarm.speed.MemoExecutor`) a mask asked again (PSO
  re-visits masks often) costs nothing, as it would with a result cache;
* a lookup table: :func:`build_table` evaluates *every* mask once with the real fitness
  (affordable for ``--granularity stage``: 8 units, 256 masks) and :func:`table_fitness`
  answers from it. The race then replays each searcher many times at no training cost, and
  since the table holds the real fitness, a searcher sees exactly what it would see live.

Budget accounting: a *new* mask costs ``fitness_epochs``; a repeated one costs nothing. A
searcher is stopped when its next new mask would exceed the budget, or when it is done.

One module per job: :mod:`.table` (the fitness table), :mod:`.runner` (racing searchers),
:mod:`.stats` (summary, table and plot), :mod:`.finals` (final fine-tunes of the best masks)
and :mod:`.command` (the ``layerswarm race`` command).
"""

from ..speed.memo import BudgetSpent
from .command import race_command, race_real, race_table
from .finals import add_final_tests, best_masks_by_searcher, final_tests
from .runner import RaceConfig, RaceRun, parse_entry, race_once, run_race, searcher_config
from .stats import format_summary, plot_race, summarise
from .table import (
    _FITNESS_KEYS,
    FitnessTable,
    _fitness_part,
    _table_header,
    all_masks,
    build_table,
    full_mask,
    load_table,
    mask_key,
    pin_frozen,
    table_fitness,
)

__all__ = [
    "_FITNESS_KEYS",
    "BudgetSpent",
    "FitnessTable",
    "RaceConfig",
    "RaceRun",
    "_fitness_part",
    "_table_header",
    "add_final_tests",
    "all_masks",
    "best_masks_by_searcher",
    "build_table",
    "final_tests",
    "format_summary",
    "full_mask",
    "load_table",
    "mask_key",
    "parse_entry",
    "pin_frozen",
    "plot_race",
    "race_command",
    "race_once",
    "race_real",
    "race_table",
    "run_race",
    "searcher_config",
    "summarise",
    "table_fitness",
]
