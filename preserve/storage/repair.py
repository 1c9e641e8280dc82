"""Repair: restore damaged replica files from a copy whose bytes match the record.

For each problem a full audit found (corrupt, truncated or missing files), the
other replicas of the same AIP version are tried in turn: the file is read
from one, hashed with every recorded algorithm, and used only if it matches.
It is staged on local disk, written over the damaged copy (atomically on a
disk, as a verified upload on an object store), read back and checked again,
several files at once (_restored). PREMIS events record each step; a
restoration is kept as an intent until they are (restorations.py). When no
replica holds a good copy, nothing is changed and the report says so.
Unexpected files are reported, never deleted: what they are is for an
archivist to decide.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.fixity import hash_stream, write_all
from preserve.domain.progress import Progress, Silent
from preserve.errors import EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE, Busy, PreserveError
from preserve.repository import Repository
from preserve.storage.audit import audit
from preserve.storage.audit_records import Problem, has_record
from preserve.storage.object_log import DocumentWriter
from preserve.storage.recovery import REPAIR_STAGING, tidy
from preserve.storage.restorations import (
    INTENT,
    keep_intent,
    record_restoration,
    verified_in_place,
    want,
)
from preserve.stores.base import root_file_problems, write_root_files
from preserve.system.locks import writer_lock

REPAIRABLE = ("corrupt", "truncated", "missing", "inventory")
WRITERS = 8  # files restored at once (each a round trip or more to or from a store)


@dataclass
class Repair:
    aip: str
    version: int
    location: str
    path: str
    kind: str
    outcome: str  # "repaired", "no good copy", "failed"
    source: str | None = None
    detail: str = ""
    event: str | None = None  # the replication event's identifier, once it was written

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["event"]
        return out


@dataclass
class RepairResult:
    repairs: list[Repair] = field(default_factory=list)
    untouched: list[Problem] = field(default_factory=list)  # unexpected files, unreachable

    @property
    def status(self) -> str:
        """As an audit's: damage not repaired outranks an unreachable location, which is
        never 'ok' (red-team case 86: exit 0 while a location could not be reached)."""
        if any(r.outcome != "repaired" for r in self.repairs) or any(
                p.kind != "unreachable" for p in self.untouched):
            return "problems"
        return "unreachable" if self.untouched else "ok"

    @property
    def exit_code(self) -> int:
        return {"ok": EXIT_OK, "problems": EXIT_PROBLEMS,
                "unreachable": EXIT_UNREACHABLE}[self.status]

    def to_dict(self) -> dict:
        return {"status": self.status,
                "repairs": [r.to_dict() for r in self.repairs],
                "not_repaired": [p.to_dict() for p in self.untouched]}


def repair(repo: Repository, *, aips: list[str] | None = None,
           progress: Progress | None = None) -> RepairResult:
    tidy(repo)
    found = audit(repo, aips=aips, full=True, progress=progress or Silent())
    result = RepairResult()
    repairable = []
    for problem in found.problems:
        if problem.kind == "storage-root":  # a location's own files: after the AIPs'
            continue
        if problem.kind not in REPAIRABLE or problem.path is None:
            result.untouched.append(problem)
        else:
            repairable.append(problem)
    for done in _restored(repo, repairable):
        result.repairs.append(done)
    touched = {p.location for p in found.problems if p.kind == "storage-root"} | {
        r.location for r in result.repairs if r.outcome == "repaired"}
    for name in sorted(touched):
        result.repairs += _repair_root_files(repo, name)
    return result


def _repair_root_files(repo: Repository, name: str) -> list[Repair]:
    """A storage root's declaration, layout file and layout configuration, written again
    as preserve writes them where they are missing, once the location holds anything
    (a bucket emptied and re-created has them back with its objects: issue 22); one
    whose text was changed is left for a person (another tool may use another layout)."""
    target = repo.locations[name]
    out = []
    try:
        problems = root_file_problems(target)
        write_root_files(target, [key for key, _, missing in problems if missing])
    except PreserveError as e:
        return [Repair("", 0, name, key, "storage-root", "failed", None, e.message)
                for key in ocfl.root_files()]
    for key, why, missing in problems:
        out.append(Repair("", 0, name, key, "storage-root", "repaired" if missing else "failed",
                          None, "written again as preserve writes it" if missing else why))
    return out


def _restored(repo: Repository, problems: list[Problem]):
    """Each problem's Repair, in order, its events recorded. WRITERS files are restored at
    once (a disk restored from an object store, or an object store from a disk, across a
    WAN waited a round trip or more per file, one after another): each thread finds a
    good copy, keeps the restoration as an intent (restorations.py), writes the copy and
    reads it back. This thread, which owns the catalog, reads what to try and records
    each outcome in order, the event documents written meanwhile by DocumentWriter; it
    holds the (location, AIP) writer locks while their files are written. Each copy is
    staged in a folder of its own, removed once its events are recorded (or by tidy,
    after a run that ended, which first finishes the record of what it restored)."""
    pending: deque = deque()
    locks: dict[tuple[str, str], list] = {}  # (location, AIP) -> [its lock held, files pending]
    documents = DocumentWriter(repo.catalog, WRITERS)

    def settled():
        problem, staging, future = pending.popleft()
        recorded = False
        try:
            done, answer = future.result()
            _record(repo, done, answer, documents)
            recorded = True
            yield done
        finally:
            _leave(staging, future, recorded)
            held = locks[(problem.location, problem.aip)]
            held[1] -= 1
            if not held[1]:
                held[0].close()
                del locks[(problem.location, problem.aip)]

    pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="repair")
    try:
        for problem in problems:
            which = (problem.location, problem.aip)
            if which not in locks:
                lock = ExitStack()
                try:
                    lock.enter_context(writer_lock(repo.root, *which, wait=False,
                                                   catalog=repo.catalog))
                except Busy:  # another run writes it: wait for it holding no other lock
                    while pending:
                        yield from settled()
                    lock.enter_context(writer_lock(repo.root, *which, catalog=repo.catalog))
                locks[which] = [lock, 0]
            locks[which][1] += 1
            staging = repo.staging / f"{REPAIR_STAGING}{os.getpid()}-{uuid.uuid4()}"  # tidy
            staging.mkdir(parents=True)
            key = ocfl.key_of(repo.catalog.replica_key(problem.aip, problem.version,
                                                       problem.location), problem.path)
            pending.append((problem, staging, pool.submit(
                _restore, repo.locations[problem.location], key, problem,
                want(repo.catalog, problem.aip, problem.version, problem.path),
                _candidates(repo, problem), staging)))
            if len(pending) > WRITERS:
                yield from settled()
        while pending:
            yield from settled()
    finally:
        for *_, future in pending:
            future.cancel()
        pool.shutdown(wait=True)
        for _, staging, future in pending:
            _leave(staging, future, recorded=False)
        documents.close()
        for lock, _ in locks.values():
            lock.close()


def _leave(staging: Path, future, recorded: bool) -> None:
    """A restoration's working folder, removed once its events are recorded or where
    nothing was written; otherwise its intent is kept for tidy (restorations.py)."""
    if recorded or future.cancelled() or not (staging / INTENT).exists():
        shutil.rmtree(staging, ignore_errors=True)


def _restore(target, key: str, problem: Problem, digests: dict[str, str], candidates,
             staging: Path) -> tuple[Repair, object]:
    """(the Repair, the store's answer to the write or None): the first good copy found
    written over the damaged one at `target`, the restoration kept in `staging` first,
    then read back and checked (a thread of _restored's: storage only, no catalog)."""
    good = _first_good(candidates, digests, staging)
    if good is None:
        return Repair(problem.aip, problem.version, problem.location, problem.path,
                      problem.kind, "no good copy", None,
                      "NO replica holds a copy matching the record; nothing was changed"), None
    source_name, staged = good
    event = keep_intent(staging, problem.aip, problem.version, problem.location,
                        problem.path, problem.kind, source_name)
    try:
        answer = target.replace_file(key, staged)
    except PreserveError as e:
        return Repair(problem.aip, problem.version, problem.location, problem.path,
                      problem.kind, "failed", source_name, e.message, event), None
    if not verified_in_place(target, key, digests):
        return Repair(problem.aip, problem.version, problem.location, problem.path,
                      problem.kind, "failed", source_name,
                      "written, but reading it back did not verify", event), answer
    return Repair(problem.aip, problem.version, problem.location, problem.path,
                  problem.kind, "repaired", source_name,
                  f"restored from '{source_name}' and verified", event), answer


def _record(repo: Repository, done: Repair, answer, documents: DocumentWriter) -> None:
    """What a restoration changed, in the catalog: the composite checksum and the ETag the
    next quick audit compares (this upload's, once read back), its events, and the file
    no longer due for an audit."""
    replica = (done.aip, done.version, done.location)
    if answer is not None:
        repo.catalog.set_composite_checksum(*replica, done.path, answer.composite)
        repo.catalog.learn_etags(*replica, [(done.path, answer.etag
                                             if done.outcome == "repaired" else None)])
    record_restoration(repo, repo.locations.get(done.location), *replica, done.path,
                       done.kind, done.outcome, done.detail, done.event, documents=documents)
    if done.outcome == "repaired" and has_record(done.path):
        repo.catalog.mark_verified(replica, [done.path], now_utc(precise=True))


def _candidates(repo, problem) -> list[tuple[str, object, str | None]]:
    """(where from, its storage, the key there) of each copy that may serve, in the order
    tried. An object root's inventory is the head version's inventory, so that version's
    own copy serves, at the damaged location too; an object declaration is the spec's
    constant (no storage)."""
    if problem.path == "/" + ocfl.OBJECT_DECLARATION:
        return [("the OCFL specification", None, None)]
    from_version = ocfl.is_inventory(problem.path) and problem.path.startswith("/")
    rel = problem.path.lstrip("/") if from_version else problem.path
    out = []
    for name in repo.catalog.replica_locations(problem.aip, problem.version):
        if (name == problem.location and not from_version) or name not in repo.locations:
            continue
        vkey = repo.catalog.replica_key(problem.aip, problem.version, name)
        out.append((name, repo.locations[name], ocfl.key_of(vkey, rel)))
    return out


def _first_good(candidates, want: dict[str, str], staging: Path) -> tuple[str, Path] | None:
    """The first candidate whose bytes match `want`, staged in `staging`."""
    if not want:
        return None
    for name, source, key in candidates:
        if source is None:
            good = staging / "good"
            good.write_bytes(ocfl.declaration(ocfl.OBJECT_DECLARATION))
            return name, good
        good = _fetch(source, key, want, staging)
        if good is not None:
            return name, good
    return None


def _fetch(source, key: str, want: dict[str, str], staging):
    """The file at `key`, staged locally, if every recorded digest matches."""
    path = staging / "good"
    try:
        with source.open(key) as src, open(path, "wb") as out:
            _, digests, _ = hash_stream(src, list(want), sink=write_all(out.write))
    except (OSError, PreserveError):
        return None
    return path if all(digests[a] == d for a, d in want.items()) else None
