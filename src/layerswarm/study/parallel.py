"""A study's trials as Ray tasks: the trials of a batch (a PSO generation) run at once.

The objective is shipped to the workers once (``ray.put``; cloudpickle takes a closure with
the model it trains); each task calls it on one trial, in a worker with ``cpus_per_trial``
torch threads and ``gpus_per_trial`` GPUs. An exception in the objective comes back as the
trial's error, as in the local loop; a worker that dies is retried by Ray, then recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import LayerswarmError
from ..executors import describe_error, torch_threads
from .trial import Trial

Outcome = tuple[Any, str | None, float]  # (value, error, seconds)


def _call(objective_box: list, trial: Trial, threads: int) -> Outcome:
    """The Ray task: the objective on one trial; its exception as a one-line error."""
    import ray

    objective = ray.get(objective_box[0])
    start = time.monotonic()
    with torch_threads(threads):
        try:
            return objective(trial), None, time.monotonic() - start
        except Exception as err:  # noqa: BLE001 - recorded as the trial's failure, as locally
            return None, describe_error(err), time.monotonic() - start


class RayTrials:
    """Runs ``objective`` on trials as Ray tasks, on the Ray of this process, a cluster at
    ``address``, or a local Ray started here (and shut down by :meth:`close`)."""

    def __init__(
        self,
        objective: Callable[[Trial], Any],
        cpus_per_trial: int = 1,
        gpus_per_trial: float = 0.0,
        address: str | None = None,
        retries: int = 1,
    ) -> None:
        try:
            import ray
        except ImportError as err:  # pragma: no cover - ray is an optional extra
            raise LayerswarmError(
                "backend='ray' needs Ray: pip install 'layerswarm[ray]', or use backend='local'"
            ) from err
        if cpus_per_trial < 1 or gpus_per_trial < 0:
            raise LayerswarmError("cpus_per_trial must be >= 1 and gpus_per_trial >= 0 (0.5 shares a GPU)")
        self._ray, self._threads, self._started = ray, cpus_per_trial, False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
            except ConnectionError as err:
                raise LayerswarmError(
                    f"cannot reach a Ray cluster at '{address}': start one with 'ray start "
                    "--head', or pass address=None to run Ray here"
                ) from err
            self._started = True
        self._remote = ray.remote(_call).options(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=retries)
        self._objective_box = [ray.put(objective)]  # boxed: not fetched again for every task

    def run(self, trials: list[Trial]) -> Iterator[tuple[Trial, Outcome]]:
        """Each trial's outcome as soon as it is done (any order)."""
        ray = self._ray
        futures = {self._remote.remote(self._objective_box, trial, self._threads): trial for trial in trials}
        try:
            while futures:
                ready, _ = ray.wait(list(futures), num_returns=1)
                trial = futures.pop(ready[0])
                try:
                    yield trial, ray.get(ready[0])
                except ray.exceptions.RayError as err:  # the worker or its node died
                    yield trial, (None, describe_error(err), 0.0)
        finally:
            for ref in futures:  # interrupted: stop what still runs
                ray.cancel(ref, force=True)

    def close(self) -> None:
        self._objective_box = []
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
