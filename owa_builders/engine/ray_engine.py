"""The Ray engine: each episode a Ray task, at most `num_proc` in flight (default: the cluster's CPUs).

Ray tasks rather than Ray Data: an episode is one unit of work whose output is committed to the output
folder by the task itself (the resume marker), and its order is restored from its name, so nothing is gained
from Ray Data's streaming operators, and tasks keep the per-episode function exactly the local engine's.
Ray retries a task whose worker died (a lost node); an error the conversion raises is not retried and reaches
the caller as itself (our errors pickle), not as Ray's wrapper with the remote traceback.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Iterator


def _import_ray():
    try:
        import ray
    except ImportError as error:
        raise ImportError("the Ray engine needs ray: pip install 'owa-builders[ray]'") from error
    return ray


class RayEngine:
    name = "ray"

    def __init__(self, num_proc: int | None = None, address: str | None = None):
        self.num_proc, self.address = num_proc, address
        self._started = False

    def __enter__(self) -> RayEngine:
        ray = _import_ray()
        if not ray.is_initialized():
            # address None: a local instance of num_proc CPUs (all of them by default); else join that cluster
            ray.init(address=self.address, num_cpus=None if self.address else self.num_proc,
                     include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
            self._started = True
        return self

    def __exit__(self, *exc_info) -> None:
        if self._started:
            _import_ray().shutdown()  # disconnects from a joined cluster; stops only an instance we started

    def map(self, function: Callable[[Any, Any], Any], shared: Any, items: Iterable) -> Iterator:
        """`function(shared, item)` of each item as a Ray task, yielded as they finish; `shared` is put in the
        object store once."""
        ray = _import_ray()
        task = ray.remote(num_cpus=1)(function)
        shared_ref = ray.put(shared)
        limit = self.num_proc or max(1, int(ray.cluster_resources().get("CPU", 1)))
        waiting, running = list(items)[::-1], []
        try:
            while waiting or running:
                while waiting and len(running) < limit:
                    running.append(task.remote(shared_ref, waiting.pop()))
                done, running = ray.wait(running, num_returns=1)
                yield _result(ray, done[0])
        finally:
            for ref in running:  # an error, or the caller stopped: nothing more is converted
                ray.cancel(ref)


def _result(ray, ref) -> Any:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        if error.cause is None:
            raise
        raise error.cause from None
