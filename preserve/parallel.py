"""A process pool that uses both cores, streams results, and can be interrupted.

Workers are started with the "spawn" method: the siegfried identification
library embeds a Go runtime, and forking a process that has started Go
threads is unsafe. Results arrive unordered as soon as each batch is done,
so callers can report progress and never hold all results at once.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from typing import Any, TypeVar

from preserve.errors import ToolFailure

T = TypeVar("T")
R = TypeVar("R")


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when its parent dies (kill -9 included), so no
    orphan keeps writing into a staging folder that recovery is removing. The parent may
    have died while this worker was starting, before the request: then the worker's parent
    is no longer `parent`, and it leaves at once (red-team case 46: workers killed at that
    moment lived on and wrote 200 files into staging)."""
    import signal

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)
    # Ctrl-C reaches the whole process group; only the parent decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_worker(parent, initializer, initargs) -> None:
    _die_with_parent(parent)
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


class WorkerPool:
    """Worker processes kept for a whole run (one audit visits many replicas), so that no
    replica waits for workers to boot: `start` boots them ahead of need, while the caller
    still plans. Killed (and started again on next use) when a run of batches is abandoned."""

    def __init__(self, workers: int, initializer: Callable[..., Any] | None = None,
                 initargs: tuple = ()):
        self.workers = workers
        self._init = (initializer, initargs)
        self._executor: ProcessPoolExecutor | None = None

    def start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(os.getpid(), *self._init))
            for _ in range(self.workers):  # each submit boots one more worker
                self._executor.submit(os.getpid)
        return self._executor

    def kill(self) -> None:
        if self._executor is not None:
            _kill(self._executor)
            self._executor = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, kind, *_) -> None:
        self.kill() if kind is not None else self.close()


def run_batches(
    func: Callable[[list[T]], R],
    batches: Iterable[list[T]],
    *,
    workers: int,
    deadline: Callable[[list[T]], float] | None = None,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
    pool: WorkerPool | None = None,
    ahead: int = 3,
) -> Iterator[R]:
    """Apply `func` to each batch in worker processes; yield results as they complete.

    `deadline(batch)` gives the seconds a batch may take; when no batch at all
    completes within the oldest one's allowance, a tool is taken to be hung:
    the workers are killed and ToolFailure raised. A worker that dies (a
    crash in a native library, the OOM killer) is reported at once, never
    waited for. With workers <= 1 everything runs in this process. Closing the
    generator early (an exception, Ctrl-C) kills the workers. A given `pool`
    is used (and left running) instead of starting one, whatever `workers` says.
    At most `ahead` batches per worker are in flight (what bounds the memory a stage
    holds when the next one is slower).
    """
    if pool is None and workers <= 1:
        if initializer:
            initializer(*initargs)
        for batch in batches:
            yield func(batch)
        return
    own = pool is None
    pool = pool or WorkerPool(workers, initializer, initargs)
    executor = pool.start()
    finished = False
    try:
        pending: dict[Future, tuple[float, int]] = {}
        source = iter(batches)
        exhausted = False
        while True:
            while not exhausted and len(pending) < pool.workers * ahead:
                try:
                    batch = next(source)
                except StopIteration:
                    exhausted = True
                    break
                limit = deadline(batch) if deadline else float("inf")
                pending[executor.submit(func, batch)] = (limit, len(batch))
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
        if not finished:
            pool.kill()
        elif own:
            pool.close()


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


def in_order(fn, items, stop, threads: int):
    """fn of each item, `threads` at a time, yielded in the items' order; no new item is
    started once `stop()` says so, or once the caller stops reading."""
    if threads <= 1:
        for item in items:
            if stop():
                return
            yield fn(item)
        return
    window: deque = deque()
    with ThreadPoolExecutor(threads) as pool:
        try:
            for item in items:
                if stop():
                    break
                window.append(pool.submit(fn, item))
                if len(window) >= 2 * threads:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()
