"""Jobs of a shared catalog's queue: the advisory locks that keep two writers of one AIP
apart across machines, and each job's recorded result."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Jobs:
    """Jobs: one part of the Catalog (preserve.catalog), on its connection."""

    @contextmanager
    def advisory_lock(self, name: str, *, wait: bool = True) -> Iterator[bool]:
        """PostgreSQL's session lock `name`, shared by every machine of the catalog (the
        server releases it if this process dies); yields whether it is held (with
        wait=False, False when another session holds it). SQLite: always held (its
        writers are on one machine, and the file locks serialise them)."""
        if not self.server:
            yield True
            return
        if wait:
            self.execute("SELECT pg_advisory_lock(hashtextextended(?, 0))", (name,))
            held = True
        else:
            held = self.execute("SELECT pg_try_advisory_lock(hashtextextended(?, 0))",
                                 (name,)).scalar()
        try:
            yield held
        finally:
            if held and not self.conn.closed:  # a closed session's locks are released
                self.execute("SELECT pg_advisory_unlock(hashtextextended(?, 0))", (name,))

    def job_result(self, job_id: int) -> tuple[str, str | None] | None:
        """(status, result JSON) a job recorded when it finished, or None."""
        row = self.execute("SELECT status, result FROM job_results WHERE job_id = ?",
                            (job_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def record_job(self, job_id: int, task: str, aip_id: str | None, status: str,
                   result: str | None, error: str | None, finished: str, worker: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO job_results VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                       "(job_id) DO UPDATE SET status = excluded.status, result = "
                       "excluded.result, error = excluded.error, finished = excluded.finished, "
                       "worker = excluded.worker",
                       (job_id, task, aip_id, status, result, error, finished, worker))
