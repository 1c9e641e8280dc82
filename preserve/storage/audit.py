"""Fixity audits: is every copy of every file still what was ingested?

For each replica (an AIP version at one location: the folder vN/ of its OCFL
object, with the object root's files where vN is the head there) the audit
compares what the location holds with what we trust (storage/expected.py: the
catalog's digests of every content file and inventory) and names each problem
with its kind:

    corrupt      the bytes (or the store's checksum) differ from the record
    truncated    the size differs from the record
    missing      a file of the bag is not there
    unexpected   a file no manifest lists is there
    unreachable  the location cannot be reached (never reported as missing)
    read-error   the file is there but cannot be read
    inventory    an OCFL inventory or its sidecar is missing or altered

A *quick* audit checks sizes and the fast xxh3 digests on local disks, and on
object stores the store's own SHA-256 and size, downloading nothing. A *full*
audit re-reads every byte and re-hashes it with the manifest algorithms, on
both cores. Every run is recorded in the catalog, and each replica checked
gets a PREMIS "fixity check" event, in the catalog and as a new event record
stored in the object's logs/ folder (the object's versions are never rewritten).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import math
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace

from preserve import AGENT_NAME, __version__
from preserve.catalog.database import RECHECK
from preserve.domain import ocfl
from preserve.domain.clock import now_utc, parse_utc
from preserve.domain.model import EventRecord
from preserve.domain.premis import Event
from preserve.domain.progress import Progress, Silent
from preserve.errors import Busy, PreserveError
from preserve.parallel import WorkerPool, default_workers
from preserve.repository import Repository
from preserve.storage import lanes as lanes_module
from preserve.storage.audit_records import AuditResult, Problem, Recorder, Visit, _row
from preserve.storage.audit_replica import audit_replica
from preserve.storage.lanes import Locked, in_lanes
from preserve.storage.log_check import check_object
from preserve.storage.object_log import (
    LogDocument,
    complete_documents,
    event_record,
    log_document,
    write_document,
)
from preserve.stores import LocalStorage
from preserve.stores.base import ANSWERED_LATELY, root_file_problems


class _Budget:
    def __init__(self, nbytes: int | None, seconds: float | None):
        self.nbytes, self.seconds, self.started = nbytes, seconds, time.monotonic()

    def spent(self, result: AuditResult) -> bool:
        return bool((self.nbytes and result.bytes_read >= self.nbytes) or (
            self.seconds and time.monotonic() - self.started >= self.seconds))


# Sorts after every timestamp: "not verified since" it means every file.
_NEVER = "~"


def audit(repo: Repository, *, aips: list[str] | None = None, location: str | None = None,
          full: bool = False, due: bool = False, sample: float | None = None,
          budget_bytes: int | None = None, budget_seconds: float | None = None,
          workers: int | None = None, restart: bool = False,
          progress: Progress | None = None) -> AuditResult:
    """Audit replicas, file by file. With `due`, the files the fixity policy says are due;
    with a sample share, also that share of all files, least recently verified first. An
    audit that did not finish (Ctrl-C, a kill, a budget spent) is continued by the next run
    with the same options, unless `restart`; with `due`, the next run simply takes what is
    still due."""
    progress = progress or Silent()
    complete_documents(repo)  # a killed run's event documents, before they are looked for
    policy = repo.policy.audit
    mode = "full" if full else ("policy" if due else "quick")
    wanted = sorted({repo.catalog.resolve(a) for a in aips}) if aips else None
    share = sample if sample is not None else (policy.sample if due else None)
    budget = _Budget(budget_bytes if budget_bytes is not None else (
        policy.budget_bytes if due else None), budget_seconds if budget_seconds is not None
        else (policy.budget_seconds if due else None))
    scope = json.dumps({"mode": mode, "aips": wanted, "location": location, "share": share})
    with _audit_lock(repo, whole=wanted is None), WorkerPool(workers or default_workers()) as pool:
        if pool.workers > 1 and any(isinstance(repo.locations.get(loc), LocalStorage) for loc in (
                [location] if location else repo.locations)):
            pool.start()  # the workers boot while the run is planned
        # A run by policy never continues an older one: what it left stays due anyway, and
        # an old run's findings, repaired since, must not raise tonight's alarm again.
        unfinished = None if (restart or due) else repo.catalog.unfinished_audit(scope)
        if unfinished:
            result = AuditResult(unfinished[0], mode, unfinished[1], resumed_from=unfinished[1])
        else:
            result = AuditResult(str(uuid.uuid4()), mode, now_utc(precise=True))
            repo.catalog.start_audit(result.run_id, result.started, mode, scope)
        since = result.resumed_from or _NEVER
        states = repo.catalog.replica_audit_states(since, aips=wanted, location=location)
        visits = _plan(repo, states, since, due=due, full=full, share=share)
        result.selected_files = sum(v.files for v in visits)
        progress.start("audit", result.selected_files, sum(v.nbytes for v in visits))
        try:
            reachable: dict[str, str] = {}  # why each location cannot be reached, once
            _run(repo, visits, result, pool, budget, progress, reachable)
        except BaseException:  # Ctrl-C, a tool failure: what was recorded stays, to resume
            repo.catalog.finish_audit(result.run_id, now_utc(), "interrupted", result.replicas,
                                      result.files, result.bytes_read)
            raise
        stale = _stale(repo, {(s.aip, s.version, s.location) for s in states}, wanted, location)
        if stale:
            repo.catalog.record_audit_problems(result.run_id, [_row(p) for p in stale])
        result.problems = [Problem(*p) for p in repo.catalog.audit_problems(result.run_id)]
        result.problems += _storage_roots(repo, {v.state.location for v in visits}, reachable)
        result.media_warnings = _media_warnings(repo, {v.state.location for v in visits})
        result.finished = now_utc(precise=True)
        repo.catalog.finish_audit(result.run_id, result.finished,
                                  "interrupted" if result.stopped and not due else result.status,
                                  result.replicas, result.files, result.bytes_read)
    return result


def _media_warnings(repo: Repository, names: set[str]) -> dict[str, list[str]]:
    """What `storage list` warns of the locations this audit read (issue 25): a medium
    ageing out, SMART, free space, copies that depend on one medium."""
    from preserve.storage.locations import location_statuses

    return {s.name: s.warnings for s in location_statuses(
        repo, names=names & set(repo.locations), answered_within=ANSWERED_LATELY)
        if s.warnings}


@contextmanager
def _audit_lock(repo: Repository, whole: bool):
    """One audit of the whole repository at a time (a cron run meeting a manual one); audits
    of chosen AIPs (a worker's jobs, one AIP copy each) run side by side, but not beside a
    whole one."""
    with open(repo.root / "audit.lock", "a+") as lock:
        try:
            fcntl.flock(lock, (fcntl.LOCK_EX if whole else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another audit of the repository {repo.root} is running",
                       hint="wait for it to finish; its report covers the same replicas") from None
        yield


def _plan(repo, states, since, *, due, full, share) -> list[Visit]:
    """Which files of which replicas this run verifies, least recently verified first."""
    now = dt.datetime.now(dt.UTC)
    rules = {(s.aip, s.version, s.location): repo.policy.audit.rule_for(s.collection, s.location)
             for s in states}

    def kind(s):
        return "full" if full else (rules[(s.aip, s.version, s.location)].kind if due else "quick")

    def due_cut(s):  # a file last verified at or before this is due
        interval = rules[(s.aip, s.version, s.location)].interval_days
        return (now - dt.timedelta(days=interval)).strftime("%Y-%m-%dT%H:%M:%SZ")

    visits = []
    if share is None:
        for s in states:
            if s.files and s.verified_since >= s.files:
                continue  # verified by the run being resumed
            if not s.files and s.last_audit is not None and s.last_audit >= since:
                continue
            if due and s.oldest > due_cut(s):
                continue
            if due or since != _NEVER:
                cut = due_cut(s) if due else _NEVER
                chosen = {p: size for p, size, last in repo.catalog.replica_file_checks(
                    (s.aip, s.version, s.location), since) if last <= cut}
                if chosen or not s.files:
                    visits.append(Visit(s, kind(s), set(chosen), len(chosen),
                                         sum(chosen.values())))
            else:
                visits.append(Visit(s, kind(s), None, s.files, s.bytes))
        return visits
    total = sum(s.files for s in states)
    take = max(0, math.ceil(total * share) - sum(s.verified_since for s in states))
    by_replica = {(s.aip, s.version, s.location): s for s in states}
    cuts = {r: due_cut(s) for r, s in by_replica.items()} if due else {}
    chosen: dict[tuple, dict[str, int]] = {}
    for aip, version, loc, path, size, last in repo.catalog.all_file_checks(since):
        replica = (aip, version, loc)
        if replica not in by_replica:
            continue
        if take > 0 or (due and last <= cuts[replica]):
            chosen.setdefault(replica, {})[path] = size
            take -= 1
        elif not due:
            break
    return [Visit(by_replica[r], kind(by_replica[r]), set(files), len(files),
                   sum(files.values())) for r, files in chosen.items()]


def _run(repo, visits, result, pool, budget, progress, reachable: dict[str, str]) -> None:
    """Every visit in the planned order (least recently verified first: a budget spent
    leaves the same ones due, wherever they are); consecutive visits at object stores go
    together, several AIPs at once (_in_lanes)."""
    for name in {visit.state.location for visit in visits}:
        storage = repo.locations.get(name)
        if storage is not None and not _unreachable(storage, reachable):
            # each replica's event document is written there: an object store's checksum
            # probe goes beside the listings, not before the first document
            storage.begin_writes()
    objects_checked: set[tuple[str, str]] = set()  # an object's logs/ once a run
    remote: list[Visit] = []
    for visit in [*visits, None]:
        storage = repo.locations.get(visit.state.location) if visit is not None else None
        if storage is not None and not isinstance(storage, LocalStorage) and \
                not _unreachable(storage, reachable):
            remote.append(visit)
            continue
        if remote:
            lanes: dict[tuple[str, str], list[Visit]] = {}
            for r in remote:  # an AIP's versions in one lane, in order
                lanes.setdefault((r.state.location, r.state.aip), []).append(r)
            _in_lanes(repo, list(lanes.values()), result, pool, budget, progress,
                      objects_checked)
            remote = []
        if visit is None or result.stopped:
            return
        if budget.spent(result):
            result.stopped = "budget"  # what is left stays due; the next run continues
            return
        why = _unreachable(storage, reachable) if storage is not None else None
        if storage is None or why:
            recorder = Recorder(repo, result, visit)
            where = visit.state.location
            recorder.problem(None, "unreachable", why if storage else
                             f"location '{where}' is not configured")
            recorder.flush()
            progress.advance(visit.files, visit.nbytes)
        else:
            checked = _visit(repo, storage, visit, result, pool, progress,
                             lambda: budget.spent(result), objects_checked)
            if budget.spent(result) and checked < visit.files:
                result.stopped = "budget"
        result.replicas += 1


def _visit(repo, storage, visit: Visit, result: AuditResult, pool, progress, stop,
           objects_checked: set[tuple[str, str]], interrupted=lambda: False) -> int:
    """Audit one replica and record its event (unless `interrupted`: what was verified
    is kept, for the next run to start after); the files checked."""
    recorder = Recorder(repo, result, visit)
    try:
        audit_replica(repo, storage, visit, pool, recorder, progress, stop)
    except BaseException:
        recorder.flush()  # keep what was verified: the next run starts after it
        raise
    if interrupted():
        recorder.flush()
        return recorder.checked
    _check_history(repo, storage, visit, recorder, objects_checked)
    record, document = _event(repo, storage, visit, recorder.found, recorder.checked)
    recorder.close(record)
    write_document(repo.catalog, record.id, document)
    return recorder.checked


def _in_lanes(repo, lanes: list[list[Visit]], result, pool, budget, progress,
              objects_checked: set[tuple[str, str]]) -> None:
    """Replicas at object stores, lanes.READS_AT_ONCE at a time: each waits a few round trips
    in turn (its listing, its history's documents, its event's document), which a WAN
    makes the cost of every small AIP: a quick audit of 40 AIPs 40 ms away took 11 s
    one after another. An AIP's versions go in one lane, in order; each lane has its own
    catalog connection and uses the run's locations (their clients, their probe). A replica
    counts into a result of its own, added to the run's when it ends: a byte budget is
    overrun by at most the replicas under way (one AIP alone is audited in this thread,
    counted as it goes). Ctrl-C: each lane keeps what it verified
    and records no event for a replica it did not finish, as one alone would."""
    stop, shared = threading.Event(), threading.Lock()
    apart = len(lanes) > 1  # else one AIP's versions, in this thread: counted as they go
    progress = Locked(progress) if apart else progress

    def lane(visits: list[Visit], here: Repository) -> None:
        for visit in visits:
            with shared:
                if budget.spent(result):
                    result.stopped = "budget"
                if result.stopped or stop.is_set():
                    return
            own = replace(result, files=0, bytes_read=0) if apart else result
            checked = _visit(here, repo.locations[visit.state.location], visit, own, pool,
                             progress, lambda: stop.is_set() or budget.spent(result),
                             objects_checked, stop.is_set)
            with shared:
                if apart:
                    result.files += own.files
                    result.bytes_read += own.bytes_read
                result.replicas += 1
                if budget.spent(result) and checked < visit.files:
                    result.stopped = "budget"

    if not apart:
        lane(lanes[0], repo)
        return
    in_lanes(repo, lanes, min(lanes_module.READS_AT_ONCE, len(lanes)), lane, stop)


def _check_history(repo, storage, visit: Visit, recorder: Recorder,
                   objects_checked: set[tuple[str, str]]) -> None:
    """The object's history as the event log signed it: its logs/ documents (once a run)
    and this version's inventory (issue 24: the audit checks what `log verify` does, for
    what it reads)."""
    s = visit.state
    first = (s.aip, s.location) not in objects_checked
    objects_checked.add((s.aip, s.location))
    for p in check_object(repo, storage, s.aip, [s.version], documents=first):
        path = p.detail.split(" ", 1)[0] if p.detail.startswith("logs/") else None
        recorder.problem(path or f"v{s.version}/{ocfl.INVENTORY}", f"history-{p.kind}",
                         f"event {p.event} (log entry {p.position}): {p.detail}")


def _stale(repo, scope, aips, location) -> list[Problem]:
    """Replicas in scope whose least recently verified file is overdue twice over."""
    now = dt.datetime.now(dt.UTC)
    stale = []
    for s in repo.catalog.replica_audit_states(_NEVER, aips=aips, location=location):
        if (s.aip, s.version, s.location) not in scope or s.oldest == RECHECK:
            continue
        interval = repo.policy.audit.rule_for(s.collection, s.location).interval_days
        age = (now - parse_utc(s.oldest)).total_seconds() / 86400
        if age >= 2 * interval:
            stale.append(Problem(s.aip, s.version, s.location, None, "stale",
                                 ("never audited; stored" if s.never_audited
                                  else "a file last verified")
                                 + f" {age:.0f} days ago; policy asks every {interval:g} days"))
    return stale


def _storage_roots(repo, names: set[str], reachable: dict[str, str]) -> list[Problem]:
    """The storage root's own files of each location audited (its declaration, layout
    and the layout's configuration), as preserve writes them (issue 22: a bucket emptied
    and re-created had every object restored by repair but not these, and every later
    copy to it failed). Not an AIP's: named with the location alone."""
    found = []
    for name in sorted(names):
        storage = repo.locations.get(name)
        if storage is None or _unreachable(storage, reachable):
            continue  # already said, replica by replica
        try:
            problems = root_file_problems(storage)
        except PreserveError:
            continue  # gone since: said by the replicas' problems
        found += [Problem("", 0, name, key, "storage-root", why) for key, why, _ in problems]
    return found


def _unreachable(storage, cache: dict[str, str]) -> str:
    """Why the location cannot be reached, with what to do ("" when it can), asked once
    per run: the reason goes into every replica's problem (no credentials, say)."""
    if storage.name not in cache:
        try:
            storage.check_reachable()
            cache[storage.name] = ""
        except PreserveError as e:
            cache[storage.name] = e.message + (f" ({e.hint})" if e.hint else "")
    return cache[storage.name]


def _event(repo, storage, visit: Visit, found: list[Problem],
           checked: int) -> tuple[EventRecord, LogDocument]:
    """A PREMIS fixity check event: its catalog row, and its document for the object's
    logs/ at the location audited (written once the catalog holds the event)."""
    aip_id, version, key, kind = visit.state.aip, visit.state.version, visit.state.key, visit.kind
    outcome = "success" if not found else "failure"
    how = ("every byte re-hashed" if kind == "full"
           else "sizes and fast digests, or the store's checksums")
    files = (f"{checked} of {visit.state.files} payload files"
             if visit.paths is not None or checked < visit.state.files else "every file")
    detail = (f"{kind} fixity audit of AIP version {version} at location "
              f"'{storage.name}': {files}, with the tag files ({how})")
    summary = "no problem found" if not found else "; ".join(
        f"{p.kind}: {p.path}" for p in found[:20]) + (" …" if len(found) > 20 else "")
    agent = f"{AGENT_NAME}-{__version__}"
    event = Event("fixity check", now_utc(), outcome, detail, summary,
                  [(agent, "executing program")])
    document = log_document(storage, ocfl.object_of(key), aip_id, event,
                            f"{storage.name}-v{version}", staging=repo.staging)
    return event_record(aip_id, event, None, document.record), document
