"""A process pool that uses both cores, streams results, and can be interrupted.

Workers are started with the "spawn" method: the siegfried identification
library embeds a Go runtime, and forking a process that has started Go
threads is unsafe. Results arrive unordered as soon as each batch is done,
so callers can report progress and never hold all results at once.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
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

    `deadline(batch)` gives the seconds a batch may take; when no batch at all
    completes within the oldest one's allowance, a tool is taken to be hung:
    the workers are killed and ToolFailure raised. A worker that dies (a
    crash in a native library, the OOM killer) is reported at once, never
    waited for. With workers <= 1 everything runs in this process. Closing the
    generator early (an exception, Ctrl-C) kills the workers.
    """
    if workers <= 1:
        if initializer:
            initializer(*initargs)
        for batch in batches:
            yield func(batch)
        return
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker,
                               initargs=(initializer, initargs))
    finished = False
    try:
        pending: dict[Future, tuple[float, int]] = {}
        source = iter(batches)
        exhausted = False
        while True:
            while not exhausted and len(pending) < workers * 3:
                try:
                    batch = next(source)
                except StopIteration:
                    exhausted = True
                    break
                limit = deadline(batch) if deadline else float("inf")
                pending[pool.submit(func, batch)] = (limit, len(batch))
            if not pending:
                break
            oldest_limit, oldest_size = next(iter(pending.values()))
            done, _ = wait(pending, timeout=None if oldest_limit == float("inf") else oldest_limit,
                           return_when=FIRST_COMPLETED)
            if not done:
                raise ToolFailure(
                    f"no batch finished within {oldest_limit:.0f} s (a batch of {oldest_size} "
                    "file(s)); a tool is probably hung on one of them, so the workers were stopped",
                    hint="re-run with --workers 1 to find the file")
            for future in done:
                del pending[future]
                try:
                    result = future.result()
                except BrokenProcessPool as e:
                    raise ToolFailure(
                        "a worker process died (a crash in a native tool such as siegfried or "
                        "libmagic, or the system ran out of memory)",
                        hint="see the system log (dmesg); re-run with --workers 1 to find the file"
                    ) from e
                yield result
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _kill(pool)


def _kill(pool: ProcessPoolExecutor) -> None:
    """Stop at once: cancel what is queued and kill the worker processes."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with suppress(Exception):
            process.kill()
    for process in processes:
        with suppress(Exception):
            process.join(5)
