"""Getting written bytes onto the disk: early, and then all at once.

A bag is durable before it becomes visible: one syncfs of the staging filesystem before
the rename (storage/local.sync_filesystem). Left to the kernel, the pages of a big ingest
are still dirty when that syncfs comes, and it waits for all of them (0.3 s for the
realistic corpus's 400 MB, issue 11). Each copy therefore asks for its writeback as soon
as it is written (sync_file_range, SYNC_FILE_RANGE_WRITE: start, do not wait), so the
disk works while the other stages do, and the syncfs finds little left. Neither call
changes what is durable when: only the syncfs promises anything.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

SYNC_FILE_RANGE_WRITE = 2


@cache
def libc() -> ctypes.CDLL | None:
    """The C library this process runs with (no ldconfig lookup: it is loaded already)."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def start_writeback(fd: int) -> bool:
    """Start writing a file's dirty pages to disk without waiting; whether the kernel took
    the request (a hint: where the call is missing or fails, the final syncfs writes them)."""
    lib = libc()
    if lib is None or not hasattr(lib, "sync_file_range"):
        return False
    return lib.sync_file_range(fd, ctypes.c_longlong(0), ctypes.c_longlong(0),
                               ctypes.c_uint(SYNC_FILE_RANGE_WRITE)) == 0


def syncfs(path: str | os.PathLike) -> None:
    """Flush everything written on the filesystem holding `path` (os.sync where syncfs is
    missing: slower, as safe)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        lib = libc()
        if lib is None or not hasattr(lib, "syncfs") or lib.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)
