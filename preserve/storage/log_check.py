"""`log verify`: the event log checked (issue 24). The catalog's log against its signed
checkpoints (and one kept outside the repository), then every location's copy of the log
and every object's logs/ documents and version inventories against the catalog's, each
difference named (edited, inserted, removed, reordered, truncated, not copied). The log is
written and copied by storage/history.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from itertools import zip_longest

from preserve.domain import checkpoint as notes
from preserve.domain import ocfl
from preserve.domain.merkle import MerkleTree, leaf_hash
from preserve.domain.model import Verdict
from preserve.errors import PreserveError
from preserve.repository import Repository
from preserve.storage.history import (
    CHECKPOINTS,
    ENTRIES,
    LOG_DIR,
    checkpoint_key,
    publish,
    signing_key,
)

# The kinds of problem verify names (the user guide explains each).
KINDS = ("edited", "inserted", "removed", "reordered", "truncated", "checkpoint", "not-copied",
         "unlogged")


@dataclass
class LogProblem:
    kind: str  # one of KINDS
    where: str  # a location's name, or "catalog"
    detail: str
    aip: str | None = None
    event: str | None = None
    position: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LogReport(Verdict):
    size: int = 0
    root: str = ""
    checkpoints: int = 0
    locations: list[str] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)
    problems: list[LogProblem] = field(default_factory=list)
    documents: int = 0  # logs/ documents checked against their digests
    unprotected: int = 0  # logs/ documents of events logged before the log named documents

    def to_dict(self) -> dict:
        return {"status": self.status, "size": self.size, "root": self.root,
                "checkpoints": self.checkpoints, "locations": self.locations,
                "unreachable": self.unreachable, "documents": self.documents,
                "unprotected": self.unprotected,
                "problems": [p.to_dict() for p in self.problems]}


@dataclass
class _Record:
    position: int
    event: str
    aip: str
    file: str
    digest: str  # sha256 of a logs/ document, sha512 of a version's inventory
    version: int | None


def verify(repo: Repository, *, against: str | None = None) -> LogReport:
    """Check the catalog's log against its signed checkpoints, then every location's copy
    of the log and every object's logs/ and version inventories against the catalog's."""
    publish(repo)
    public = signing_key(repo).public_key()
    report = LogReport()
    checkpoints = repo.catalog.log_checkpoints()
    report.checkpoints = len(checkpoints)
    records, logged = _check_catalog(repo, checkpoints, public, report)
    if against is not None:
        _check_against(repo, against, public, report)
    for name, storage in sorted(repo.locations.items()):
        try:
            storage.check_reachable()
        except PreserveError as e:
            report.unreachable[name] = e.message
            continue
        report.locations.append(name)
        found = len(report.problems)
        try:
            _check_copy(repo, storage, checkpoints, public, report)
            if len(report.problems) > found:  # the next run lists it whole, copies again
                repo.catalog.forget_log_copied(name)
            _check_objects(repo, storage, records, logged, report)
        except (PreserveError, OSError) as e:
            report.unreachable[name] = getattr(e, "message", None) or str(e)
    unlogged = repo.catalog.unlogged_events()
    if unlogged:
        report.problems.append(LogProblem(
            "unlogged", "catalog", f"{unlogged} event(s) recorded but not in the signed log "
            "(their version is still being written, or the log could not be signed)"))
    return report


def _check_catalog(repo: Repository, checkpoints: list[tuple], public,
                   report: LogReport) -> tuple[dict, set[str]]:
    """Recompute the tree of the catalog's entries; every checkpoint must verify and
    match it. Returns the records the entries name, by (location or "*", AIP), and the
    ids of every logged event."""
    by_size = {size: (root, note) for size, root, note in checkpoints}
    tree = MerkleTree()
    records: dict[tuple[str, str], list[_Record]] = {}
    logged: set[str] = set()
    for position, text in repo.catalog.log_entries():
        tree.append(leaf_hash(text.encode("utf-8")))
        entry = json.loads(text)
        logged.add(entry["id"])
        _add_record(records, entry)
        if position in by_size:
            root, note = by_size[position]
            _check_checkpoint("catalog", note, position, tree.root(), public, report)
    report.size, report.root = tree.size, tree.root().hex()
    if checkpoints and checkpoints[-1][0] != tree.size:
        report.problems.append(LogProblem(
            "truncated" if tree.size < checkpoints[-1][0] else "inserted", "catalog",
            f"the catalog's log has {tree.size} entries; its newest checkpoint signs "
            f"{checkpoints[-1][0]}"))
    return records, logged


def _check_checkpoint(where: str, note: str, size: int, root: bytes, public,
                      report: LogReport) -> bool:
    try:
        signed = notes.verify(note, public)
    except notes.CheckpointError as e:
        report.problems.append(LogProblem("checkpoint", where, f"checkpoint {size}: {e}"))
        return False
    if signed.size != size or signed.root != root:
        report.problems.append(LogProblem(
            "checkpoint", where, f"the log's first {size} entries do not give the root "
            f"checkpoint {size} signs: an entry before it was changed", position=size))
        return False
    return True


def _check_against(repo: Repository, text: str, public, report: LogReport) -> None:
    """A checkpoint kept outside the repository: the log must still hold its tree."""
    try:
        kept = notes.verify(text, public)
    except notes.CheckpointError as e:
        report.problems.append(LogProblem("checkpoint", "kept checkpoint", str(e)))
        return
    tree = MerkleTree()
    for _, entry in repo.catalog.log_entries(0, kept.size):
        tree.append(leaf_hash(entry.encode("utf-8")))
    if tree.size < kept.size:
        report.problems.append(LogProblem(
            "truncated", "kept checkpoint", f"the log has {tree.size} entries, fewer than the "
            f"{kept.size} the kept checkpoint signs"))
    elif tree.root() != kept.root:
        report.problems.append(LogProblem(
            "edited", "kept checkpoint", f"the log's first {kept.size} entries are not those "
            "the kept checkpoint signs: the history was rewritten since"))


def _stored_lines(storage, keys: list[str]) -> Iterator[str]:
    for key in keys:
        with storage.open(key) as f:
            text = f.read().decode("utf-8", errors="replace")
        yield from text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def _check_copy(repo: Repository, storage, checkpoints: list[tuple], public,
                report: LogReport) -> None:
    """The location's copy of the log: its checkpoints, then its entries line by line
    against the catalog's (told apart in detail only when they differ)."""
    listing = sorted(info.key for info in storage.list(LOG_DIR))
    stored = {k: None for k in listing if k.startswith(CHECKPOINTS)}
    known = {checkpoint_key(size): (size, root) for size, root, _ in checkpoints}
    for key in stored:
        if key not in known:
            report.problems.append(LogProblem(
                "checkpoint", storage.name, f"{key}: a checkpoint the catalog never signed"))
            continue
        size, root = known[key]
        with storage.open(key) as f:
            text = f.read().decode("utf-8", errors="replace")
        _check_checkpoint(storage.name, text, size, bytes.fromhex(root), public, report)
    for key in known:
        if key not in stored:
            report.problems.append(LogProblem(
                "not-copied", storage.name, f"{key} is missing (the location was not written "
                "to when it was signed, or it was removed); the next run copies it again"))
    segments = [k for k in listing if k.startswith(ENTRIES)]
    got = _stored_lines(storage, segments)
    want = (text for _, text in repo.catalog.log_entries())
    if any(line != text for line, text in zip_longest(got, want)):
        _diff(storage.name, list(_stored_lines(storage, segments)),
              [t for _, t in repo.catalog.log_entries()], report)


def _diff(where: str, got: list[str], want: list[str], report: LogReport) -> None:
    """Name each difference between a copy of the log and the catalog's: entries changed,
    added, taken away (a tail taken away is a truncation) and moved."""
    index = {}
    for position, text in enumerate(want, 1):
        index[json.loads(text)["id"]] = position
    seen: dict[str, int] = {}
    order: list[int] = []
    for line in got:
        try:
            entry = json.loads(line)
            entry_id = entry["id"]
        except (ValueError, KeyError, TypeError):
            report.problems.append(LogProblem("inserted", where, f"a line that is not an "
                                              f"entry: {line[:80]!r}"))
            continue
        position = index.get(entry_id)
        if position is None or entry_id in seen:
            report.problems.append(LogProblem(
                "inserted", where, "an entry the catalog's log does not have"
                + (" (a second copy)" if entry_id in seen else ""),
                entry.get("aip"), entry_id, entry.get("n")))
            continue
        seen[entry_id] = position
        order.append(position)
        if line != want[position - 1]:
            report.problems.append(LogProblem(
                "edited", where, "the entry differs from the one signed", entry.get("aip"),
                entry_id, position))
    present = set(order)
    last_present = max(present, default=0)
    missing = [p for p in range(1, len(want) + 1) if p not in present]
    tail = [p for p in missing if p > last_present]
    for p in missing:
        if p not in tail:
            entry = json.loads(want[p - 1])
            report.problems.append(LogProblem("removed", where, "a signed entry is missing",
                                              entry.get("aip"), entry["id"], p))
    if tail:
        entry = json.loads(want[tail[0] - 1])
        report.problems.append(LogProblem(
            "truncated", where, f"the copy ends after entry {last_present}: the last "
            f"{len(tail)} signed entries are missing", entry.get("aip"), entry["id"], tail[0]))
    for i, p in enumerate(order):
        before = max(order[:i], default=0)
        after = min(order[i + 1:], default=p + 1)
        if p < before or p > after:
            entry = json.loads(want[p - 1])
            report.problems.append(LogProblem("reordered", where, "the entry is out of its "
                                              "signed place", entry.get("aip"), entry["id"], p))


def _check_objects(repo: Repository, storage, records: dict, logged: set[str],
                   report: LogReport) -> None:
    """Every object at the location: its logs/ documents against the digests the log
    names, and each version's inventory against the digest its events' entries name."""
    held: dict[str, set[int]] = {}
    for aip, version, location, _key in repo.catalog.replicas():
        if location == storage.name:
            held.setdefault(aip, set()).add(version)
    for aip, versions in held.items():
        _check_documents(storage, ocfl.object_root(aip), aip,
                         records.get((storage.name, aip), []), logged, report)
        _check_versions(storage, aip, versions, records.get(("*", aip), []), report)


def check_object(repo: Repository, storage, aip: str, versions: list[int],
                 documents: bool = True) -> list[LogProblem]:
    """What an audit checks of one object at one location, from the log: its logs/
    documents (when `documents`) and the given versions' inventories, against the digests
    their events were logged with. Documents of events recorded but not yet signed (this
    run's) are not inserted ones."""
    report = LogReport()
    records: dict[tuple[str, str], list[_Record]] = {}
    for text in repo.catalog.log_entries_of(aip):
        _add_record(records, json.loads(text))
    known = {e.id for e in repo.catalog.events(aip)}
    if documents:
        _check_documents(storage, ocfl.object_root(aip), aip, records.get((storage.name, aip), []),
                         known, report)
    _check_versions(storage, aip, set(versions), records.get(("*", aip), []), report,
                    by_sidecar=True)
    return report.problems


def _add_record(records: dict, entry: dict) -> None:
    where = entry.get("record")
    if where:
        records.setdefault((where.get("location", "*"), entry["aip"]), []).append(
            _Record(entry["n"], entry["id"], entry["aip"], where["file"],
                    where.get("sha256") or where.get("sha512"), entry.get("version")))


def _check_versions(storage, aip: str, versions: set[int], records: list[_Record],
                    report: LogReport, *, by_sidecar: bool = False) -> None:
    """Each version's inventory against the digest its events were logged with: hashed
    (`log verify`), or its sidecar read (an audit, which checks the inventory against its
    sidecar itself: a version rewritten with its sidecar differs from the log either way)."""
    root = ocfl.object_root(aip)
    for version, group in _by_version(records).items():
        if version in versions:
            if by_sidecar:
                digest = _sidecar(storage, root + group[0].file + ".sha512")
            else:
                digest = _hash(storage, root + group[0].file, "sha512")
            if digest is not None and digest != group[0].digest:  # unreadable: audit's
                report.problems += [LogProblem(
                    "edited", storage.name, f"v{version}'s inventory is not the one its "
                    "events were logged with: the version was rewritten", aip, r.event,
                    r.position) for r in group]


def _sidecar(storage, key: str) -> str | None:
    try:
        with storage.open(key) as f:
            return f.read(1024).decode("utf-8", "replace").split(" ", 1)[0].strip() or None
    except (PreserveError, OSError):
        return None


def _by_version(records: list[_Record]) -> dict[int, list[_Record]]:
    out: dict[int, list[_Record]] = {}
    for r in records:
        out.setdefault(r.version, []).append(r)
    return out


def _hash(storage, key: str, algorithm: str) -> str | None:
    digest = hashlib.new(algorithm)
    try:
        with storage.open(key) as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except (PreserveError, OSError):
        return None
    return digest.hexdigest()


def _check_documents(storage, root: str, aip: str, expected: list[_Record], logged: set[str],
                     report: LogReport) -> None:
    try:
        here = {info.key[len(root):] for info in storage.list(root + ocfl.LOGS + "/")}
    except (PreserveError, OSError):
        here = set()  # logs/ a file or a link (audit names it): its documents are missing
    by_file = {r.file: r for r in expected}
    by_digest = {r.digest: r for r in expected}
    removed, found = [], {}
    for r in expected:
        if r.file not in here:
            removed.append(r)
            continue
        found[r.file] = _hash(storage, root + r.file, "sha256")
        report.documents += 1
    present = [r.position for r in expected if r.file in here]
    for r in removed:
        truncated = r.position > max(present, default=0)
        report.problems.append(LogProblem(
            "truncated" if truncated else "removed", storage.name,
            f"{r.file} is missing from the object's logs/" + (" (the newest of them)"
                                                             if truncated else ""),
            aip, r.event, r.position))
    for file, digest in found.items():
        r = by_file[file]
        if digest == r.digest:
            continue
        other = by_digest.get(digest)
        report.problems.append(LogProblem(
            "reordered" if other is not None else "edited", storage.name,
            f"{file} holds {other.file}'s record" if other is not None
            else f"{file} is not the document logged", aip, r.event, r.position))
    for file in sorted(here - by_file.keys()):
        event = file.rsplit("-", 5)[-5:]
        event_id = "-".join(event).removesuffix(".xml")
        if event_id in logged:
            report.unprotected += 1  # logged before the log named documents
            continue
        report.problems.append(LogProblem(
            "inserted", storage.name, f"{file} is in the object's logs/ but not in the log",
            aip, event_id))
