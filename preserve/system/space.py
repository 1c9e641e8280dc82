"""Disk space: asked before a long write, and a full disk named when it happens anyway.

A full disk used to surface as "internal error: OSError: [Errno 28] ... this is a bug"
(red-team cases 57-59). A writer now checks the free space of where it writes against
what it will write, and turns ENOSPC or an exhausted quota met later (another process
filling the disk meanwhile) into a NoSpace error that names the place, the bytes needed
and that nothing was kept. The writers remove what they wrote before it propagates.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from preserve.errors import NoSpace, StorageUnreachable

FULL = (errno.ENOSPC, errno.EDQUOT)
MARGIN = 16 << 20  # tag files, catalog growth, the filesystem's own needs


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def require_space(path: str | os.PathLike, needed: int, where: str) -> None:
    """Refuse at once if the filesystem of `path` cannot take `needed` bytes."""
    nearest = _nearest_existing(os.fspath(path))
    if os.statvfs(nearest).f_flag & os.ST_RDONLY:
        raise StorageUnreachable(f"{where} is read-only ({nearest}): nothing was written",
                                 hint="mount it writable, or choose another place")
    usage = shutil.disk_usage(nearest)
    if usage.total == 0:  # /proc, /sys: no disk at all
        raise StorageUnreachable(f"{where} is no place for files ({nearest} is on a "
                                 "filesystem of size 0, such as /proc); nothing was written",
                                 hint="choose a folder on a disk")
    free = usage.free
    if free < needed + MARGIN:
        raise NoSpace(f"no space left on {where}: {needed:,} bytes needed and a margin of "
                      f"{MARGIN >> 20} MiB, {free:,} free; nothing was written",
                      hint="free some space (or choose another place) and run the command "
                           "again")


@contextmanager
def full_disk_named(where: str, needed: int) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT raised inside into NoSpace naming `where`."""
    try:
        yield
    except OSError as e:
        if e.errno == errno.EROFS:
            raise StorageUnreachable(f"{where} became read-only; nothing was kept",
                                     hint="mount it writable, or choose another place") from e
        if e.errno not in FULL:
            raise
        raise NoSpace(f"no space left on {where}, {needed} bytes needed; nothing was kept",
                      hint="free some space (or choose another place) and run the command "
                           "again") from e
