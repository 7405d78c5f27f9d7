"""What a worker needs to rebuild the fitness function exactly as the driver builds it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..data.imageset import SearchSplits
from ..fitness.evaluation import Evaluation
from ..fitness.mask_fitness import LevelFitness, MaskFitness
from ..models.bundle import ModelBundle, ModelConfig, build_bundle
from ..speed import build_fitness
from ..training import TrainConfig

# evaluate(mask, epochs) -> Evaluation (a level space's: levels); epochs None: the search default
EvaluateFn = Callable[[list[int], "int | None"], Evaluation]
# factory(data) -> evaluate: picklable, so that Ray workers can build their own evaluator
EvaluatorFactory = Callable[[SearchSplits], EvaluateFn]


@dataclass(frozen=True)
class FitnessSpec:
    """A picklable recipe for :class:`MaskFitness`: same seed, same model init, same config.

    Called in a Ray worker it builds the bundle there (the pretrained weights and the seeded
    head come out bit-identical), so that workers and the local backend agree exactly.
    """

    model: ModelConfig
    fitness: TrainConfig
    num_classes: int
    seed: int = 0
    speed: object = None  # layerswarm.speed.SpeedConfig: prefix cache, subset fitness, early stopping
    repeats: int = 1  # evaluations averaged per fitness (other seeds: MaskFitness)
    seed_offset: int = 0  # the first repeat's seed index (a final selection's fresh seeds)
    score: str = "accuracy"  # how the validation curve becomes the fitness (layerswarm.fitness.evaluation.curve_score)
    # a level space's lr multipliers (--space lr): trials carry levels; None: trials are masks
    ladder: tuple[float, ...] | None = None

    def __call__(
        self, data: SearchSplits, bundle: ModelBundle | None = None, on_epoch: Callable[[dict], None] | None = None
    ) -> MaskFitness | LevelFitness:
        """The evaluator; ``bundle`` reuses a model already built here (the local backend)."""
        if bundle is None:
            bundle = build_bundle(self.model, self.num_classes, self.fitness, seed=self.seed)
        evaluate = build_fitness(
            bundle,
            data,
            self.fitness,
            self.speed,
            on_epoch=on_epoch,
            repeats=self.repeats,
            seed_offset=self.seed_offset,
            score=self.score,
        )
        return evaluate if self.ladder is None else LevelFitness(evaluate, self.ladder)
