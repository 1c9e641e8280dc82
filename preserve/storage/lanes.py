"""Work on object stores in lanes, several at once (issue 29): each piece of work (an
AIP's copy, its audit, a move off a retiring medium) waits a few round trips in turn,
which a WAN makes the cost of every small AIP; lanes side by side hide them. Used by
replicate, media migration and the audit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from preserve.domain.progress import Progress
from preserve.repository import Repository

# Replicas at an object store read at once (an audit's, a check's): requests in flight
# stay each location's `concurrency`, shared by all of them.
READS_AT_ONCE = 8


def in_lanes(repo: Repository, lanes: list, at_once: int, work, stop: threading.Event) -> None:
    """`work(items, repository)` for each lane, `at_once` at a time. Each thread has its
    own catalog connection (a Repository); a location's `concurrency` and part buffers
    are shared by all (s3_uploads). Ctrl-C, or a lane's failure, sets `stop`: every lane
    ends where it is (each undoes or keeps what one alone would), and the failure is
    raised."""
    here = threading.local()
    opened: list[Repository] = []
    guard = threading.Lock()

    def lane(items: list) -> None:
        if not hasattr(here, "repo"):
            here.repo = Repository(repo.root)
            with guard:
                opened.append(here.repo)
        work(items, here.repo)

    try:
        with ThreadPoolExecutor(at_once) as pool:
            futures = [pool.submit(lane, items) for items in lanes]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                stop.set()
                for future in futures:
                    future.cancel()
                raise
    finally:
        for opened_repo in opened:
            opened_repo.close()


class Locked:
    """A progress bar advanced from several threads."""

    def __init__(self, progress: Progress):
        self.progress, self._lock = progress, threading.Lock()

    def start(self, phase, files, nbytes) -> None:
        with self._lock:
            self.progress.start(phase, files, nbytes)

    def advance(self, files: int, nbytes: int) -> None:
        with self._lock:
            self.progress.advance(files, nbytes)
