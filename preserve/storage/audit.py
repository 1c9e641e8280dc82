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

import base64
import datetime as dt
import fcntl
import json
import math
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import chain

from preserve import AGENT_NAME, __version__
from preserve.catalog.database import RECHECK
from preserve.domain import ocfl
from preserve.domain.clock import now_utc, parse_utc
from preserve.domain.fixity import FAST_ALGORITHM, hash_batch, hash_stream
from preserve.domain.model import EventRecord, ReplicaAuditState
from preserve.domain.names import display
from preserve.domain.premis import Event
from preserve.domain.progress import Progress, Silent
from preserve.errors import (
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_UNREACHABLE,
    Busy,
    PreserveError,
)
from preserve.parallel import WorkerPool, batched, default_workers, run_batches
from preserve.repository import Repository
from preserve.storage.expected import expected_digests, is_head, listing
from preserve.storage.object_log import store_log_event
from preserve.stores import LocalStorage
from preserve.stores.base import object_root_strays, root_file_problems
from preserve.stores.s3 import S3Storage, uploaded_in_parts

KINDS = ("corrupt", "truncated", "missing", "unexpected", "unreachable", "read-error", "stale",
         "inventory", "storage-root")
# Damage a good copy from another replica mends (an inventory's is reported as "inventory").
REPLACEABLE = ("corrupt", "truncated", "missing")


@dataclass
class Problem:
    aip: str
    version: int
    location: str
    path: str | None
    kind: str
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AuditResult:
    run_id: str
    kind: str
    started: str
    finished: str = ""
    replicas: int = 0
    files: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    resumed_from: str | None = None   # start of the interrupted run this one continued
    stopped: str | None = None        # why the run ended before its selection: "budget"
    selected_files: int = 0

    @property
    def status(self) -> str:
        kinds = {p.kind for p in self.problems}
        if kinds - {"unreachable", "stale"}:
            return "damaged"
        if "unreachable" in kinds:
            return "unreachable"
        return "stale" if kinds else "ok"

    @property
    def exit_code(self) -> int:
        return {"ok": EXIT_OK, "damaged": EXIT_PROBLEMS, "stale": EXIT_PROBLEMS,
                "unreachable": EXIT_UNREACHABLE}[self.status]

    def to_dict(self) -> dict:
        return {"status": self.status, "run": self.run_id, "kind": self.kind,
                "started": self.started, "finished": self.finished,
                "resumed_from": self.resumed_from, "complete": self.stopped is None,
                "stopped": self.stopped, "replicas": self.replicas, "files": self.files,
                "bytes_read": self.bytes_read,
                "problems": [p.to_dict() for p in self.problems]}


@dataclass
class _Visit:
    """One replica to audit: which of its payload files (None: all), and how deeply."""
    state: ReplicaAuditState
    kind: str
    paths: set[str] | None
    files: int
    nbytes: int

    @property
    def replica(self) -> tuple[str, int, str]:
        return (self.state.aip, self.state.version, self.state.location)


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
        result.finished = now_utc(precise=True)
        repo.catalog.finish_audit(result.run_id, result.finished,
                                  "interrupted" if result.stopped and not due else result.status,
                                  result.replicas, result.files, result.bytes_read)
    return result


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


def _plan(repo, states, since, *, due, full, share) -> list[_Visit]:
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
                    visits.append(_Visit(s, kind(s), set(chosen), len(chosen),
                                         sum(chosen.values())))
            else:
                visits.append(_Visit(s, kind(s), None, s.files, s.bytes))
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
    return [_Visit(by_replica[r], kind(by_replica[r]), set(files), len(files),
                   sum(files.values())) for r, files in chosen.items()]


def _run(repo, visits, result, pool, budget, progress, reachable: dict[str, str]) -> None:
    for visit in visits:
        if budget.spent(result):
            result.stopped = "budget"  # what is left stays due; the next run continues
            return
        storage = repo.locations.get(visit.state.location)
        recorder = _Recorder(repo, result, visit)
        why = _unreachable(storage, reachable) if storage is not None else None
        if storage is None or why:
            where = visit.state.location
            recorder.problem(None, "unreachable", why if storage else
                             f"location '{where}' is not configured")
            recorder.flush()
            progress.advance(visit.files, visit.nbytes)
        else:
            try:
                _audit_replica(repo, storage, visit, pool, recorder, progress,
                               lambda: budget.spent(result))
            except BaseException:
                recorder.flush()  # keep what was verified: the next run starts after it
                raise
            recorder.close(_event(repo, storage, visit, recorder.found, recorder.checked))
            if budget.spent(result) and recorder.checked < visit.files:
                result.stopped = "budget"
        result.replicas += 1


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


def has_record(path: str | None) -> bool:
    """Whether `path` is a content file with a catalog row (payload or tag file, whose
    checks are recorded file by file), not an inventory, a root file or a stray."""
    return path is not None and not path.startswith(("/", ocfl.STRAY)) and \
        path not in ocfl.VERSION_FILES


def _row(p: Problem) -> tuple:
    return (p.aip, p.version, p.location, p.path, p.kind, p.detail)


class _Recorder:
    """What one replica's audit found, committed every few seconds, so that an interrupted
    audit resumes after the last file it recorded."""

    FLUSH_SECONDS = 2.0

    def __init__(self, repo, result: AuditResult, visit: _Visit):
        self.repo, self.result, self.visit = repo, result, visit
        self.verified: list[str] = []
        self.failed: list[str] = []
        self.new: list[Problem] = []
        self.found: list[Problem] = []
        self.named: set[str | None] = set()
        self.structure_damaged = False
        self.checked = 0
        self.last_flush = time.monotonic()

    def problem(self, path, kind, detail) -> None:
        """One problem per file: the first found says it."""
        if path in self.named:
            return
        self.named.add(path)
        if path is not None and ocfl.is_inventory(path) and kind in REPLACEABLE:
            detail, kind = f"{kind}: {detail}", "inventory"  # its own kind (issue 9)
        s = self.visit.state
        p = Problem(s.aip, s.version, s.location, path, kind, detail)
        self.new.append(p)
        self.found.append(p)
        if has_record(path) and kind != "unexpected":
            self.failed.append(path)
        elif kind != "unreachable":
            self.structure_damaged = True

    def good(self, path) -> None:
        if has_record(path):
            self.verified.append(path)

    def checked_batch(self, files: int) -> None:
        self.checked += files
        if time.monotonic() - self.last_flush >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.repo.catalog.record_checks(self.result.run_id, self.visit.replica,
                                        now_utc(precise=True),
                                        self.verified, self.failed, [_row(p) for p in self.new])
        self.verified, self.failed, self.new = [], [], []
        self.last_flush = time.monotonic()

    def close(self, event: EventRecord) -> None:
        self.flush()
        self.repo.catalog.finish_replica_audit(self.visit.replica, self.result.started,
                                               self.structure_damaged, [event])


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


def _audit_replica(repo, storage, visit: _Visit, pool, recorder: _Recorder, progress,
                   stop) -> None:
    """Check the listing of the whole replica (missing, truncated, unexpected files and the
    tag files), then the digests of the selected payload files. The listing and the
    payload records are compared in the catalog's temporary tables and streamed from
    there, so memory does not grow with the number of files."""
    aip_id, version, key = visit.state.aip, visit.state.version, visit.state.key
    catalog = repo.catalog
    problem = recorder.problem
    root = is_head(catalog, aip_id, version, storage.name)
    tags = expected_digests(catalog, aip_id, version, root=root).tags

    def unreadable(rel: str) -> None:
        problem(display(rel), "unexpected", "a file whose name is not valid UTF-8 (no "
                "manifest can list it)")

    try:
        catalog.load_listing(listing(storage, key, unreadable, root=root))
    except PreserveError as e:
        problem(None, "unreachable", e.message)
        return
    for rel, _size in catalog.listed_not_catalogued(aip_id, version):
        if rel not in tags:
            problem(rel, "unexpected", "a file no inventory lists")
    if root:  # the head's replica answers for the object root as well (cases 04, 64)
        try:
            for name, why in object_root_strays(*storage.entries(ocfl.object_of(key))):
                problem("/" + name, "unexpected", why)
        except PreserveError as e:
            problem(None, "unreachable", e.message)
            return
    tag_checks = []
    for rel, want in sorted(tags.items()):
        size = catalog.listed_size(rel)
        if size is None:
            problem(rel, "missing", "not at this location")
        else:
            tag_checks.append((rel, want, size))

    def chosen(rel: str) -> bool:
        return visit.paths is None or rel in visit.paths

    unchecked = 0
    for rel, recorded, listed in catalog.payload_not_listed_as_recorded(aip_id, version):
        if listed is None:
            problem(rel, "missing", "not at this location")
        else:
            problem(rel, "truncated", f"{listed} bytes, {recorded} recorded")
        unchecked += chosen(rel)
    progress.advance(unchecked, 0)
    recorder.checked_batch(unchecked)
    count, nbytes = catalog.stage_payload_checks(aip_id, version)
    checks = chain(((rel, want, size) for rel, size, want in catalog.staged_payload_checks()
                    if chosen(rel)), tag_checks)  # big files first, the small tag files last
    if isinstance(storage, S3Storage) and visit.kind != "full":
        _quick_s3(storage, key, checks, recorder, progress, stop,
                  lambda rel: catalog.composite_checksum(aip_id, version, storage.name, rel))
    elif isinstance(storage, LocalStorage):
        many = count > 64 or nbytes > (64 << 20)
        _hash_local(storage, key, checks, visit.kind == "full",
                    pool if many and pool.workers > 1 else None,
                    recorder, progress, stop)
    else:
        _hash_remote(storage, key, checks, visit.kind == "full", recorder, progress, stop)


def _choose(want: dict[str, str], full: bool) -> dict[str, str]:
    """Quick: the fast digest where there is one. Full: every manifest algorithm."""
    if not full and FAST_ALGORITHM in want:
        return {FAST_ALGORITHM: want[FAST_ALGORITHM]}
    return {a: d for a, d in want.items() if a != FAST_ALGORITHM} or want


def _hash_local(storage, key, checks, full, pool, recorder, progress, stop) -> None:
    """Re-hash (rel, recorded digests, size) items on disk, on the pool's workers (or here
    when `pool` is None): each job carries what its file must hash to."""
    path_of = storage.local_files(ocfl.object_of(key))
    in_object = f"v{ocfl.version_of(key)}/"
    jobs = (((rel, chosen, size), path_of(ocfl.key_of(in_object, rel)), tuple(chosen))
            for rel, want, size in checks for chosen in (_choose(want, full),))
    batches = batched(jobs, 256, 32 << 20, size=lambda j: j[0][2])
    results = run_batches(hash_batch, batches, workers=pool.workers if pool else 1, pool=pool)
    try:
        for batch in results:
            nbytes = 0
            for (rel, want, _size), size, digests, error in batch:
                nbytes += size
                if error:
                    recorder.problem(rel, "read-error", error)
                else:
                    _compare(rel, want, digests, recorder)
            _checked(recorder, progress, len(batch), nbytes)
            if stop():
                break  # closing the generator stops the workers
    finally:
        results.close()


def _hash_remote(storage, key, checks, full, recorder, progress, stop) -> None:
    for rel, want, _size in checks:
        if stop():
            return
        chosen = _choose(want, full)
        try:
            with storage.open(ocfl.key_of(key, rel)) as f:
                size, digests, _ = hash_stream(f, list(chosen))
        except (OSError, PreserveError) as e:
            recorder.problem(rel, "read-error", str(e))
            _checked(recorder, progress, 1, 0)
            continue
        _compare(rel, chosen, digests, recorder)
        _checked(recorder, progress, 1, size)


def _quick_s3(storage, key, checks, recorder, progress, stop, recorded_composite) -> None:
    """The store's own checksum of each object against what was recorded, nothing read.
    An object preserve wrote in one part must carry the SHA-256 of its bytes; one written
    in parts, the composite checksum the store gave at upload. A composite where preserve
    wrote one part, or another composite, means the object was replaced (red-team case 83:
    a same-size multipart upload passed)."""
    for rel, want, size in checks:
        if stop():
            return
        stored = storage.stored_checksum(ocfl.key_of(key, rel))
        if stored is None:
            recorder.problem(rel, "missing", "not at this location")
        elif stored[2]:
            recorded = recorded_composite(rel)
            if recorded is not None and stored[1] == recorded.split("-")[0]:
                recorder.good(rel)
            elif recorded is None and uploaded_in_parts(size):
                recorder.good(rel)  # written before composites were recorded: a full audit
            else:                   # reads it
                recorder.problem(rel, "corrupt", "the object was replaced: the store holds "
                                 f"a multipart upload (checksum {stored[1]}) where preserve "
                                 + ("wrote one part" if recorded is None else
                                    f"recorded {recorded}"))
        elif "sha256" not in want:  # an inventory or its sidecar, recorded by sha512 only:
            _hash_remote(storage, key, [(rel, want, size)], True, recorder, progress, stop)
            continue                  # small, so fetched and hashed (case 63: passed unread)
        else:
            ours = base64.b64encode(bytes.fromhex(want["sha256"])).decode()
            if stored[1] != ours:
                recorder.problem(rel, "corrupt", f"the store's SHA-256 is {stored[1]}, "
                                 f"recorded {ours}")
            else:
                recorder.good(rel)
        _checked(recorder, progress, 1, 0)


def _checked(recorder, progress, files: int, nbytes: int) -> None:
    recorder.result.files += files
    recorder.result.bytes_read += nbytes
    progress.advance(files, nbytes)
    recorder.checked_batch(files)


def _compare(rel, want, digests, recorder) -> None:
    for algorithm, digest in want.items():
        if digests.get(algorithm) != digest:
            recorder.problem(rel, "corrupt",
                             f"{algorithm} is {digests.get(algorithm)}, recorded {digest}")
            return
    recorder.good(rel)


def _event(repo, storage, visit: _Visit, found: list[Problem], checked: int) -> EventRecord:
    """A PREMIS fixity check event: in the catalog, and stored beside the bag."""
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
    store_log_event(storage, ocfl.object_of(key), aip_id, event, f"{storage.name}-v{version}")
    return EventRecord(event.identifier, aip_id, event.type, event.datetime, outcome, detail,
                       summary, agent)
