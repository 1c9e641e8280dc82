"""preserve's long work as jobs of the queue of a shared (PostgreSQL) catalog (issue 13).

One job is one unit an archivist would name: the ingest of one SIP, the copy of one AIP to
one location, the audit of one AIP copy, the repair of one AIP, the migration of one AIP.
A job carries ids, never state: the worker that takes it opens its own repository folder
(the same catalog, its own view of the locations) and runs the same service functions the
commands run inline on one machine.

Delivery is at least once, so every task is idempotent twice over: the services are (a
re-run copies, repairs or migrates nothing already done; a queued ingest names its AIP id in
advance), and a job that finished records its result in the catalog (job_results), so that
a delivery after that returns the result and does nothing again. Jobs that write an AIP
hold the lock "aip:<id>": no two workers write one AIP. Jobs that touch a local disk go to
that disk's queue (queue.location_queue), served only by the hosts that mount it; audits of
an object store go to a queue every worker may serve."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued

from preserve.catalog import queue
from preserve.domain.clock import now_utc
from preserve.errors import Busy, ConfigError, PreserveError, StorageUnreachable
from preserve.repository import Repository
from preserve.storage.history import publish_if_pending
from preserve.stores import LocalStorage

log = logging.getLogger("preserve.worker")
# (name, function, procrastinate options): registered on each App (register), by name, so
# that any number of Apps in one process (a test's, a worker's) see the same task names.
_TASKS: list[tuple[str, Callable, dict]] = []
# Transient failures (a store or the database briefly away, a whole-repository audit running
# on this host) are retried, a few times, later each time; a refusal (damaged input, a
# policy) is not: it would fail the same way.
RETRY = procrastinate.RetryStrategy(max_attempts=5, exponential_wait=5,
                                    retry_exceptions={StorageUnreachable, Busy, OSError})
# Audits the periodic scheduler leaves waiting at most (back-pressure: what is not queued
# now is still due at its next round).
AUDIT_QUEUE_CAP = 10_000
# The most one audit job reads (about 2 minutes at 150 MB/s); a bigger copy is a chain.
CHUNK_BYTES = 16 * 2**30
_ROOT: dict[str, Path] = {}


def _task(name: str, **options):
    def record(function):
        _TASKS.append((name, function, options))
        return function
    return record


def register(app) -> None:
    """preserve's tasks on a procrastinate App, as "preserve:<name>"."""
    for name, function, options in _TASKS:
        options = dict(options)
        cron = options.pop("cron", None)
        task = app.task(name=f"preserve:{name}", pass_context=True, **options)(function)
        if cron:
            app.periodic(cron=cron)(task)


def serve(root: Path) -> None:
    """The repository folder this process's jobs open (the worker's --repo)."""
    _ROOT["repo"] = Path(root)


def _job(context, task: str, aip: str | None, work: Callable[[Repository], dict]) -> dict:
    """Run one job's work on the worker's repository; record its result or error. A job
    already recorded as succeeded (a second delivery) returns that result."""
    job_id = context.job.id
    repo = Repository(_ROOT["repo"])
    try:
        done = repo.catalog.job_result(job_id)
        if done is not None and done[0] == "succeeded":
            log.info("job %s (%s) had finished: nothing to do again", job_id, task)
            return json.loads(done[1])
        try:
            result = work(repo)
        except PreserveError as e:
            error = e.message + (f" ({e.hint})" if e.hint else "")
            repo.catalog.record_job(job_id, task, aip, "failed", None, error, now_utc(),
                                    context.worker_name)
            raise
        repo.catalog.record_job(job_id, task, aip, "succeeded", json.dumps(result), None,
                                now_utc(), context.worker_name)
        return result
    finally:
        _sign(repo)
        repo.close()


def _sign(repo: Repository) -> None:
    """The job's events join the signed event log (as after a command); a failure here
    is logged, never the job's (the next job or command signs them)."""
    try:
        for name, why in publish_if_pending(repo).items():
            log.warning("the event log could not be copied to location %s: %s", name, why)
    except PreserveError as e:
        log.warning("the job's events could not be signed into the event log: %s", e.message)


@_task("ingest", retry=RETRY)
def ingest_sip(context, *, aip: str, source: str, collection: str, title: str | None = None,
               creators: list[str] | None = None, identifiers: list[str] | None = None,
               rights: str | None = None) -> dict:
    from preserve.ingest.ingest import Metadata, ingest

    def work(repo: Repository) -> dict:
        if repo.catalog.list_aips(aip_id=aip):
            return {"id": aip, "status": "already ingested"}
        meta = Metadata(collection, title, creators or [], identifiers or [], rights)
        return ingest(repo, Path(source), meta, aip_id=aip, workers=1).to_dict()

    return _job(context, "ingest", aip, work)


@_task("replicate", retry=RETRY)
def replicate_copy(context, *, aip: str, location: str) -> dict:
    from preserve.storage.replicate import replicate

    def work(repo: Repository) -> dict:
        result = replicate(repo, to=location, aips=[aip])
        if result.unreachable:
            raise StorageUnreachable(f"location {location} is unreachable")
        return result.to_dict()

    return _job(context, "replicate", aip, work)


@_task("audit", retry=RETRY)
def audit_copy(context, *, aip: str, location: str, mode: str = "due",
               chunk_bytes: int = CHUNK_BYTES) -> dict:
    """Audit one AIP copy, `chunk_bytes` at most: a bigger copy is audited by a chain of
    jobs, each continuing the run the one before left (audits resume), so that no job runs
    for hours and a retried one repeats one chunk at most."""
    from preserve.storage.audit import audit

    def work(repo: Repository) -> dict:
        result = audit(repo, aips=[aip], location=location, full=mode == "full",
                       due=mode == "due", workers=1, budget_bytes=chunk_bytes)
        out = result.to_dict()
        if result.stopped == "budget":
            out["continued_in"] = _defer(
                context.app, "audit", queue_name=context.job.queue, lock=f"aip:{aip}",
                queueing_lock=f"audit-next:{aip}:{location}", aip=aip, location=location,
                mode=mode, chunk_bytes=chunk_bytes)
        return out

    return _job(context, "audit", aip, work)


@_task("repair", retry=RETRY)
def repair_aip(context, *, aip: str) -> dict:
    from preserve.storage.repair import repair

    return _job(context, "repair", aip, lambda repo: repair(repo, aips=[aip]).to_dict())


@_task("migrate", retry=RETRY)
def migrate_aip(context, *, aip: str, puid: str | None = None) -> dict:
    """Migrate what the format policy says of one AIP (of one PUID only, if given): one
    new version, each derivative proven."""
    from preserve.planning.migrate import apply

    return _job(context, "migrate", aip,
                lambda repo: apply(repo, [aip], puid=puid, workers=1).to_dict())


@_task("validate-files", retry=RETRY)
def validate_files_aip(context, *, aip: str) -> dict:
    """Validate one AIP's stored files again: events, no new version."""
    from preserve.planning.validate_files import validate_stored

    return _job(context, "validate-files", aip,
                lambda repo: validate_stored(repo, [aip], workers=1).to_dict())


@_task("extract", retry=RETRY)
def extract_aip(context, *, aip: str) -> dict:
    """Extract one AIP's full text into a new version, then index it."""
    from preserve.data.extract import extract_stored
    from preserve.data.search_index import index_aip

    def work(repo: Repository) -> dict:
        result = extract_stored(repo, [aip], workers=1).to_dict()
        index_aip(repo, repo.catalog.resolve(aip))
        return result

    return _job(context, "extract", aip, work)


@_task("access-build", retry=RETRY)
def access_build_aip(context, *, aip: str) -> dict:
    """Make what is missing or stale of one AIP's access copies."""
    from preserve.access.copies import build

    return _job(context, "access-build", aip,
                lambda repo: build(repo, [aip], workers=1).to_dict())


@_task("storage-migrate", retry=RETRY)
def storage_migrate_aip(context, *, aip: str, source: str, target: str,
                        retire: bool = False) -> dict:
    """Move one AIP's copy off `source` (storage migrate): copied, verified, and with
    `retire` removed there; the job that leaves `source` empty retires it."""
    from preserve.storage.media_migration import migrate_location

    def work(repo: Repository) -> dict:
        result = migrate_location(repo, source, target, retire=retire, aips=[aip])
        if result.unreachable or any(m.unreachable for m in result.moves):
            raise StorageUnreachable(result.unreachable or f"'{source}' or '{target}'")
        for move in result.moves:
            if move.problem:  # the job fails, saying why (its copy stays at `source`)
                raise PreserveError(f"AIP {aip}: {move.problem}")
        return result.to_dict()

    return _job(context, "storage-migrate", aip, work)


@_task("schedule-audits", queue=queue.HOUSEKEEPING, cron="*/10 * * * *")
def schedule_audits(context, timestamp: int) -> dict:
    """Every ten minutes, by whichever worker's turn it is (see enqueue_due_audits)."""
    repo = Repository(_ROOT["repo"])
    try:
        return enqueue_due_audits(repo, app=context.app)
    finally:
        repo.close()


@_task("rights-review", queue=queue.HOUSEKEEPING, cron="5 0 * * *")
def rights_review(context, timestamp: int) -> dict:
    """Every day just after midnight (UTC): each AIP whose access changed (an embargo
    ended, a term ran out) gets a PREMIS event (access/rights.review)."""
    from preserve.access.rights import review

    repo = Repository(_ROOT["repo"])
    try:
        return {"changed": review(repo)}
    finally:
        repo.close()


def enqueue_due_audits(repo: Repository, *, cap: int = AUDIT_QUEUE_CAP, app=None) -> dict:
    """One audit job for each AIP copy the fixity policy says is due (a damaged one is due
    until repaired), unless one is waiting or running, and no more than `cap` waiting:
    what is not queued now is still due at the next round."""
    from preserve.admin.schedule import due_table

    open_jobs = repo.catalog.execute(
        "SELECT args->>'aip', args->>'location', status FROM procrastinate_jobs WHERE "
        "task_name = 'preserve:audit' AND status IN ('todo', 'doing')").fetchall()
    busy = {(aip, location) for aip, location, _status in open_jobs}
    waiting = sum(1 for *_copy, status in open_jobs if status == "todo")
    due = sorted({(r["aip"], r["location"]) for r in due_table(repo) if r["due_now"]} - busy)
    queued = enqueue_audits(repo, due, "due", limit=max(0, cap - waiting), app=app)
    return {"due": len(due), "queued": len(queued), "jobs": queued}


# --- enqueueing (the commands' --queue) -----------------------------------------------------


def _app(repo: Repository):
    if not repo.shared:
        raise ConfigError("--queue needs a repository whose catalog is on PostgreSQL "
                          "(the job queue lives there)",
                          hint="run the command without --queue, or create the repository "
                               "with 'preserve init --catalog postgresql://...'")
    queue.ensure_schema(repo.catalog.where)
    return queue.make_app(repo.catalog.where, register)


def _queue_for(repo: Repository, location: str | None) -> str:
    """A local disk's own queue, or the object stores' queue."""
    name = location or repo.primary_location().name
    storage = repo.locations.get(name)
    return queue.location_queue(name) if isinstance(storage, LocalStorage) or storage is None \
        else queue.OBJECT_STORES


def _defer(app, task: str, *, queue_name: str, lock: str | None, queueing_lock: str | None,
           **kwargs) -> int | None:
    """One job of the task named; None when an equal one is already waiting (its
    queueing lock)."""
    try:
        return app.configure_task(f"preserve:{task}", queue=queue_name, lock=lock,
                                  queueing_lock=queueing_lock).defer(**kwargs)
    except AlreadyEnqueued:
        return None


@contextmanager
def _deferring(repo: Repository, app=None):
    """The App to defer with: the one given (a running worker's), else one opened here
    for the while."""
    if app is not None:
        yield app
        return
    opened = _app(repo).open()
    try:
        yield opened
    finally:
        opened.close()


def enqueue_audits(repo: Repository, copies: list[tuple[str, str]], mode: str, *,
                   limit: int | None = None, app=None) -> list[int]:
    """An audit job per (AIP, location), one waiting per copy at most."""
    ids: list[int] = []
    with _deferring(repo, app) as app:
        for aip, location in copies:
            if limit is not None and len(ids) >= limit:
                break
            job = _defer(app, "audit", queue_name=_queue_for(repo, location),
                         lock=f"aip:{aip}", queueing_lock=f"audit:{aip}:{location}",
                         aip=aip, location=location, mode=mode)
            if job is not None:
                ids.append(job)
    return ids


def audit_copies(repo: Repository, aips: list[str] | None, location: str | None
                 ) -> list[tuple[str, str]]:
    """The (AIP, location) copies an audit of this scope covers, each once."""
    wanted = sorted({repo.catalog.resolve(a) for a in aips}) if aips else None
    return sorted({(s.aip, s.location)
                   for s in repo.catalog.replica_audit_states(aips=wanted, location=location)})


def enqueue_ingest(repo: Repository, source: Path, meta) -> tuple[int, str]:
    """An ingest job for a SIP every worker of the primary disk's queue can read; its AIP
    id is chosen here, so that a second delivery makes no second AIP."""
    if not source.exists():
        raise ConfigError(f"{source} does not exist",
                          hint="a queued ingest reads the source when a worker takes it: "
                               "give a path the workers can read")
    aip = str(uuid.uuid4())
    with _deferring(repo) as app:
        job = _defer(app, "ingest", queue_name=_queue_for(repo, None), lock=f"aip:{aip}",
                     queueing_lock=None, aip=aip, source=str(source.resolve()),
                     collection=meta.collection, title=meta.title, creators=meta.creators,
                     identifiers=meta.identifiers, rights=meta.rights)
    return job, aip


def enqueue_per_aip(repo: Repository, task_name: str, aips: list[str], *,
                    locations: list[str] | None = None, **options) -> list[int]:
    """A replicate (per AIP and location), repair or migrate job per AIP, one waiting per
    AIP (and location) at most; `options`: the task's other arguments."""
    ids = []
    with _deferring(repo) as app:
        for aip in aips:
            for location in (locations or [None]):
                extra = {**options, **({"location": location} if location else {})}
                key = f"{task_name}:{aip}" + (f":{location}" if location else "")
                job = _defer(app, task_name, queue_name=_queue_for(repo, None), lock=f"aip:{aip}",
                             queueing_lock=key, aip=aip, **extra)
                if job is not None:
                    ids.append(job)
    return ids


# --- the worker ------------------------------------------------------------------------------


def run_worker(root: Path, *, concurrency: int = 1, queues: list[str] | None = None,
               heartbeat: float = 10.0, wait: bool = True) -> None:
    """Take jobs until stopped. SIGTERM or Ctrl-C: no new job is taken, the running ones
    finish, then the worker exits. Every `heartbeat` seconds the worker says it is alive;
    a job held by a worker silent for 3 heartbeats (killed, its machine gone) is put back
    in its queue by a surviving worker, with its attempts counted."""
    serve(root)
    repo = Repository(root)
    try:
        if not repo.shared:
            raise ConfigError("a worker needs a repository whose catalog is on PostgreSQL",
                              hint="one machine needs no worker: run the commands without "
                                   "--queue; to share, see docs/deployment.md")
        url = repo.catalog.where
    finally:
        repo.close()
    queue.ensure_schema(url)
    app = queue.make_app(url, register)
    name = f"{socket.gethostname()}:{os.getpid()}"
    if queues:  # every worker may take the scheduler's turn, whatever disks it serves
        queues = [*queues, queue.HOUSEKEEPING]

    async def main():
        async with app.open_async():
            rescuer = asyncio.create_task(_retry_stalled(app, heartbeat))
            try:
                await app.run_worker_async(
                    queues=queues, concurrency=concurrency, name=name, wait=wait,
                    update_heartbeat_interval=heartbeat, stalled_worker_timeout=3 * heartbeat,
                    fetch_job_polling_interval=min(5.0, heartbeat), delete_jobs="never")
            finally:
                rescuer.cancel()

    asyncio.run(main())


async def _retry_stalled(app, heartbeat: float) -> None:
    """Put back the jobs of workers whose heartbeats stopped (procrastinate finds them;
    retrying them is left to the application)."""
    while True:
        await asyncio.sleep(heartbeat)
        try:
            for job in await app.job_manager.get_stalled_jobs(
                    seconds_since_heartbeat=3 * heartbeat):
                log.warning("job %s (%s) was held by a worker that stopped; retrying it",
                            job.id, job.task_name)
                try:
                    await app.job_manager.retry_job(job)
                except Exception as e:  # another worker retried it first
                    log.info("job %s: %s", job.id, e)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the database briefly away: try at the next beat
            log.warning("looking for stalled jobs failed: %s", e)
