"""Fixity audits: is every copy of every file still what was ingested?

For each replica (an AIP version at one location) the audit compares what
the location holds with what we trust (services/expected.py: catalog digests
for payload, the tag manifest checked against the package digest for tag
files) and names each problem with its kind:

    corrupt      the bytes (or the store's checksum) differ from the record
    truncated    the size differs from the record
    missing      a file of the bag is not there
    unexpected   a file no manifest lists is there
    unreachable  the location cannot be reached (never reported as missing)
    read-error   the file is there but cannot be read

A *quick* audit checks sizes and the fast xxh3 digests on local disks, and on
object stores the store's own SHA-256 and size, downloading nothing. A *full*
audit re-reads every byte and re-hashes it with the manifest algorithms, on
both cores. Every run is recorded in the catalog, and each replica checked
gets a PREMIS "fixity check" event, in the catalog and as a new event record
stored beside the bag (the bag itself is never rewritten).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
import time
import uuid
from contextlib import suppress
from dataclasses import asdict, dataclass, field

from preserve import AGENT_NAME, __version__
from preserve.domain.fixity import FAST_ALGORITHM, hash_batch, hash_stream
from preserve.domain.model import EventRecord
from preserve.domain.premis import Event, PremisWriter
from preserve.errors import EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE, FixityMismatch, PreserveError
from preserve.infrastructure.repository import Repository
from preserve.infrastructure.storage import LocalStorage
from preserve.infrastructure.storage.s3 import S3Storage
from preserve.parallel import batched, default_workers, run_batches
from preserve.services.common import Progress, Silent, now_utc
from preserve.services.expected import expected_digests

KINDS = ("corrupt", "truncated", "missing", "unexpected", "unreachable", "read-error", "stale")


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
                "started": self.started, "finished": self.finished, "replicas": self.replicas,
                "files": self.files, "bytes_read": self.bytes_read,
                "problems": [p.to_dict() for p in self.problems]}


def audit(repo: Repository, *, aips: list[str] | None = None, location: str | None = None,
          full: bool = False, due: bool = False, sample: float | None = None,
          budget_bytes: int | None = None, budget_seconds: float | None = None,
          workers: int | None = None, progress: Progress | None = None) -> AuditResult:
    """Audit replicas; with `due`, those the fixity policy says are due, least recently
    audited first, within the policy's (or the given) sample share and budgets."""
    progress = progress or Silent()
    policy = repo.policy.audit
    mode = "full" if full else ("policy" if due else "quick")
    result = AuditResult(str(uuid.uuid4()), mode, now_utc())
    wanted = {repo.catalog.resolve(a) for a in aips} if aips else None
    now = dt.datetime.now(dt.UTC)
    candidates = []
    for aip_id, version, loc, key, collection, stored, last in repo.catalog.replicas_to_audit():
        if (wanted is not None and aip_id not in wanted) or (location and loc != location):
            continue
        rule = policy.rule_for(collection, loc)
        age_days = (now - _parse(last or stored)).total_seconds() / 86400
        if due and age_days < rule.interval_days:  # age: since the last audit, or since storing
            continue
        kind = "full" if full else (rule.kind if due else "quick")
        candidates.append((aip_id, version, loc, key, kind, age_days, rule.interval_days,
                           last is None))
    share = sample if sample is not None else (policy.sample if due else 1.0)
    chosen = candidates[: max(1, math.ceil(len(candidates) * share))] if candidates else []
    budget_bytes = budget_bytes if budget_bytes is not None else (
        policy.budget_bytes if due else None)
    budget_seconds = budget_seconds if budget_seconds is not None else (
        policy.budget_seconds if due else None)
    sizes = {(a, v): repo.catalog.version_info(a, v)["bytes"] for a, v, *_ in chosen}
    progress.start("audit", len(chosen), sum(sizes[(a, v)] for a, v, *_ in chosen))
    repo.catalog.start_audit(result.run_id, result.started, mode)
    reachable: dict[str, bool] = {}
    started = time.monotonic()
    done: set[tuple[str, int, str]] = set()
    for aip_id, version, loc, key, kind, *_ in chosen:
        if (budget_bytes and result.bytes_read >= budget_bytes) or (
                budget_seconds and time.monotonic() - started >= budget_seconds):
            break  # what is left stays due; the next run starts with it
        before = len(result.problems)
        storage = repo.locations.get(loc)
        events, replica = [], None
        if storage is None or not _reachable(storage, reachable):
            result.problems.append(Problem(aip_id, version, loc, None, "unreachable",
                                           f"location '{loc}' could not be reached"
                                           if storage else f"location '{loc}' is not configured"))
        else:
            _audit_replica(repo, storage, aip_id, version, key, kind == "full", workers, result)
            replica = (aip_id, version, loc)
            events = [_event(repo, storage, aip_id, version, key, kind,
                             result.problems[before:])]
        result.replicas += 1
        done.add((aip_id, version, loc))
        repo.catalog.record_replica_audit(
            result.run_id, replica, now_utc(),
            [(p.aip, p.version, p.location, p.path, p.kind, p.detail)
             for p in result.problems[before:]], events)
        progress.advance(1, sizes[(aip_id, version)])
    stale = [Problem(a, v, loc, None, "stale",
                     "never audited" if never else f"last audited {age:.0f} days ago; policy "
                     f"asks every {interval:g} days")
             for a, v, loc, _k, _kind, age, interval, never in candidates
             if (a, v, loc) not in done and age >= 2 * interval]
    result.problems.extend(stale)
    if stale:
        repo.catalog.record_replica_audit(
            result.run_id, None, now_utc(),
            [(p.aip, p.version, p.location, p.path, p.kind, p.detail) for p in stale], [])
    result.finished = now_utc()
    repo.catalog.finish_audit(result.run_id, result.finished, result.status, result.replicas,
                              result.files, result.bytes_read)
    return result


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _expected_elsewhere(repo, damaged, aip_id, version) -> dict | None:
    """When a replica's own tag manifest is damaged: what every file should be, according
    to another replica whose tag manifest still matches the package digest."""
    for name in repo.catalog.replica_locations(aip_id, version):
        other = repo.locations.get(name)
        if other is None or name == damaged.name:
            continue
        try:
            key = repo.catalog.replica_key(aip_id, version, name)
            return expected_digests(repo.catalog, aip_id, version, other, key).files
        except PreserveError:
            continue
    return None


def _reachable(storage, cache: dict[str, bool]) -> bool:
    if storage.name not in cache:
        try:
            storage.check_reachable()
            cache[storage.name] = True
        except PreserveError:
            cache[storage.name] = False
    return cache[storage.name]


def _audit_replica(repo, storage, aip_id, version, key, full, workers, result) -> None:
    named: set[str | None] = set()

    def problem(path, kind, detail):  # one problem per file: the first found says it
        if path not in named:
            named.add(path)
            result.problems.append(Problem(aip_id, version, storage.name, path, kind, detail))

    catalog_files = {f.path: f for f in repo.catalog.files(aip_id, version)}
    try:
        expected = expected_digests(repo.catalog, aip_id, version, storage, key).files
    except FixityMismatch as e:
        tagmanifest = repo.catalog.version_info(aip_id, version)["tagmanifest"]
        problem(tagmanifest, "missing" if "missing" in e.message else "corrupt", e.message)
        expected = _expected_elsewhere(repo, storage, aip_id, version) or {
            rel: dict(f.digests) for rel, f in catalog_files.items()}
    try:
        listing = {o.key[len(key):]: o.size for o in storage.list(key)}
    except PreserveError as e:
        problem(None, "unreachable", e.message)
        return
    for rel in sorted(set(listing) - set(expected)):
        if rel.startswith("data/") or any(not p.startswith("data/") for p in expected):
            problem(rel, "unexpected", "a file no manifest lists")
    to_check: list[tuple[str, dict[str, str]]] = []
    for rel, want in sorted(expected.items()):
        if rel not in listing:
            problem(rel, "missing", "not at this location")
            continue
        record = catalog_files.get(rel)
        if record is not None and listing[rel] != record.size:
            problem(rel, "truncated", f"{listing[rel]} bytes, {record.size} recorded")
            continue
        to_check.append((rel, want))
    result.files += len(to_check)
    if isinstance(storage, S3Storage) and not full:
        _quick_s3(storage, key, to_check, problem)
    elif isinstance(storage, LocalStorage):
        _hash_local(storage, key, to_check, listing, full, workers, problem, result)
    else:
        _hash_remote(storage, key, to_check, full, problem, result)


def _choose(want: dict[str, str], full: bool) -> dict[str, str]:
    """Quick: the fast digest where there is one. Full: every manifest algorithm."""
    if not full and FAST_ALGORITHM in want:
        return {FAST_ALGORITHM: want[FAST_ALGORITHM]}
    return {a: d for a, d in want.items() if a != FAST_ALGORITHM} or want


def _hash_local(storage, key, to_check, sizes, full, workers, problem, result) -> None:
    wants = {rel: _choose(want, full) for rel, want in to_check}
    path_of = storage.local_files(key)
    jobs = [(rel, path_of(rel), tuple(w)) for rel, w in wants.items()]
    jobs.sort(key=lambda j: -sizes[j[0]])  # big files first: both workers finish together
    total = sum(sizes[j[0]] for j in jobs)
    use = (workers or default_workers()) if len(jobs) > 64 or total > (64 << 20) else 1
    batches = batched(jobs, 256, 32 << 20, size=lambda j: sizes[j[0]])
    for batch in run_batches(hash_batch, batches, workers=use):
        for rel, size, digests, error in batch:
            result.bytes_read += size
            if error:
                problem(rel, "read-error", error)
                continue
            _compare(rel, wants[rel], digests, problem)


def _hash_remote(storage, key, to_check, full, problem, result) -> None:
    for rel, want in to_check:
        chosen = _choose(want, full)
        try:
            with storage.open(key + rel) as f:
                size, digests, _ = hash_stream(f, list(chosen))
        except (OSError, PreserveError) as e:
            problem(rel, "read-error", str(e))
            continue
        result.bytes_read += size
        _compare(rel, chosen, digests, problem)


def _quick_s3(storage, key, to_check, problem) -> None:
    for rel, want in to_check:
        stored = storage.stored_checksum(key + rel)
        if stored is None:
            problem(rel, "missing", "not at this location")
            continue
        _size, checksum, composite = stored
        if composite or "sha256" not in want:
            continue  # a multipart composite can only be checked by a full audit
        ours = base64.b64encode(bytes.fromhex(want["sha256"])).decode()
        if checksum != ours:
            problem(rel, "corrupt", f"the store's SHA-256 is {checksum}, recorded {ours}")


def _compare(rel, want, digests, problem) -> None:
    for algorithm, digest in want.items():
        if digests.get(algorithm) != digest:
            problem(rel, "corrupt", f"{algorithm} is {digests.get(algorithm)}, recorded {digest}")
            return


def _event(repo, storage, aip_id, version, key, kind, found) -> EventRecord:
    """A PREMIS fixity check event: in the catalog, and stored beside the bag."""
    outcome = "success" if not found else "failure"
    how = ("every byte re-hashed" if kind == "full"
           else "sizes and fast digests, or the store's checksums")
    detail = (f"{kind} fixity audit of AIP version {version} at location "
              f"'{storage.name}' ({how})")
    summary = "no problem found" if not found else "; ".join(
        f"{p.kind}: {p.path}" for p in found[:20]) + (" …" if len(found) > 20 else "")
    agent = f"{AGENT_NAME}-{__version__}"
    event = Event("fixity check", now_utc(), outcome, detail, summary,
                  [(agent, "executing program")])
    buffer = io.StringIO()
    writer = PremisWriter(buffer, aip_id)
    writer.finish([event], [])
    stamp = event.datetime.replace(":", "").replace("-", "")
    record_key = (f"{key.rstrip('/').rsplit('/', 1)[0]}/events/{stamp}-{storage.name}-"
                  f"{event.identifier}.xml")
    with suppress(PreserveError):  # the catalog keeps the event whatever happens here
        storage.put_bytes(record_key, buffer.getvalue().encode("utf-8"))
    return EventRecord(event.identifier, aip_id, event.type, event.datetime, outcome, detail,
                       summary, agent)
