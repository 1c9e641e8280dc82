"""Locks: one writer at a time per AIP and storage location.

Two `replicate` runs at once, one of them interrupted, left a replica recorded as
verified with half its objects gone (red-team case 56): the survivor's clean-up of
"leftovers" deleted the other run's upload. Every writer of a location (replicate,
the copies ingest makes, repair) now holds the lock of each AIP it writes there.

The locks are `flock`s on files under <repo>/locks/: the kernel releases them when
their process ends, however it ends (kill -9 included), so a lock is never stale. The
files themselves stay (unlinking one would let a third process lock a new file while
a second waits on the old one); they are empty, one per AIP and location written.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from preserve.errors import Busy
from preserve.system import fstree


@contextmanager
def writer_lock(repo_root: Path, location: str, aip_id: str, *, wait: bool = True,
                catalog=None) -> Iterator[None]:
    """Hold the lock of (location, AIP), waiting for another holder to finish (or, with
    wait=False, raising Busy at once). With a shared (PostgreSQL) catalog, also the
    database's lock of the same name, which writers on other machines take too."""
    folder = Path(repo_root) / "locks" / location
    fstree.makedirs(folder)
    fd = os.open(folder / f"{aip_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    busy = Busy(f"another run is writing AIP {aip_id} at location '{location}'",
                hint="wait for it to finish")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise busy from None
        if catalog is None or not catalog.server:
            yield
            return
        with catalog.advisory_lock(f"writer:{location}:{aip_id}", wait=wait) as held:
            if not held:
                raise busy
            yield
    finally:
        os.close(fd)  # releases the lock


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs (the owner of a staging folder, say)."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# The only names preserve gives its work in a repository's staging/ (an ingest's object
# and lock, a later version's, a repair's or a migration's working folder) and in a
# location's staging area (a version folder or a file copied beside its place, named by
# the pid). Nothing else there is preserve's: a person put it, and it is never removed
# (red-team 2026-12 case 31: a user's export under staging/ was deleted as "debris").
OWN_STAGING = re.compile(rf"{_UUID}(?:\.v[1-9][0-9]*)?(?:\.lock)?"
                         rf"|(?:repair|migrate|unpack|extract|access)-[0-9]+-[0-9a-f-]+"
                         r"|logdoc-[0-9]+-[0-9a-f]+\.json")
OWN_LOCATION_STAGING = re.compile(r"(?:v[1-9][0-9]*|file-[0-9a-f]{32})\.[0-9]+|check-"
                                  + _UUID)


def owner_gone(name: str) -> bool:
    """For leftovers named '<anything>.<pid>' or '<prefix>-<pid>-<anything>': whether the
    process that made it has ended (and what it left is debris). Only names of
    preserve's own (OWN_STAGING, OWN_LOCATION_STAGING) can be debris at all."""
    if not (OWN_STAGING.fullmatch(name) or OWN_LOCATION_STAGING.fullmatch(name)):
        return False
    match = re.search(r"(?:\.|^repair-|^migrate-|^unpack-|^extract-|^access-)(\d+)(?:-|$)",
                      name)
    return match is not None and not pid_alive(int(match.group(1)))
