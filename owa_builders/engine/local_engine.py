"""The local engine: episodes converted in this process, or in `num_proc` forked processes."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import multiprocess

_task: Callable[[Any], Any] | None = None  # in each worker: the function with its shared argument


def _install(function: Callable, shared: Any) -> None:
    global _task
    _task = lambda item: function(shared, item)  # noqa: E731 (set once per worker, called per item)


def _run(item: Any) -> Any:
    return _task(item)


class LocalEngine:
    name = "local"

    def __init__(self, num_proc: int | None = None):
        self.num_proc = num_proc or 1

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def map(self, function: Callable[[Any, Any], Any], shared: Any, items: Iterable) -> Iterator:
        """`function(shared, item)` of each item, yielded as they finish; `shared` reaches each process once
        (forked: not pickled)."""
        items = list(items)
        if self.num_proc == 1 or len(items) <= 1:
            yield from (function(shared, item) for item in items)
            return
        context = multiprocess.get_context("fork")
        with context.Pool(min(self.num_proc, len(items)), initializer=_install, initargs=(function, shared)) as pool:
            yield from pool.imap_unordered(_run, items)
            pool.close()  # done: the workers exit by themselves (leaving the block would terminate them)
            pool.join()
