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
(which covers its PREMIS file). So `verify` (storage/log_check.py) finds an edited,
inserted, removed or reordered event, and a truncated tail, in the copies of the log and
in every object's logs/, each named; and a checkpoint kept elsewhere (printed, e-mailed)
proves the history since.

What it does not prove: someone who holds the key and can write every location and the
catalog can write a new history; a checkpoint kept outside the repository is what catches
that."""

from __future__ import annotations

import base64
import json

from preserve.domain import checkpoint as notes
from preserve.domain import ocfl
from preserve.domain.merkle import MerkleTree, leaf_hash
from preserve.errors import PreserveError
from preserve.repository import Repository
from preserve.stores.base import ANSWERED_LATELY, ensure_ocfl_root, put_all, together
from preserve.system.keys import create_key, load_key

LOG_DIR = "extensions/preserve-log/"
ENTRIES = LOG_DIR + "entries/"
CHECKPOINTS = LOG_DIR + "checkpoints/"
PUBLIC_KEY = LOG_DIR + "public-key.txt"
LOG_BATCH = 64  # segments (or checkpoints) of the log copied to a location at once


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
            # never makes a missing root (a disk unplugged); an object store the command
            # ending now wrote to moments ago is not asked again (a round trip each)
            storage.check_reachable(answered_within=ANSWERED_LATELY)
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
    # the public key goes with the first segments (a round trip of its own before)
    key = [] if PUBLIC_KEY in have else [(PUBLIC_KEY, _public_key_text(public).encode())]
    segments, notes_missing = [], []
    checkpoints = repo.catalog.log_checkpoints(after=previous)
    for size, _root, note in checkpoints:
        if segment_key(previous + 1, size) not in have:
            segments.append((previous, size))
        if checkpoint_key(size) not in have:
            notes_missing.append((checkpoint_key(size), note.encode("utf-8")))
        previous = size
    for start in range(0, len(segments), LOG_BATCH):  # the catalog is read in this thread
        put_all(storage, key + [(segment_key(first + 1, size), "".join(
            text + "\n" for _, text in repo.catalog.log_entries(first, size)).encode("utf-8"))
            for first, size in segments[start:start + LOG_BATCH]])
        key = []
    if key:  # no segment was missing
        put_all(storage, key)
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
