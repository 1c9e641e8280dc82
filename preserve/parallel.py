"""A process pool that uses both cores, streams results, and can be interrupted.

Workers are started with the "spawn" method: the siegfried identification
library embeds a Go runtime, and forking a process that has started Go
threads is unsafe. Results arrive unordered as soon as each batch is done,
so callers can report progress and never hold all results at once.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from preserve.errors import ToolFailure

T = TypeVar("T")
R = TypeVar("R")


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when its parent dies (kill -9 included), so no
    orphan keeps writing into a staging folder that recovery is removing."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        # Ctrl-C reaches the whole process group; only the parent decides what it means.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (OSError, AttributeError):
        pass


def _start_worker(initializer, initargs) -> None:
    _die_with_parent()
    if initializer is not None:
        initializer(*initargs)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def batched(items: Iterable[T], max_items: int, max_bytes: int = 0,
            size: Callable[[T], int] = lambda _: 0) -> Iterator[list[T]]:
    """Group items in batches of at most `max_items` items (and about `max_bytes` bytes)."""
    batch: list[T] = []
    total = 0
    for item in items:
        batch.append(item)
        total += size(item)
        if len(batch) >= max_items or (max_bytes and total >= max_bytes):
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def run_batches(
    func: Callable[[list[T]], R],
    batches: Iterable[list[T]],
    *,
    workers: int,
    deadline: Callable[[list[T]], float] | None = None,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
) -> Iterator[R]:
    """Apply `func` to each batch in worker processes; yield results as they complete.

    `deadline(batch)` gives the seconds a batch may take; a batch that takes
    longer means a hung tool: the pool is killed and ToolFailure raised. With
    workers <= 1 everything runs in this process (no pool start-up cost).
    Closing the generator early (an exception, Ctrl-C) terminates the pool.
    """
    if workers <= 1:
        if initializer:
            initializer(*initargs)
        for batch in batches:
            yield func(batch)
        return
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(workers, initializer=_start_worker, initargs=(initializer, initargs))
    try:
        pending: list[tuple[Any, float, list[T]]] = []
        source = iter(batches)
        exhausted = False
        in_flight = workers * 3
        while True:
            while not exhausted and len(pending) < in_flight:
                try:
                    batch = next(source)
                except StopIteration:
                    exhausted = True
                    break
                limit = deadline(batch) if deadline else float("inf")
                pending.append((pool.apply_async(func, (batch,)), limit, batch))
            if not pending:
                break
            # Wait for whichever batch finishes first (poll: results are unordered).
            # The clock restarts at each completion: a timeout means no batch at
            # all finished within the oldest batch's allowance.
            done = None
            started = time.monotonic()
            while done is None:
                for i, (res, _limit, _batch) in enumerate(pending):
                    if res.ready():
                        done = i
                        break
                else:
                    res, limit, batch = pending[0]
                    res.wait(0.005)
                    if time.monotonic() - started > limit:
                        raise ToolFailure(
                            f"a worker took more than {limit:.0f} s on a batch of {len(batch)} "
                            "file(s) and was stopped; a tool is probably hung on one of them",
                            hint="re-run with --workers 1 to find the file, or raise the timeout",
                        )
            res, _limit, _batch = pending.pop(done)
            yield res.get()
        pool.close()
        pool.join()
    finally:
        pool.terminate()
        pool.join()
