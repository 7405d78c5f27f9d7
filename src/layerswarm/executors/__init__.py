"""Where fitness evaluations run: in this process, or on Ray. A registry, like timm's models."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import LayerswarmError
from ..registry import Registry
from .base import Executor, describe_error, evaluate_settled, failure_kind, torch_threads
from .local import LocalExecutor, evaluate_with_retries
from .spec import EvaluateFn, EvaluatorFactory, FitnessSpec

if TYPE_CHECKING:
    from ..data.imageset import SearchSplits
    from ..models.bundle import ModelBundle

__all__ = [
    "EXECUTORS",
    "EvaluateFn",
    "EvaluatorFactory",
    "Executor",
    "FitnessSpec",
    "LocalExecutor",
    "create_executor",
    "describe_error",
    "evaluate_settled",
    "evaluate_with_retries",
    "failure_kind",
    "register_executor",
    "torch_threads",
]

# builder(factory, data, bundle, on_epoch, retries=, cpus_per_trial=, gpus_per_trial=, address=)
ExecutorBuilder = Callable[..., Executor]
EpochCallback = Callable[[dict], None]
EXECUTORS: Registry[ExecutorBuilder] = Registry("backend")


def register_executor(name: str) -> Callable[[ExecutorBuilder], ExecutorBuilder]:
    """Decorator: make a backend available as ``--backend NAME`` (a taken name is refused)."""
    return EXECUTORS.register(name)


@register_executor("local")
def _local(
    factory: EvaluatorFactory,
    data: SearchSplits,
    bundle: ModelBundle | None = None,
    on_epoch: EpochCallback | None = None,
    *,
    retries: int = 1,
    cpus_per_trial: int | None = None,
    **_: object,
) -> Executor:
    # Reuse the driver's model when the factory can take it: no second copy in memory.
    evaluate = factory(data, bundle, on_epoch) if isinstance(factory, FitnessSpec) else factory(data)
    # MaskFitness takes list[float] masks (multipliers) where EvaluateFn says list[int]
    return LocalExecutor(
        evaluate,  # type: ignore[arg-type]
        retries=retries,
        threads=cpus_per_trial,
    )


@register_executor("ray")
def _ray(
    factory: EvaluatorFactory,
    data: SearchSplits,
    bundle: ModelBundle | None = None,
    on_epoch: EpochCallback | None = None,
    *,
    retries: int = 1,
    cpus_per_trial: int | None = None,
    gpus_per_trial: float = 0.0,
    address: str | None = None,
    **_: object,
) -> Executor:
    from .ray import RayExecutor  # Ray is an optional extra: import it only when asked for

    # on_epoch (per-epoch progress) would have to run in the workers: only whole evaluations
    # are reported under Ray.
    # "auto" is fine: a task that asked for no GPU sees none and takes the CPU
    if (
        isinstance(factory, FitnessSpec)
        and factory.fitness.runtime.device not in ("cpu", "auto")
        and not gpus_per_trial
    ):
        # Ray hides every GPU from a task that asked for none: fail here, not in each worker
        raise LayerswarmError(
            f"--device {factory.fitness.runtime.device} under Ray needs GPUs per evaluation: "
            "pass --gpus-per-trial 1 (or 0.5 to share a GPU), or --device cpu"
        )

    return RayExecutor(
        factory,
        data,
        retries=retries,
        cpus_per_trial=1 if cpus_per_trial is None else cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        address=address,
    )


def create_executor(
    backend: str,
    factory: EvaluatorFactory,
    data: SearchSplits,
    bundle: ModelBundle | None = None,
    on_epoch: EpochCallback | None = None,
    **options: object,
) -> Executor:
    """The executor registered as ``backend``, evaluating ``factory(data)`` with ``options``.

    ``bundle`` (a model already built in this process) and ``on_epoch`` (called after each
    training epoch of an evaluation) serve in-process backends only.
    """
    return EXECUTORS.lookup(backend)(factory, data, bundle, on_epoch, **options)
