"""The repository's event log: a history no one can rewrite unseen (issue 24).

Every event preserve records (the PREMIS events of versions, and those kept in objects'
logs/: audits, repairs, rejected migrations, identifications, drills) joins one
append-only log as a canonical JSON entry, numbered in the order it joined. The entries are
the leaves of an RFC 9162 Merkle tree (domain/merkle.py); each time entries join, a
checkpoint (size and root) is signed with the repository's Ed25519 key (domain/checkpoint.py)
and the entries and checkpoint are copied to every storage location:

    extensions/preserve-log/entries/<first>-<last>.jsonl   the entries a checkpoint added
    extensions/preserve-log/checkpoints/<size>.txt         the signed checkpoint
    extensions/preserve-log/public-key.txt                 to read them without preserve

An entry names where its event's PREMIS record is: a logs/ document by its SHA-256 (OCFL
leaves logs/ outside the inventory), a version's by the digest of the version's inventory
(which covers its PREMIS file). So `verify` finds an edited, inserted, removed or reordered
event, and a truncated tail, in the copies of the log and in every object's logs/, each
named; and a checkpoint kept elsewhere (printed, e-mailed) proves the history since.

What it does not prove: someone who holds the key and can write every location and the
catalog can write a new history; a checkpoint kept outside the repository is what catches
that."""

from __future__ import annotations

import base64
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
from preserve.stores.base import ensure_ocfl_root, put_all, together
from preserve.system.keys import create_key, load_key

LOG_DIR = "extensions/preserve-log/"
ENTRIES = LOG_DIR + "entries/"
CHECKPOINTS = LOG_DIR + "checkpoints/"
PUBLIC_KEY = LOG_DIR + "public-key.txt"
LOG_BATCH = 64  # segments (or checkpoints) of the log copied to a location at once
# The kinds of problem verify names (the user guide explains each).
KINDS = ("edited", "inserted", "removed", "reordered", "truncated", "checkpoint", "not-copied",
         "unlogged")


def canonical(value) -> str:
    """One text for one value: keys sorted, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_of(position: int, row: tuple) -> tuple[str, str]:
    """(entry id, entry text) of an event row as Catalog.append_to_log gives it."""
    (event_id, aip, kind, when, outcome, detail, outcome_detail, agent, version, record,
     inventory, seq) = row
    if record:
        where = json.loads(record)
    elif version is not None and inventory:
        where = {"file": f"v{version}/{ocfl.INVENTORY}", "sha512": inventory}
    else:
        where = None
    return event_id, canonical({
        "agent": agent, "aip": aip, "at": when, "detail": detail, "id": event_id,
        "kind": "event", "n": position, "outcome": outcome, "outcome_detail": outcome_detail,
        "record": where, "seq": seq, "type": kind, "version": version})


def segment_key(first: int, last: int) -> str:
    return f"{ENTRIES}{first:012d}-{last:012d}.jsonl"


def checkpoint_key(size: int) -> str:
    return f"{CHECKPOINTS}{size:012d}.txt"


# -- writing -----------------------------------------------------------------------------------

def signing_key(repo: Repository):
    """The repository's key; made at its configured place for a repository that has never
    signed a checkpoint (one made before the log), never in place of one that signed."""
    path = repo.log_key_path
    if not path.exists() and not repo.catalog.log_checkpoints():
        create_key(path)
    return load_key(path)


def sign_pending(repo: Repository) -> int | None:
    """Put every event not yet in the log into it and sign the new checkpoint (in the
    catalog: `publish` copies them to storage). Returns the new size, or None."""
    key = signing_key(repo)
    name = notes.key_name(key.public_key())

    def build(pending: list[tuple], changes: list[tuple], last: tuple | None):
        size = last[0] if last else 0
        tree = (MerkleTree.resume(size, [bytes.fromhex(h) for h in json.loads(last[2])])
                if last else MerkleTree())
        entries = []
        for row in pending:
            size += 1
            entry_id, text = entry_of(size, row)
            tree.append(leaf_hash(text.encode("utf-8")))
            entries.append((size, entry_id, row[1], text))
        for entry_id, aip, body in changes:
            size += 1
            text = canonical({**json.loads(body), "id": entry_id, "n": size})
            tree.append(leaf_hash(text.encode("utf-8")))
            entries.append((size, entry_id, aip, text))
        root = tree.root()
        note = notes.sign(notes.Checkpoint(name, size, root), key)
        return entries, (size, root.hex(), json.dumps([h.hex() for h in tree.frontier]),
                         note)

    row = repo.catalog.append_to_log(build)
    return None if row is None else row[0]


def publish(repo: Repository) -> dict[str, str]:
    """Sign what is pending, then copy every segment and checkpoint a location lacks to it
    (a location that was unreachable catches up at the next run). Returns the locations
    that could not be written to, with why: their copies are behind, which verify says."""
    newest = sign_pending(repo) or repo.catalog.log_size()
    if not newest:
        return {}
    public = signing_key(repo).public_key()
    failed = {}
    for name, storage in sorted(repo.locations.items()):
        if repo.catalog.log_copied(name) == newest:
            continue  # holds it all already (found so by the command before)
        try:
            storage.check_reachable()  # never makes a missing root (a disk unplugged)
            ensure_ocfl_root(storage)  # nor writes into what is not an OCFL storage root
            _copy_log(repo, storage, public)
        except (PreserveError, OSError) as e:
            failed[name] = getattr(e, "message", None) or str(e)
    return failed


def publish_if_pending(repo: Repository) -> dict[str, str]:
    """`publish`, when some event is not yet in the log (asked cheaply: after every
    command)."""
    if not repo.catalog.log_behind():
        return {}
    return publish(repo)


def _copy_log(repo: Repository, storage, public) -> None:
    """What `storage` lacks of the log: the segments a batch at a time, all of a batch at
    once (a location new or long unreachable lacks many, each a round trip across a WAN),
    then the checkpoints, each after the entries it vouches for. Then how far it holds
    the log is kept, so that the next command lists only from there."""
    have, previous = _held(repo, storage)
    if PUBLIC_KEY not in have:
        storage.put_bytes(PUBLIC_KEY, _public_key_text(public).encode())
    segments, notes_missing = [], []
    checkpoints = repo.catalog.log_checkpoints(after=previous)
    for size, _root, note in checkpoints:
        if segment_key(previous + 1, size) not in have:
            segments.append((previous, size))
        if checkpoint_key(size) not in have:
            notes_missing.append((checkpoint_key(size), note.encode("utf-8")))
        previous = size
    for start in range(0, len(segments), LOG_BATCH):  # the catalog is read in this thread
        put_all(storage, [(segment_key(first + 1, size), "".join(
            text + "\n" for _, text in repo.catalog.log_entries(first, size)).encode("utf-8"))
            for first, size in segments[start:start + LOG_BATCH]])
    for start in range(0, len(notes_missing), LOG_BATCH):
        put_all(storage, notes_missing[start:start + LOG_BATCH])
    if checkpoints:
        repo.catalog.set_log_copied(storage.name, checkpoints[-1][0])


def _held(repo: Repository, storage) -> tuple[set[str], int]:
    """(the log's keys at `storage` that matter, the size up to which it holds every
    segment and checkpoint). Listing the log whole costs a page per 500 checkpoints, each
    a round trip across a WAN, at every command for years: where the catalog knows how far
    the location held the log, only its keys from there are listed (an object store starts
    there), and that the location still holds the last segment and checkpoint it was known
    to is the proof; a location emptied or replaced since (issue 22) fails it, and is
    listed whole."""
    mark = repo.catalog.log_copied(storage.name)
    if mark:
        start = repo.catalog.log_size_before(mark)
        entries, checkpoints, key = together(
            lambda: {i.key for i in storage.list(ENTRIES, after=f"{ENTRIES}{start + 1:012d}")},
            lambda: {i.key for i in storage.list(CHECKPOINTS, after=f"{CHECKPOINTS}{mark:012d}")},
            lambda: storage.stat(PUBLIC_KEY))
        if segment_key(start + 1, mark) in entries and checkpoint_key(mark) in checkpoints:
            return entries | checkpoints | ({PUBLIC_KEY} if key else set()), mark
    return {info.key for info in storage.list(LOG_DIR)}, 0


def _public_key_text(public) -> str:
    name = notes.key_name(public)
    raw = base64.b64encode(notes.public_bytes(public)).decode()
    return (f"{name}\ned25519 {raw}\n\nThe public half of the key that signs this "
            "repository's event log checkpoints. A copy found here proves nothing by itself: "
            "compare its name with a checkpoint you keep outside the repository.\n")


def newest_checkpoint(repo: Repository) -> str:
    """The newest signed checkpoint, after signing what is pending: the text an operator
    keeps outside the repository."""
    publish(repo)
    found = repo.catalog.log_checkpoints()
    if not found:
        raise PreserveError("the event log is empty: nothing has been recorded yet",
                            hint="ingest something first")
    return found[-1][2]


# -- checking ----------------------------------------------------------------------------------

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
