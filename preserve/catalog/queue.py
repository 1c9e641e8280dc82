"""The job queue of a shared catalog: procrastinate, on the catalog's own PostgreSQL.

With PostgreSQL as both catalog and queue there is no second stateful system to run,
back up and secure. This module is the small interface the rest of preserve sees (so
another PostgreSQL queue could replace procrastinate): the App bound to a catalog, the
queue names, and the job listing. Delivery is at least once: tasks must be idempotent
(admin/tasks.py). A job whose worker died (SIGKILL, power loss) stays "doing" until
a surviving worker sees that its heartbeats stopped and retries it (retry_stalled)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from preserve.catalog.database import libpq_url
from preserve.errors import ConfigError

# procrastinate's statuses, as `preserve jobs` names them (the five words).
STATUSES = {"todo": "queued", "doing": "running", "succeeded": "succeeded",
            "failed": "failed", "cancelled": "cancelled", "aborting": "running",
            "aborted": "cancelled"}
# Queue of jobs that touch only object stores (S3): any worker serves it.
OBJECT_STORES = "object-stores"
# Queue of the periodic audit scheduler: every worker serves it.
HOUSEKEEPING = "housekeeping"


def location_queue(location: str) -> str:
    """The queue of jobs that read or write a local disk: served only by the hosts that
    mount it (`preserve worker --queues at-disk2`)."""
    return f"at-{location}"


def make_app(url: str, register=None):
    """A procrastinate App on the catalog's database; `register(app)` adds the tasks."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=libpq_url(url), kwargs={"application_name": "preserve-queue"}))
    if register is not None:
        register(app)
    return app


def ensure_schema(url: str) -> bool:
    """Install procrastinate's tables in the catalog's database unless there; whether it
    did. Idempotent, and safe against two workers starting at once (an advisory lock)."""
    import procrastinate
    import psycopg

    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('preserve: queue schema'))")
        try:
            if conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]:
                return False
            conn.execute(procrastinate.schema.SchemaManager.get_schema())
            return True
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('preserve: queue schema'))")


@dataclass
class JobRow:
    id: int
    task: str
    queue: str
    aip: str | None
    status: str
    attempts: int
    args: dict
    result: dict | None
    error: str | None
    started: str | None
    finished: str | None
    worker: str | None

    def to_dict(self) -> dict:
        return {"id": self.id, "task": self.task, "queue": self.queue, "aip": self.aip,
                "status": self.status, "attempts": self.attempts, "args": self.args,
                "result": self.result, "error": self.error, "started": self.started,
                "finished": self.finished, "worker": self.worker}


def list_jobs(catalog, *, status: str | None = None, limit: int = 1000) -> list[JobRow]:
    """The newest jobs first, with what their tasks recorded (job_results)."""
    if not catalog.server:
        raise ConfigError("the job queue needs a PostgreSQL catalog",
                          hint="create the repository with 'preserve init --catalog "
                               "postgresql://...' (docs/deployment.md)")
    ensure_schema(catalog.where)  # a repository where nothing was queued yet
    wanted = [k for k, v in STATUSES.items() if v == status] if status else list(STATUSES)
    if not wanted:
        raise ConfigError(f"no job status {status!r}",
                          hint=f"one of {', '.join(sorted(set(STATUSES.values())))}")
    rows = catalog.execute(
        "SELECT j.id, j.task_name, j.queue_name, j.args, j.status, j.attempts, r.result, "
        "r.error, (SELECT MIN(e.at) FROM procrastinate_events e WHERE e.job_id = j.id AND "
        "e.type = 'started'), (SELECT MAX(e.at) FROM procrastinate_events e WHERE "
        "e.job_id = j.id AND e.type IN ('succeeded', 'failed', 'cancelled', 'aborted')), "
        "COALESCE(r.worker, 'worker ' || CAST(j.worker_id AS TEXT)) FROM procrastinate_jobs j "
        "LEFT JOIN job_results r ON r.job_id = j.id "
        f"WHERE CAST(j.status AS TEXT) IN ({', '.join('?' * len(wanted))}) "
        "ORDER BY j.id DESC LIMIT ?", (*wanted, limit)).fetchall()
    return [JobRow(id=r[0], task=r[1].removeprefix("preserve:"), queue=r[2],
                   aip=(r[3] or {}).get("aip"), status=STATUSES[r[4]], attempts=r[5],
                   args=r[3] or {}, result=json.loads(r[6]) if r[6] else None, error=r[7],
                   started=_stamp(r[8]), finished=_stamp(r[9]), worker=r[10]) for r in rows]


def _stamp(when: dt.datetime | None) -> str | None:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
