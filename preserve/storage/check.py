"""`preserve check`: the catalog and every storage location compared, nothing read twice.

An audit asks whether the bytes of each recorded copy are still the ones ingested. This
asks whether the repository is *consistent*: is every copy the catalog records there,
whole (its tag manifest the one recorded at ingest, every file listed at its size), is
there anything at a location the catalog does not know, and what did interrupted runs
leave (unfinished ingest records, staging folders, copies in a location's .staging,
empty AIP folders, open multipart uploads, locks of ended processes). `--fix` removes
only what is provably debris (its process has ended, nothing records it); copies that
are missing or unrecorded are reported with the command that resolves them.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass, field

from preserve.domain import ocfl
from preserve.errors import EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE, Busy, PreserveError
from preserve.repository import Repository
from preserve.storage import lanes
from preserve.storage.expected import expected_digests, is_head, replica_gaps
from preserve.storage.lanes import in_lanes
from preserve.storage.object_log import INTENT, complete_documents, owner_gone_intent
from preserve.storage.recovery import WORK_STAGING, ended_work, lock_alive, recover, work_kind
from preserve.stores import LocalStorage
from preserve.stores.base import root_file_problems, write_root_files
from preserve.system import fstree
from preserve.system.locks import OWN_STAGING, writer_lock

KINDS = ("half-aip", "replica-absent", "missing-copy", "unrecorded", "foreign", "root-file",
         "leftover", "stale-lock", "unreachable")


@dataclass
class Inconsistency:
    kind: str          # one of KINDS
    where: str         # a location's name, or "repository"
    what: str          # the AIP, key or path concerned
    detail: str
    fixable: bool = False
    fixed: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CheckResult:
    findings: list[Inconsistency] = field(default_factory=list)
    aips: int = 0
    replicas: int = 0

    @property
    def status(self) -> str:
        open_ = [f for f in self.findings if not f.fixed]
        if any(f.kind == "unreachable" for f in open_):
            return "unreachable"
        return "inconsistent" if open_ else "consistent"

    @property
    def exit_code(self) -> int:
        return {"consistent": EXIT_OK, "inconsistent": EXIT_PROBLEMS,
                "unreachable": EXIT_UNREACHABLE}[self.status]

    def to_dict(self) -> dict:
        return {"status": self.status, "aips": self.aips, "replicas": self.replicas,
                "findings": [f.to_dict() for f in self.findings]}


def check(repo: Repository, *, fix: bool = False) -> CheckResult:
    result = CheckResult()
    found = result.findings.append
    running = _running_ingests(repo)
    _check_staging(repo, running, found)
    for aip_id in repo.catalog.pending():
        if aip_id not in running:
            found(Inconsistency("half-aip", "repository", aip_id, "the catalog record of an "
                                "ingest that did not finish (it is either stored or not: "
                                "--fix resolves which)", fixable=True))
    for aip_id, version in repo.catalog.pending_versions():
        if f"{aip_id}.v{version}" not in running:
            found(Inconsistency("half-aip", "repository", f"{aip_id} v{version}", "a version "
                                "whose writing did not finish (it is either stored or not: "
                                "--fix resolves which)", fixable=True))
    recorded: dict[str, dict[str, tuple[str, int]]] = {}
    for aip_id, version, location, key in repo.catalog.replicas():
        recorded.setdefault(location, {})[key] = (aip_id, version)
    result.replicas = sum(len(r) for r in recorded.values())
    result.aips = len({a for r in recorded.values() for a, _ in r.values()})
    for location in repo.replica_locations():
        for aip_id, version in repo.catalog.versions_without_replica(location.name):
            found(Inconsistency("missing-copy", location.name, f"{aip_id} v{version}",
                                "the replication policy asks for a copy here and none is "
                                "recorded ('preserve replicate' makes it)"))
    for name, location in repo.locations.items():
        try:
            location.check_reachable()
        except PreserveError as e:
            found(Inconsistency("unreachable", name, location.describe(), e.message))
            continue
        try:
            _check_location(repo, location, recorded.get(name, {}), running, found)
        except PreserveError as e:
            found(Inconsistency("unreachable", name, location.describe(), e.message))
    if fix:
        _fix(repo, result)
    return result


def _running_ingests(repo: Repository) -> set[str]:
    return {lock.stem for lock in repo.staging.glob("*.lock") if lock_alive(lock)}


def _check_staging(repo: Repository, running: set[str], found) -> None:
    for path in ended_work(repo):  # what tidy removes, found the same way
        found(Inconsistency("leftover", "repository", str(path), "the staging folder of a "
                            f"{work_kind(path)} whose process has ended", fixable=True))
    for entry in sorted(os.listdir(repo.staging)) if repo.staging.is_dir() else []:
        path = repo.staging / entry
        if not OWN_STAGING.fullmatch(entry):
            found(Inconsistency("foreign", "repository", str(path), "not something preserve "
                                "puts in its staging folder (a person's, or another tool's): "
                                "look at it and move it away; preserve never removes it"))
        elif entry.startswith(WORK_STAGING):
            continue
        elif entry.startswith(INTENT):
            if owner_gone_intent(entry):
                found(Inconsistency("unwritten-record", "repository", str(path), "the PREMIS "
                                    "document of an event an interrupted run recorded but did "
                                    "not write (--fix, or the next writing command, writes "
                                    "it)", fixable=True))
        elif entry.endswith(".lock"):
            if entry[:-5] not in running:
                found(Inconsistency("stale-lock", "repository", str(path), "the lock of an "
                                    "ingest whose process has ended", fixable=True))
        elif entry not in running:
            found(Inconsistency("leftover", "repository", str(path), "the staging folder of "
                                "an ingest whose process has ended", fixable=True))


def _check_location(repo, location, recorded: dict[str, tuple[str, int]], running,
                    found) -> None:
    name = location.name
    pending = set(repo.catalog.pending_versions())  # reported as half-aip
    if isinstance(location, LocalStorage):
        for path in location.leftovers():
            found(Inconsistency("leftover", name, str(path), "a copy into the location's "
                                "staging area by a process that has ended", fixable=True))
    else:
        for key in location.open_uploads():
            found(Inconsistency("leftover", name, key, "a multipart upload left open by an "
                                "interrupted copy", fixable=True))
    for key, why, missing in root_file_problems(location):
        found(Inconsistency("root-file", name, key, why + (" (--fix writes it again)"
                                                           if missing else ""),
                            fixable=missing))
    strays: list[tuple[str, str]] = []
    for key, aip_id, version in location.stored_versions(strays):
        if version is None:
            held = _held_besides_declaration(location, key)
            if not held:
                found(Inconsistency("leftover", name, key, "an object folder holding only "
                                    "its declaration (a first copy interrupted before its "
                                    "version)", fixable=True))
            else:
                found(Inconsistency("unrecorded", name, key, f"an object folder of AIP "
                                    f"{aip_id} holding no version folder preserve writes, "
                                    f"but {len(held)} file(s) ({', '.join(held[:3])}): "
                                    "another tool's OCFL object, or a version folder "
                                    "renamed; look at it (preserve never removes it)"))
        elif key not in recorded and aip_id not in running and \
                f"{aip_id}.v{version}" not in running and (aip_id, version) not in pending:
            found(Inconsistency("unrecorded", name, key, f"AIP {aip_id} v{version} is here "
                                "but the catalog records no copy of it at this location "
                                "(an upload interrupted before it was recorded, or something "
                                "another tool put there): 'preserve replicate' replaces an "
                                "interrupted copy; anything else, look at it"))
    for key, why in strays:
        found(Inconsistency("foreign", name, key, f"{why}: look at it (preserve never "
                            "removes it)"))
    for key, (aip_id, version), gaps in _gaps(repo, location, sorted(recorded.items())):
        if isinstance(gaps, PreserveError):
            found(Inconsistency("replica-absent", name, key, gaps.message))
        elif gaps[0]:
            found(Inconsistency("replica-absent", name, key,
                                f"recorded as a copy of AIP {aip_id} v{version}, but "
                                f"{gaps[0]} file(s) are not there as recorded: "
                                + "; ".join(gaps[1]) + " ('preserve repair' restores them)"))


def _gaps(repo: Repository, location, replicas: list[tuple[str, tuple[str, int]]]):
    """(key, (AIP, version), (how many files the replica lacks, the first five named) or
    why it could not be listed) for each recorded replica, in order: a listing each, an
    object store's lanes.READS_AT_ONCE at once (each a round trip across a WAN: a check of
    100 AIPs 40 ms away waited 100 in turn), each lane comparing in its own catalog
    connection."""
    outcomes: dict[str, tuple[int, list[str]] | PreserveError] = {}

    def compare(items, here: Repository) -> None:
        for key, (aip_id, version) in items:
            tags = expected_digests(here.catalog, aip_id, version,
                                    root=is_head(here.catalog, aip_id, version,
                                                 location.name)).tags
            try:
                gaps = replica_gaps(here.catalog, aip_id, version, location, key, tags)
                outcomes[key] = (len(gaps), gaps[:5])
            except PreserveError as e:
                outcomes[key] = e

    if isinstance(location, LocalStorage) or len(replicas) <= 1:
        compare(replicas, repo)
    else:
        in_lanes(repo, [[replica] for replica in replicas],
                 min(lanes.READS_AT_ONCE, len(replicas)), compare, threading.Event())
    for key, (aip_id, version) in replicas:
        yield key, (aip_id, version), outcomes[key]


def _fix(repo: Repository, result: CheckResult) -> None:
    """Remove what is provably debris; every other finding stays reported."""
    fixable = [f for f in result.findings if f.fixable]
    if any(f.kind == "half-aip" for f in fixable):
        recover(repo)
    pending = set(repo.catalog.pending()) | {
        f"{aip_id} v{version}" for aip_id, version in repo.catalog.pending_versions()}
    for finding in fixable:
        finding.fixed = _fix_one(repo, finding, pending)


def _held_besides_declaration(location, key: str) -> list[str]:
    """What an object folder holds besides the declaration preserve writes first (names
    relative to the folder). Empty only for the debris of an interrupted first copy: a
    declaration of any other text, an inventory, content or logs are never debris."""
    held = []
    for info in location.list(key):
        rel = info.key[len(key):]
        if rel == ocfl.OBJECT_DECLARATION and info.size == len(
                ocfl.declaration(ocfl.OBJECT_DECLARATION)):
            with location.open(info.key) as f:
                if f.read(64) == ocfl.declaration(ocfl.OBJECT_DECLARATION):
                    continue
        held.append(rel)
    return held


def _fix_one(repo: Repository, finding: Inconsistency, pending: set[str]) -> bool:
    if finding.kind == "half-aip":
        return finding.what not in pending
    if finding.kind == "unwritten-record":  # written, never removed unwritten
        complete_documents(repo)
        return not os.path.lexists(finding.what)
    if finding.where == "repository":  # a stale lock, a staging folder of an ended run
        fstree.rmtree(finding.what, ignore_errors=True)
        return not os.path.lexists(finding.what)
    location = repo.locations[finding.where]
    if finding.kind == "root-file":  # restored, never removed
        write_root_files(location, [finding.what])
        return not any(key == finding.what for key, _, _ in root_file_problems(location))
    if isinstance(location, LocalStorage) and \
            finding.what.startswith(str(location.staging_dir())):
        fstree.rmtree(finding.what, ignore_errors=True)
        return not os.path.lexists(finding.what)
    aip_id = ocfl.id_of_root(finding.what)
    if aip_id is not None:  # an object folder holding only its declaration: a first copy
        try:               # interrupted before its version (looked into again, locked)
            with writer_lock(repo.root, location.name, aip_id, wait=False, catalog=repo.catalog):
                if repo.catalog.head_at(aip_id, location.name) == 0 and \
                        not _held_besides_declaration(location, finding.what):
                    location.delete_prefix(finding.what)
                    location.abort_uploads(finding.what)
                    if isinstance(location, LocalStorage):
                        location.remove_empty_folders(finding.what)
        except Busy:
            return False
        return not any(True for _ in location.list(finding.what))
    root = "/".join(finding.what.split("/")[:4]) + "/"  # the object an upload was for
    aip_id = ocfl.id_of_root(root) or ""
    try:  # an upload whose writer still runs is not debris: never wait for it
        with writer_lock(repo.root, location.name, aip_id, wait=False, catalog=repo.catalog):
            location.abort_uploads(root)
    except Busy:
        return False
    return finding.what not in location.open_uploads()
