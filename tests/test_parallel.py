"""The worker pool: results stream back; a dead or hung worker is a tool failure, fast."""

from __future__ import annotations

import os
import time

import pytest

from preserve.errors import ToolFailure
from preserve.parallel import batched, run_batches


def square_all(batch):
    return [x * x for x in batch]


def die_on_13(batch):
    if 13 in batch:
        os._exit(9)  # as a segfault in a native library would
    return batch


def hang_on_13(batch):
    if 13 in batch:
        time.sleep(60)
    return batch


@pytest.mark.parametrize("workers", [1, 2])
def test_all_results_come_back(workers):
    got = sorted(x for r in run_batches(square_all, batched(range(100), 7), workers=workers)
                 for x in r)
    assert got == [x * x for x in range(100)]


def test_a_dead_worker_is_reported_at_once():
    started = time.monotonic()
    with pytest.raises(ToolFailure, match="worker process died"):
        for _ in run_batches(die_on_13, batched(range(40), 5), workers=2):
            pass
    assert time.monotonic() - started < 30


def test_a_hung_worker_is_stopped_at_its_deadline():
    started = time.monotonic()
    with pytest.raises(ToolFailure, match="hung"):
        for _ in run_batches(hang_on_13, batched(range(40), 5), workers=2,
                             deadline=lambda batch: 2.0):
            pass
    assert time.monotonic() - started < 20


def test_batches_respect_count_and_bytes():
    assert [len(b) for b in batched(range(10), 4)] == [4, 4, 2]
    sizes = [len(b) for b in batched([10, 10, 10, 10], 100, max_bytes=20, size=lambda x: x)]
    assert sizes == [2, 2]


def go_settings(batch):
    return [os.environ.get("GOGC") for _ in batch]


def test_siegfried_workers_start_with_a_tight_go_heap_target(monkeypatch):
    """Go reads the environment a process starts with, so the target must be set in the
    parent before the workers are spawned (setting it inside a worker has no effect)."""
    from preserve.domain.identify import siegfried_environment

    monkeypatch.delenv("GOGC", raising=False)
    siegfried_environment()
    seen = {g for r in run_batches(go_settings, [[1], [2]], workers=2) for g in r}
    assert seen == {"10"}
    monkeypatch.setenv("GOGC", "80")  # the archivist's own setting wins
    siegfried_environment()
    assert os.environ["GOGC"] == "80"


def test_a_written_copy_starts_its_writeback_at_once(tmp_path):
    """Ingest asks the kernel to start writing each copy as soon as it is written, so the
    syncfs before the rename does not wait for the whole ingest's dirty pages (issue 11).
    On Linux the request must really reach the kernel: a silent no-op would cost every
    ingest the wait again."""
    from preserve.system.writeback import libc, start_writeback, syncfs

    assert libc() is not None and hasattr(libc(), "sync_file_range")
    fd = os.open(tmp_path / "copy", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, os.urandom(1 << 20))
        assert start_writeback(fd) is True
    finally:
        os.close(fd)
    syncfs(tmp_path)  # what decides durability, after the hint
    assert (tmp_path / "copy").stat().st_size == 1 << 20


def test_a_tool_started_as_ctrl_c_stops_every_tool_is_stopped_too():
    """Ctrl-C between a tool's start and its registration (the race that let an
    interrupted migration wait for its tool): the tool is stopped all the same."""
    import subprocess

    from preserve.system.tools import _tracked, allow_tools, kill_all

    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)  # started, not yet known
    kill_all()  # Ctrl-C now
    try:
        with _tracked(proc):  # the thread that started it registers it
            assert proc.wait(timeout=10) < 0  # killed, not left to run its 60 s
    finally:
        allow_tools()
