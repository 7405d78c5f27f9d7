"""How the mask is searched (:class:`SearchConfig`), in groups: the searcher (``method``), where
evaluations run (``executor``), what a fitness is (``fitness``), the re-evaluation before the
final fine-tune (``selection``) and which fine-tune answers (``outcome``).

Torch- and numpy-free, as :mod:`layerswarm.run.config`, which holds it in a run's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config_utils import JsonConfig, help_field, refuse_invalid
from ..fitness.evaluation import FITNESS_SCORES
from ..searchers.space import SPACES, space_of
from .answer import ANSWERS
from .failures import DEFAULT_MAX_FAILED_SHARE

# layerswarm.searchers.INITS, here without numpy (tests/test_cli_defaults.py checks they agree)
INITS = ("random", "baselines")


@dataclass
class SearcherConfig(JsonConfig):
    """The searcher, its options, where it starts, when it stops, and what it chooses per unit."""

    name: str = help_field(
        "pso",
        "searcher (docs/concepts/searchers.md): pso (the paper's, measured best: "
        "docs/concepts/defaults.md), random, tpe, ga, greedy, exhaustive, or one added with "
        "register_searcher",
    )
    options: dict = help_field(
        None,
        "the searcher's options, e.g. PSO's particles, generations, c1, c2; empty: its own "
        "defaults (PSO: the paper's 10 x 12)",
        default_factory=dict,
    )
    init: str = help_field(
        "random",
        "first masks asked: 'random' (the paper's, measured better with the swarm: "
        "docs/concepts/defaults.md) or 'baselines' (linear, full and last-k, k = 1, 2, 4, "
        "units/4, among them, so the search's best fitness is never below theirs)",
    )
    patience: int = help_field(
        3,
        "end the search after this many generations (batches of asks) in a row without a "
        "better fitness; 0: off, the whole budget (the paper)",
    )
    space: str = help_field(
        "mask",
        "what the search chooses per unit: 'mask', frozen or fine-tuned (the paper), or "
        "'lr', a level of --ladder: frozen, or fine-tuned at lr x that multiplier "
        "(best_mask.json: lr_multipliers)",
    )
    ladder: list[float] | None = help_field(
        None,
        "the learning-rate multipliers of --space lr, rising from 0 (frozen) and holding 1 "
        "(default 0,0.3,1,3); mask space: none",
    )

    def __post_init__(self) -> None:
        refuse_invalid(
            "searcher config",
            {
                f"init must be one of {', '.join(INITS)} (--init)": self.init not in INITS,
                "patience must be >= 0 (--patience; 0: off)": self.patience < 0,
                f"space must be one of {', '.join(SPACES)} (--space)": self.space not in SPACES,
            },
        )
        # the ladder is saved resolved (a later default cannot change a run on resume), and
        # checked here
        if self.space != "mask" or self.ladder is not None:
            self.ladder = list(space_of(self).ladder)


@dataclass
class ExecutorConfig(JsonConfig):
    """Where fitness evaluations run, on how much, and how failures are met."""

    backend: str = help_field("local", "where evaluations run: local (here, one at a time) or ray (in parallel)")
    address: str | None = help_field(
        None, "Ray cluster to join (auto, ray://HOST:10001); default: start Ray on this machine"
    )
    cpus_per_trial: int | None = help_field(
        None,
        "CPU cores per evaluation, also its torch thread count; default: torch's own (all "
        "cores) locally, 1 per Ray task. CPU results depend on the thread count: give both "
        "backends the same number to get equal results",
    )
    gpus_per_trial: float = help_field(0.0, "GPUs per Ray evaluation (0.5: two share a GPU); needs --device cuda")
    retries: int = help_field(1, "retries of an evaluation that raises before it counts as failed")
    max_failed_share: float = help_field(
        DEFAULT_MAX_FAILED_SHARE,
        "stop (exit 1, resumable) when more than this share of the evaluations has failed, or "
        "every one of the first batch (docs/guides/faults.md); 1: only the latter",
    )

    def __post_init__(self) -> None:
        refuse_invalid(
            "executor config",
            {
                "retries must be >= 0 (--retries)": self.retries < 0,
                "cpus_per_trial must be >= 1 or None (--cpus-per-trial)": self.cpus_per_trial is not None
                and self.cpus_per_trial < 1,
                "gpus_per_trial must be >= 0 (--gpus-per-trial)": self.gpus_per_trial < 0,
                "max_failed_share must be between 0 and 1 (--max-failed-share)": not 0 <= self.max_failed_share <= 1,
            },
        )


@dataclass
class FitnessConfig(JsonConfig):
    """What one mask's fitness is: its budget, how many evaluations it averages, its score."""

    steps: int | None = help_field(
        None,
        "the fitness budget in optimizer steps instead of --fitness-epochs (an epoch is "
        "another number of steps on every dataset size): ceil(steps / steps per epoch) epochs, "
        "both saved in config.json",
    )
    repeats: int = help_field(
        1,
        "evaluations averaged per fitness, each with other seeds for the new head and the "
        "batch order (1: one evaluation, as the paper)",
    )
    score: str = help_field(
        "accuracy",
        "the fitness of a mask: 'accuracy', validation accuracy after the fitness "
        "fine-tune (the paper), or 'trend', that plus its rise since the middle epoch, which "
        "ranks a still-climbing mask above one that has flattened (docs/concepts/fitness.md)",
    )

    def __post_init__(self) -> None:
        refuse_invalid(
            "fitness config",
            {
                "steps must be >= 1 or None (--fitness-steps)": self.steps is not None and self.steps < 1,
                "repeats must be >= 1 (--fitness-repeats)": self.repeats < 1,
                f"score must be one of {', '.join(FITNESS_SCORES)} (--fitness-score)": self.score not in FITNESS_SCORES,
            },
        )


@dataclass
class SelectionConfig(JsonConfig):
    """The final selection: the best masks evaluated again, with fresh seeds, before the final fine-tune."""

    top: int = help_field(
        0,
        "before the final fine-tune, re-evaluate the top K distinct masks with fresh seeds "
        "and fine-tune the best by the mean of all its evaluations (phase 'selection' in "
        "evaluations.jsonl); 0: off (the paper)",
    )
    repeats: int = help_field(1, "fresh-seed evaluations of each mask in the final selection")
    epochs: int | None = help_field(
        None,
        "epochs of each final-selection evaluation (default: the fitness budget, and a "
        "mask's score is the mean of its search and selection fitness); another budget ranks "
        "the candidates by the selection's fitness alone (10 ranks masks better than 5: "
        "docs/concepts/fitness.md)",
    )

    def __post_init__(self) -> None:
        refuse_invalid(
            "selection config",
            {
                "top must be >= 0 (--final-select; 0: off)": self.top < 0,
                "repeats must be >= 1 (--select-repeats)": self.repeats < 1,
                "epochs must be >= 1 or None (--select-epochs)": self.epochs is not None and self.epochs < 1,
            },
        )


@dataclass
class AnswerConfig(JsonConfig):
    """What the run fine-tunes beside the searched mask, and which fine-tune is its answer."""

    baselines: str = help_field(
        "linear,full,last-k",
        "after the final fine-tune, fine-tune these with the same recipe, "
        "split and seed and compare (DIR/baselines/NAME/; last-k: k = half the units, last-k:K "
        "another k; any strategy, e.g. l2sp); none: skip (the paper)",
    )
    answer: str = help_field(
        "validation",
        "the run's answer: 'validation', the best by final validation accuracy "
        "among the searched mask and the baselines (answer.json; predict and export follow it; "
        "the test split only reports it), or 'mask', the searched mask's fine-tune (the paper)",
    )

    def __post_init__(self) -> None:
        refuse_invalid(
            "answer config",
            {
                f"answer must be one of {', '.join(ANSWERS)} (--answer)": self.answer not in ANSWERS,
            },
        )


@dataclass
class SearchConfig(JsonConfig):
    """How the mask is searched, and what the run does after the search.

    The defaults are the search measured best (docs/concepts/defaults.md: 3 seeds against the
    baselines on both benchmarks): the paper's swarm (10 x 12 PSO from a random start, 5 fitness
    epochs), ended after 3 generations without a better fitness (on Fashion-MNIST it had found
    its mask by then on every seed; on digits it stops 1.4-4.4 final fine-tunes earlier, with
    masks as good), then the baselines linear, full and last-k fine-tuned like the searched mask,
    and the best of them by final validation accuracy as the run's answer.
    ``RunConfig.from_preset("paper")`` is the paper's Algorithm 1 exactly (no early end, no
    baselines, the searched mask answers).

    A saved configuration without ``patience``, ``baselines`` or ``answer`` (a run from before
    they existed) reads as that run ran: ``legacy``. One of the earlier flat layout reads back
    into the groups: ``moved``.
    """

    method: SearcherConfig = field(default_factory=SearcherConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    fitness: FitnessConfig = field(default_factory=FitnessConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    outcome: AnswerConfig = field(default_factory=AnswerConfig)

    # what a saved search without the key did: it was written before the setting existed
    legacy: ClassVar[dict[str, Any]] = {"method.patience": 0, "outcome.baselines": "none", "outcome.answer": "mask"}
    # the flat layout's keys (config.json before the groups): where each lives now
    moved: ClassVar[dict[str, str]] = {
        "searcher": "method.name",
        **{name: f"method.{name}" for name in ("options", "init", "patience", "space", "ladder")},
        **{name: f"executor.{name}" for name in ExecutorConfig.__dataclass_fields__},
        "fitness_steps": "fitness.steps",
        "fitness_repeats": "fitness.repeats",
        "fitness_score": "fitness.score",
        "final_select": "selection.top",
        "select_repeats": "selection.repeats",
        "select_epochs": "selection.epochs",
        "baselines": "outcome.baselines",
        "answer": "outcome.answer",
    }
