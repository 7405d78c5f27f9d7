"""Evaluate the trials of a batch in parallel as Ray tasks, on a local Ray or a cluster.

The design leans on Ray for everything a scheduler does:

* The search data is put in the object store once (``ray.put``); each task gets a reference
  to it (boxed in a list, so Ray does not copy it into every call) and each worker process
  fetches and keeps it once, with the evaluator built from a :class:`FitnessSpec`.
* Each evaluation is a task with ``num_cpus`` / ``num_gpus``: Ray runs as many at a time as
  the cluster's resources allow (``num_gpus=0.5`` puts two on a GPU) and sets
  ``CUDA_VISIBLE_DEVICES`` per worker, so ``--device cuda`` is the task's own GPU.
* Faults: a worker returns a failure no retry can mend (a diverged fine-tune, a permanent
  error: :mod:`layerswarm.executors.base`) as its evaluation; ``max_retries`` with
  ``retry_exceptions=True`` makes Ray retry any other exception (CUDA out of memory, a failed
  read) and a worker that died. What still fails after the retries is reported as
  ``fitness=-inf`` with a one-line error.
* Results come back as they finish (``ray.wait``); the searcher does not care about order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

from ..errors import LayerswarmError
from ..fitness.evaluation import Evaluation
from ..searchers.base import Trial
from .base import Executor, describe_error, evaluate_settled, torch_threads
from .spec import EvaluateFn, EvaluatorFactory

log = logging.getLogger(__name__)

# Per worker process: the evaluator of the current search, keyed by the object-store ids of
# its factory and data, so that the model is built and the data fetched once per worker.
_WORKER_CACHE: dict[tuple[str, str], EvaluateFn] = {}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:  # pragma: no cover - ray is an optional extra
        raise LayerswarmError(
            "the ray backend needs Ray: pip install 'layerswarm[ray]', or use --backend local"
        ) from err
    return ray


def _evaluate_in_worker(
    factory_box: list, data_box: list, mask: list[int], epochs: int | None, threads: int | None
) -> Evaluation:
    """The Ray task: one fitness evaluation, on the worker's cached evaluator."""
    import ray

    key = (factory_box[0].hex(), data_box[0].hex())
    evaluate = _WORKER_CACHE.get(key)
    with torch_threads(threads):
        if evaluate is None:
            _WORKER_CACHE.clear()  # a new search: drop the previous one's model and data
            factory, data = ray.get([factory_box[0], data_box[0]])
            evaluate = _WORKER_CACHE[key] = factory(data)
        return evaluate_settled(evaluate, mask, epochs)


class RayExecutor(Executor):
    """Run each trial as a Ray task with the given resources; yield results as they finish.

    Uses the Ray session already initialised in this process if there is one; otherwise
    connects to ``address`` (``auto``, ``ray://host:10001``, ...) or, with ``address=None``,
    starts a local Ray on this machine's cores and GPUs (shut down again by :meth:`close`).
    ``cpus_per_trial`` is also the evaluation's torch thread count, as in the local backend.
    """

    name = "ray"

    def __init__(
        self,
        factory: EvaluatorFactory,
        data: Any,
        retries: int = 1,
        cpus_per_trial: int = 1,
        gpus_per_trial: float = 0.0,
        address: str | None = None,
    ) -> None:
        if cpus_per_trial < 1:
            raise LayerswarmError(f"cpus_per_trial={cpus_per_trial}: pass --cpus-per-trial 1 or more")
        if gpus_per_trial < 0:
            raise LayerswarmError(
                f"gpus_per_trial={gpus_per_trial}: pass --gpus-per-trial 0 or more (0.5 shares a GPU)"
            )
        self._ray = ray = _import_ray()
        self.retries = retries
        self.cpus_per_trial = cpus_per_trial
        self.gpus_per_trial = gpus_per_trial
        self._started = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
            except ConnectionError as err:
                raise LayerswarmError(
                    f"cannot reach a Ray cluster at '{address}': start one with 'ray start --head', or drop "
                    "--address to run Ray locally"
                ) from err
            self._started = True
        elif address:
            log.warning("Ray is already initialised in this process: using it, not --address %s", address)
        try:
            self._check_resources()
        except LayerswarmError:
            self.close()
            raise
        self._remote = ray.remote(_evaluate_in_worker).options(
            num_cpus=cpus_per_trial,
            num_gpus=gpus_per_trial,
            max_retries=retries,
            retry_exceptions=True,
        )
        # Boxed references: a top-level ObjectRef argument would be fetched for every task.
        self._factory_box = [ray.put(factory)]
        self._data_box = [ray.put(data)]

    def _check_resources(self) -> None:
        """Refuse a request no node can ever meet, which Ray would leave pending for ever."""
        total = self._ray.cluster_resources()
        for kind, need, flag in (
            ("CPU", self.cpus_per_trial, "--cpus-per-trial"),
            ("GPU", self.gpus_per_trial, "--gpus-per-trial"),
        ):
            have = total.get(kind, 0.0)
            if need and have < need:
                message = (
                    f"each evaluation asks for {need:g} {kind} but the Ray cluster has {have:g}: "
                    f"lower {flag}, or add nodes with {kind}s"
                )
                if self._started:  # a Ray we started here will not grow
                    raise LayerswarmError(message)
                log.warning("%s (waiting for an autoscaler to add them)", message)

    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, Evaluation]]:
        ray = self._ray
        futures = {
            self._remote.remote(
                self._factory_box, self._data_box, t.unit_levels, t.budget_epochs, self.cpus_per_trial
            ): t
            for t in trials
        }
        try:
            while futures:
                ready, _ = ray.wait(list(futures), num_returns=1)
                for ref in ready:
                    trial = futures.pop(ref)
                    yield trial, self._result(trial, ref)
        finally:
            for ref in futures:  # interrupted: stop the evaluations still running
                ray.cancel(ref, force=True)

    def _result(self, trial: Trial, ref: Any) -> Evaluation:
        """The evaluation, or ``-inf`` with the last error once Ray's retries are spent."""
        exceptions = self._ray.exceptions
        try:
            return self._ray.get(ref)
        except exceptions.RayTaskError as err:  # the evaluation raised: report its own error
            cause = err.cause if isinstance(getattr(err, "cause", None), BaseException) else err
            error = describe_error(cause)
        except exceptions.RayError as err:  # the worker or its node died
            error = describe_error(err)
        log.warning("evaluation %d failed after %d attempts: %s", trial.number, self.retries + 1, error)
        return Evaluation(fitness=-math.inf, error=error, status="failed")

    def close(self) -> None:
        self._factory_box = self._data_box = []
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False
