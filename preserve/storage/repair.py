"""Repair: restore damaged replica files from a copy whose bytes match the record.

For each problem a full audit found (corrupt, truncated or missing files), the
other replicas of the same AIP version are tried in turn: the file is read
from one, hashed with every recorded algorithm, and used only if it matches.
It is staged on local disk, written over the damaged copy (atomically on a
disk, as a verified upload on an object store), read back and checked again.
PREMIS events record each step. When no replica holds a good copy, nothing is
changed and the report says so. Unexpected files are reported, never deleted:
what they are is for an archivist to decide.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preserve import AGENT_NAME, __version__
from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.fixity import hash_stream, write_all
from preserve.domain.premis import Agent, Event
from preserve.domain.progress import Progress, Silent
from preserve.errors import EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE, PreserveError
from preserve.repository import Repository
from preserve.storage.audit import audit
from preserve.storage.audit_records import Problem, has_record
from preserve.storage.expected import expected_digests
from preserve.storage.object_log import event_record, record_event
from preserve.storage.recovery import REPAIR_STAGING, tidy
from preserve.stores.base import root_file_problems, write_root_files
from preserve.system.locks import writer_lock

REPAIRABLE = ("corrupt", "truncated", "missing", "inventory")
FETCH_AHEAD = 8  # good copies sought at once (each a round trip or more from a store)


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

    def to_dict(self) -> dict:
        return asdict(self)


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
    for problem, want, good in _fetched_ahead(repo, repairable):
        done = _repair_one(repo, problem, want, good)
        result.repairs.append(done)
        # recorded at once: a kill later in the run must not leave a restoration without
        # its PREMIS event (red-team case 51)
        _record_events(repo, done)
        if done.outcome == "repaired" and has_record(done.path):
            # read back and verified: no longer due for the next audit
            repo.catalog.mark_verified((done.aip, done.version, done.location), [done.path],
                                       now_utc(precise=True))
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


def _repair_one(repo: Repository, problem: Problem, want: dict[str, str],
                good: tuple[str, Path] | None) -> Repair:
    """Write the good copy found (where from, its staged file) over the damaged one, read
    it back and check it."""
    if good is None:
        return Repair(problem.aip, problem.version, problem.location, problem.path,
                      problem.kind, "no good copy", None,
                      "NO replica holds a copy matching the record; nothing was changed")
    target = repo.locations[problem.location]
    key = ocfl.key_of(repo.catalog.replica_key(problem.aip, problem.version, problem.location),
                      problem.path)
    source_name, staged = good
    try:
        with writer_lock(repo.root, target.name, problem.aip, catalog=repo.catalog):
            answer = target.replace_file(key, staged)
            repo.catalog.set_composite_checksum(problem.aip, problem.version,
                                                problem.location, problem.path,
                                                answer.composite)
        verified = _verify_in_place(target, key, want)
        # the ETag the next quick audit compares: this upload's, once read back
        repo.catalog.learn_etags(problem.aip, problem.version, problem.location,
                                 [(problem.path, answer.etag if verified else None)])
        if not verified:
            return Repair(problem.aip, problem.version, problem.location, problem.path,
                          problem.kind, "failed", source_name,
                          "written, but reading it back did not verify")
    except PreserveError as e:
        return Repair(problem.aip, problem.version, problem.location, problem.path,
                      problem.kind, "failed", source_name, e.message)
    return Repair(problem.aip, problem.version, problem.location, problem.path,
                  problem.kind, "repaired", source_name,
                  f"restored from '{source_name}' and verified")


def _fetched_ahead(repo: Repository, problems: list[Problem]):
    """(problem, what it must hash to, the first good copy found or None) for each, in
    order. Good copies are found FETCH_AHEAD at once, ahead of the one being written: a
    disk restored from an object store across a WAN waited a round trip per file, one
    after another. What to try is read from the catalog here (its connection is this
    thread's); the workers only read storage and hash. Each copy is staged in a folder
    of its own, removed once written (or by tidy, after a run that ended)."""
    pending: deque = deque()
    pool = ThreadPoolExecutor(FETCH_AHEAD, thread_name_prefix="fetch")

    def settled():
        problem, want, staging, future = pending.popleft()
        try:
            yield problem, want, future.result()
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    try:
        for problem in problems:
            want = _want(repo, problem)
            staging = repo.staging / f"{REPAIR_STAGING}{os.getpid()}-{uuid.uuid4()}"  # tidy
            staging.mkdir(parents=True)
            pending.append((problem, want, staging, pool.submit(
                _first_good, _candidates(repo, problem), want, staging)))
            if len(pending) > FETCH_AHEAD:
                yield from settled()
        while pending:
            yield from settled()
    finally:
        for *_, future in pending:
            future.cancel()
        pool.shutdown(wait=True)
        for _, _, staging, _ in pending:
            shutil.rmtree(staging, ignore_errors=True)


def _want(repo, problem) -> dict[str, str]:
    """What the file must hash to: the catalog's record (content files, inventories, and
    the object root's files of the version that is the head where the damage is)."""
    return dict(expected_digests(repo.catalog, problem.aip, problem.version, root=True)
                .digests(problem.path) or {})


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


def _verify_in_place(target, key: str, want: dict[str, str]) -> bool:
    if not want:
        return False
    try:
        with target.open(key) as f:
            _, digests, _ = hash_stream(f, list(want))
    except (OSError, PreserveError):
        return False
    return all(digests[a] == d for a, d in want.items())


def _record_events(repo: Repository, r: Repair) -> None:
    """The audit already recorded the failed fixity check; add the repair and, once the
    repaired copy has been read back, the fixity check that passed: in the catalog, and in
    the object's logs/ at the repaired location (a rebuilt catalog has them back)."""
    agent = f"{AGENT_NAME}-{__version__}"
    outcome = "success" if r.outcome == "repaired" else "failure"
    events = [Event("replication", now_utc(), outcome,
                    f"repair of {r.path} ({r.kind}) at location '{r.location}'", r.detail,
                    [(agent, "executing program")])]
    if r.outcome == "repaired":
        events.append(Event("fixity check", now_utc(), "success",
                            f"{r.path} at location '{r.location}' re-read after repair",
                            "matches the recorded digests", [(agent, "executing program")]))
    storage = repo.locations.get(r.location)
    agents = [Agent(agent, AGENT_NAME, "software", __version__)]
    for event in events:
        if storage is None:  # a location no longer configured: the catalog alone
            repo.catalog.add_events([event_record(r.aip, event, None)])
        else:
            record_event(repo, storage, ocfl.object_root(r.aip), r.aip, event,
                         f"repair-{r.location}-v{r.version}", agents)
