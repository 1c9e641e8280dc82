"""The catalog rebuilt from storage alone (issue 24): lose the catalog, keep the storage,
and preserve knows again what it holds.

Every storage location is read: its OCFL objects (data/object_reading.py: AIPs, versions,
files, identification, derivations) and its copy of the signed event log (the events, in
their order, and the log itself; storage/history.py). Where locations disagree, the newest
valid head of an object wins and the disagreement is reported, never silently chosen; a
location holds a replica of each version its valid copy has.

Into an empty catalog only (a full one is kept aside with --replace). Resumable and
idempotent: each AIP's rows go in by one transaction and a re-run skips the AIPs already
in; the log and the events go in by one transaction at the end; a `meta` row marks the
rebuild under way until it has finished, so a re-run after a kill resumes it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from preserve.catalog import Catalog
from preserve.catalog.database import REBUILDING, TABLES, is_server_url
from preserve.catalog.log import count_logged
from preserve.data.logged_checks import apply_logged_checks
from preserve.data.object_reading import ObjectRows, UnreadableObject, read_object
from preserve.data.search_index import refresh
from preserve.domain import checkpoint as notes
from preserve.domain import ocfl
from preserve.domain.merkle import MerkleTree, leaf_hash
from preserve.domain.model import Verdict
from preserve.domain.progress import Progress, Silent
from preserve.errors import ConfigError, PreserveError
from preserve.parallel import default_workers, run_batches
from preserve.repository import CATALOG_FILE, Repository
from preserve.storage.history import CHECKPOINTS, ENTRIES, PUBLIC_KEY, canonical
from preserve.system.keys import load_key

MARK = REBUILDING  # the meta key present while a rebuild is under way
RULE = re.compile(r" by rule '(.*?)', pathway ")


@dataclass
class RebuildResult(Verdict):
    aips: int = 0
    resumed: int = 0  # AIPs a killed run had already put in
    versions: int = 0
    files: int = 0
    replicas: int = 0
    events: int = 0
    log_size: int = 0
    log_root: str = ""
    locations: list[str] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)  # conflicts, unreadable copies
    aside: str | None = None  # where --replace put the catalog that was there
    indexed: int = 0  # rows of the search index, made from the text the AIPs keep

    def to_dict(self) -> dict:
        return {"status": self.status, **{k: v for k, v in self.__dict__.items()}}


# -- the catalog it goes into ------------------------------------------------------------------

def prepare(root: Path, address: str | Path, replace: bool) -> str | None:
    """An empty catalog at `address`, or one a rebuild left under way; a catalog holding
    anything else is refused unless `replace`, which keeps it aside (an SQLite file renamed,
    a PostgreSQL catalog's tables moved to a schema of their own). Returns where."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    server = is_server_url(address)
    if server:
        Catalog.create_if_missing(address)  # a database whose tables were lost
    elif not Path(address).exists():
        Catalog.create_if_missing(address)
        return None
    if not server and _no_tables(Path(address)):  # a kill before its tables were made
        Path(address).unlink()
        Catalog.create_if_missing(address)
        return None
    try:
        catalog = Catalog(address, rebuilding=True)
    except ConfigError:
        if not replace or server:
            raise
        return _aside_file(Path(address), stamp)  # unreadable: kept aside, a new one made
    try:
        if catalog.execute("SELECT value FROM meta WHERE key = ?", (MARK,)).fetchone():
            return None  # a rebuild under way: resumed
        aips, events = catalog.execute("SELECT (SELECT COUNT(*) FROM aips), (SELECT COUNT(*) "
                                       "FROM events)").fetchone()
        if not aips and not events:
            return None
        if not replace:
            raise ConfigError(f"the catalog {catalog.describe()} is not empty (it holds {aips} "
                              f"AIP(s) and {events} event(s)): a rebuild goes into an empty "
                              "catalog",
                              hint="--replace keeps this one aside and rebuilds in its place")
        if server:
            return _aside_schema(catalog, stamp)
    finally:
        catalog.close()
    return _aside_file(Path(address), stamp)


def _no_tables(path: Path) -> bool:
    import sqlite3

    try:
        with closing(sqlite3.connect(path)) as db:
            return db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
    except sqlite3.DatabaseError:
        return False  # not SQLite at all: Catalog says so


def _aside_file(path: Path, stamp: str) -> str:
    aside = path.with_name(f"{path.name}.before-rebuild-{stamp}")
    shutil.move(path, aside)
    for suffix in ("-wal", "-shm"):
        if Path(str(path) + suffix).exists():
            shutil.move(str(path) + suffix, str(aside) + suffix)
    Catalog.create_if_missing(path)
    return str(aside)


def _aside_schema(catalog: Catalog, stamp: str) -> str:
    schema = f"preserve_before_rebuild_{stamp.lower()}"
    with catalog.transaction() as db:
        db.execute(f"CREATE SCHEMA {schema}")
        for table in sorted(TABLES):
            db.execute(f"ALTER TABLE {table} SET SCHEMA {schema}")
    Catalog.create_if_missing(catalog.where)
    return f"schema {schema}"


def open_for_rebuild(root: Path, replace: bool) -> tuple[Repository, str | None]:
    """The repository, its catalog made ready for a rebuild first (Repository opens it)."""
    import yaml

    config = yaml.safe_load((root / "preserve.yaml").read_text(encoding="utf-8")) or {} \
        if (root / "preserve.yaml").is_file() else {}
    address = config.get("catalog") or root / CATALOG_FILE
    aside = prepare(root, address, replace) if (root / "preserve.yaml").is_file() else None
    return Repository(root, rebuilding=True), aside


# -- the rebuild -------------------------------------------------------------------------------

def rebuild(repo: Repository, *, sources: list[str] | None = None, verify: bool = False,
            progress: Progress | None = None, aside: str | None = None) -> RebuildResult:
    progress = progress or Silent()
    result = RebuildResult(aside=aside)
    catalog = repo.catalog
    with catalog.transaction() as db:
        db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                   (MARK, "under way"))
    names = sources or sorted(repo.locations)
    for name in names:
        if name not in repo.locations:
            raise ConfigError(f"no storage location named '{name}'",
                              hint="'preserve storage list' names them")
    reachable = {}
    for name in names:
        storage = repo.locations[name]
        try:
            storage.check_reachable()
            reachable[name] = storage
        except PreserveError as e:
            result.unreachable[name] = e.message
    result.locations = sorted(reachable)
    entries, checkpoints = _read_log(repo, reachable, result)
    detail = {e["id"]: e for e in entries}
    states = replica_states(entries)
    held: dict[str, list[tuple[str, str]]] = {}
    for name, storage in sorted(reachable.items()):
        for root, aip in objects_of(storage):
            held.setdefault(aip, []).append((name, root))
    done = {r[0] for r in catalog.execute("SELECT id FROM aips")}
    by_aip: dict[str, dict] = {}
    for replica, state in states.items():
        by_aip.setdefault(replica[0], {})[replica] = state
    progress.start("rebuild", len(held), 0)
    todo = [(aip, held[aip], verify) for aip in sorted(held) if aip not in done]
    result.resumed = len(held) - len(todo)
    progress.advance(result.resumed, 0)
    workers = default_workers() if len(todo) >= 4 * READ_BATCH else 1
    if workers == 1:
        _READER["storages"] = reachable
    batches = (todo[i:i + READ_BATCH] for i in range(0, len(todo), READ_BATCH))
    rows: list[tuple] = []
    for found in run_batches(_read_batch, batches, workers=workers,
                             initializer=_start_reader if workers > 1 else None,
                             initargs=(str(repo.root), sorted(reachable))):
        for aip, read in found:
            rows.append(_choose(aip, held[aip], read, detail, by_aip.get(aip, {}), reachable,
                                result))
        if len(rows) >= BATCH:
            _insert(catalog, rows)
            rows = []
        progress.advance(len(found), 0)
    _insert(catalog, rows)
    _insert_log(catalog, entries, checkpoints, result)
    apply_logged_checks(catalog, reachable, entries, result.problems)
    with catalog.transaction() as db:
        db.execute("DELETE FROM meta WHERE key = ?", (MARK,))
    try:  # the search index, from the text the AIPs keep: nothing extracted again
        result.indexed = refresh(repo, progress).rows
    except PreserveError as e:
        result.problems.append({"kind": "search index", "aip": None, "detail": f"not rebuilt: "
                                f"{e.message} (search rebuilds it when run)"})
    _count(catalog, result)
    return result


_READER: dict = {}  # a reading process's storage locations
READ_BATCH = 50  # AIPs a reading process is given at a time


def _start_reader(root: str, names: list[str]) -> None:
    """A reading process: its own view of the repository's locations (a store's client is
    not shared across processes)."""
    repo = Repository(Path(root), rebuilding=True)
    _READER["storages"] = {name: repo.locations[name] for name in names}
    repo.close()


def objects_of(storage) -> Iterator[tuple[str, str]]:
    """(object root key, AIP id) of every object the storage layout places (what is not
    where the layout puts objects is for `check` to name, not for a rebuild to read). A
    disk's folders are walked without a realpath each, never into a link."""
    if not hasattr(storage, "local_files"):
        seen = set()
        for key, aip, version in storage.stored_versions():
            root = ocfl.object_of(key) if version is not None else key
            if root not in seen:
                seen.add(root)
                yield root, aip
        return
    base = str(storage.root)

    def folders(path: str) -> list[str]:
        try:
            with os.scandir(path) as found:
                return sorted(e.name for e in found if e.is_dir(follow_symlinks=False))
        except OSError:
            return []

    levels = [""]
    for _ in range(ocfl.LAYOUT_CONFIG["numberOfTuples"]):
        levels = [f"{parent}{name}/" for parent in levels
                  for name in folders(os.path.join(base, parent))
                  if re.fullmatch(r"[0-9a-f]{3}", name)]
    for parent in levels:
        for name in folders(os.path.join(base, parent)):
            aip = ocfl.id_of_root(parent + name)
            if aip is not None:
                yield f"{parent}{name}/", aip


def _read_batch(batch: list[tuple[str, list[tuple[str, str]], bool]]
                ) -> list[tuple[str, dict[str, ObjectRows | str]]]:
    """Each AIP of the batch read at every location holding it (or why it could not be)."""
    storages = _READER["storages"]
    out = []
    for aip, copies, verify in batch:
        read: dict[str, ObjectRows | str] = {}
        for name, root in copies:
            try:
                read[name] = read_object(storages[name], root, aip, verify=verify)
            except UnreadableObject as e:
                read[name] = str(e)
        out.append((aip, read))
    return out


def _choose(aip: str, copies: list[tuple[str, str]], found: dict[str, ObjectRows | str],
            detail: dict, states: dict, reachable: dict, result: RebuildResult) -> tuple:
    """The rows of one AIP from its copies: compared, the newest valid head chosen."""
    read: dict[str, ObjectRows] = {}
    for name, rows in sorted(found.items()):
        if isinstance(rows, str):
            result.problems.append({"kind": "unreadable", "aip": aip, "location": name,
                                    "detail": f"the copy at '{name}' {rows}"})
        else:
            read[name] = rows
    if not read:
        return ()
    winner = max(sorted(read), key=lambda n: read[n].head)
    best = read[winner]
    holders = []
    for name, rows in sorted(read.items()):
        differ = [n for n, d in rows.inventory_digests.items()
                  if best.inventory_digests.get(n) != d]
        if differ:
            result.problems.append({
                "kind": "conflict", "aip": aip, "location": name,
                "detail": f"'{name}' holds another v{differ[0]} than '{winner}' (whose head, "
                          f"v{best.head}, is newest): '{winner}''s was taken"})
            continue
        holders.append((name, rows.head))
    created = {v[1]: v[2] for v in best.versions}
    roots = dict(copies)
    derivations = [(*d[:4], _rule(detail.get(d[4])), d[4]) for d in best.derivations]
    replicas, checks, composites = [], [], []
    for name, head in holders:
        for n in range(1, head + 1):
            state = states.get((aip, n, name))
            key = ocfl.version_key(roots[name], n)
            if state is None:  # a copy the log never saw made: known from storage alone
                replicas.append((aip, n, name, key, "verified", created[n], None))
                continue
            replicas.append((aip, n, name, state["key"], "verified", state["stored"],
                             state["last_audit"]))
            checks += [(aip, n, name, p, c) for p, c in sorted(state["checks"].items())]
            composites += [(aip, n, name, p, c) for p, c in sorted(state["composites"].items())]
    held = {(h, v) for h, head in holders for v in range(1, head + 1)}
    for (_aip, n, name) in sorted(states):
        if name in reachable and (name, n) not in held:
            result.problems.append({"kind": "missing", "aip": aip, "location": name,
                                    "detail": f"the log says v{n} was stored at '{name}', "
                                              "which holds no valid copy of it now"})
    return (best.aip_row, best.versions, best.files, derivations, replicas, checks, composites,
            best.validations, best.rights)


INSERTS = ("INSERT INTO aips VALUES (?, ?, ?, ?, ?, ?, ?)",
           "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
           "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
           "INSERT INTO derivations VALUES (?, ?, ?, ?, ?, ?)",
           "INSERT INTO replicas VALUES (?, ?, ?, ?, ?, ?, ?)",
           "INSERT INTO file_checks VALUES (?, ?, ?, ?, ?)",
           "INSERT INTO composite_checksums VALUES (?, ?, ?, ?, ?)",
           "INSERT INTO file_validations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
           "INSERT INTO rights_statements VALUES (?, ?, ?, ?, ?)")
BATCH = 200  # AIPs a transaction: a re-run after a kill redoes at most this many


def _insert(catalog: Catalog, batch: list[tuple]) -> None:
    """The rows of whole AIPs, in one transaction (an AIP is in, or not at all)."""
    batch = [rows for rows in batch if rows]
    if not batch:
        return
    with catalog.transaction() as db:
        for n, sql in enumerate(INSERTS):
            db.executemany(sql, [rows[0] for rows in batch] if n == 0 else
                           [row for rows in batch for row in rows[n]])


def replica_states(entries: list[dict]) -> dict[tuple[str, int, str], dict]:
    """Each replica's rows as the logged changes leave them, applied in order: stored
    (key, when, composite checksums), files checked outside an audit (a repair), an audit
    closed (last_audit and every per-file row it left), a composite checksum."""
    states: dict[tuple[str, int, str], dict] = {}
    for e in entries:
        if e.get("kind") != "replica":
            continue
        replica = (e["aip"], e["version"], e["location"])
        state = states.setdefault(replica, {"key": "", "stored": "", "last_audit": None,
                                            "checks": {}, "composites": {}})
        if e["op"] == "stored":
            state.update(key=e["key"], stored=e["stored"], last_audit=None,
                         composites=dict(e["composites"]))
        elif e["op"] == "checked":
            state["checks"].update(dict(e["checks"]))
        elif e["op"] == "audited":
            state["last_audit"] = e["last_audit"]
            state["checks"] = dict(e["checks"])
        elif e["op"] == "removed":  # the copy was retired (storage migrate)
            del states[replica]
        elif e["op"] == "composite":
            state["composites"].pop(e["path"], None)
            if e["checksum"]:
                state["composites"][e["path"]] = e["checksum"]
    return states


def _rule(event: dict | None) -> str:
    """The migration rule a derivation was made by, as its migration event names it."""
    m = RULE.search(event["detail"]) if event else None
    return m.group(1) if m else ""


# -- the log -----------------------------------------------------------------------------------

def _public_key(repo: Repository, reachable: dict, result: RebuildResult):
    """The key the checkpoints must verify with: the repository's own; else (the key lost
    with the catalog) the public key a location keeps, which is said."""
    if repo.log_key_path.exists():
        return load_key(repo.log_key_path).public_key()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    for name, storage in sorted(reachable.items()):
        try:
            with storage.open(PUBLIC_KEY) as f:
                raw = f.read().decode().split("\n")[1].split(" ")[1]
            import base64
            result.problems.append({
                "kind": "key", "aip": None, "location": name,
                "detail": f"the signing key {repo.log_key_path} is missing: the checkpoints "
                          f"were checked with the public key kept at '{name}', which proves "
                          "nothing by itself; compare its name with a checkpoint you keep"})
            return Ed25519PublicKey.from_public_bytes(base64.b64decode(raw))
        except (PreserveError, OSError, IndexError, ValueError):
            continue
    return None


def _read_log(repo: Repository, reachable: dict, result: RebuildResult
              ) -> tuple[list[dict], list[tuple[int, str]]]:
    """The longest copy of the log whose every checkpoint verifies; other copies that are
    not a prefix of it are reported."""
    public = _public_key(repo, reachable, result)
    best: tuple[list[str], list[tuple[int, str]]] = ([], [])
    copies = {}
    for name, storage in sorted(reachable.items()):
        keys = sorted(info.key for info in storage.list(ENTRIES.rstrip("/")))
        lines = []
        for key in keys:
            if key.startswith(ENTRIES):
                with storage.open(key) as f:
                    lines += f.read().decode("utf-8").splitlines()
        signed = []
        for key in sorted(info.key for info in storage.list(CHECKPOINTS.rstrip("/"))):
            with storage.open(key) as f:
                text = f.read().decode("utf-8", "replace")
            try:
                checkpoint = notes.verify(text, public) if public else None
            except notes.CheckpointError as e:
                result.problems.append({"kind": "log", "aip": None, "location": name,
                                        "detail": f"{key}: {e}"})
                continue
            if checkpoint is not None:
                signed.append((checkpoint.size, checkpoint.root, text))
        good = _verified_prefix(lines, signed, name, result)
        copies[name] = lines
        if len(good[0]) > len(best[0]):
            best = good
    for name, lines in copies.items():
        if lines[:len(best[0])] != best[0][:len(lines)]:
            result.problems.append({"kind": "log", "aip": None, "location": name,
                                    "detail": f"the copy of the event log at '{name}' is not "
                                              "the one signed; the signed copy was taken"})
    result.log_size = len(best[0])
    entries = []
    for line in best[0]:
        entry = json.loads(line)
        entry["_text"] = line  # the leaf, byte for byte
        entries.append(entry)
    return entries, best[1]


def _verified_prefix(lines: list[str], signed: list[tuple], name: str,
                     result: RebuildResult) -> tuple[list[str], list[tuple]]:
    """The entries up to the last checkpoint they match, and the checkpoints matched."""
    tree, matched, size = MerkleTree(), [], 0
    by_size = {s: (root, text) for s, root, text in signed}
    for n, line in enumerate(lines, 1):
        tree.append(leaf_hash(line.encode("utf-8")))
        if n in by_size:
            root, text = by_size[n]
            if tree.root() != root:
                result.problems.append({"kind": "log", "aip": None, "location": name,
                                        "detail": f"its entries do not give checkpoint {n}'s "
                                                  "root: taken up to the last that does"})
                break
            matched.append((n, text))
            size = n
    return lines[:size], matched


def _insert_log(catalog: Catalog, entries: list[dict], checkpoints: list[tuple[int, str]],
                result: RebuildResult) -> None:
    """The log, its checkpoints and the events, in one transaction (skipped when a killed
    run had put them in)."""
    if catalog.execute("SELECT COUNT(*) FROM log_entries").scalar():
        return
    signed = dict(checkpoints)
    aips = {r[0] for r in catalog.execute("SELECT id FROM aips")}
    tree, rows, frontier = MerkleTree(), [], []
    for entry in entries:
        tree.append(leaf_hash(entry["_text"].encode("utf-8")))
        if tree.size in signed:
            frontier.append((tree.size, tree.root().hex(),
                             json.dumps([h.hex() for h in tree.frontier]), signed[tree.size]))
        rows.append((entry["n"], entry["id"], entry.get("aip"), entry["_text"]))
    events = []
    for entry in entries:
        if entry.get("kind") != "event" or entry["aip"] not in aips:
            continue
        where = entry.get("record")
        record = canonical(where) if where and "sha256" in where else None
        events.append((entry["id"], entry["aip"], entry["type"], entry["at"], entry["outcome"],
                       entry["detail"], entry["outcome_detail"], entry["agent"],
                       entry["version"], entry.get("seq", entry["n"]), record))
    runs = {}
    for entry in entries:
        if entry.get("kind") == "audit-run":
            runs[entry["run"][0]] = entry  # the last word on a run (a resumed one's)
    with catalog.transaction() as db:
        db.executemany("INSERT INTO log_entries VALUES (?, ?, ?, ?)", rows)
        db.executemany("INSERT INTO log_checkpoints VALUES (?, ?, ?, ?)", frontier)
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", events)
        db.executemany("INSERT INTO audit_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [tuple(r["run"]) for r in runs.values()])
        db.executemany("INSERT INTO audit_problems VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [tuple(p) for r in runs.values() for p in r["problems"]])
        count_logged(db, sum(1 for e in entries if e.get("kind") == "event"))
    result.log_root = tree.root().hex()
    lost = sum(1 for e in entries if e.get("kind") == "event" and e["aip"] not in aips)
    if lost:
        result.problems.append({"kind": "lost", "aip": None, "location": None,
                                "detail": f"{lost} logged event(s) of AIPs no location holds: "
                                          "in the log, not in the events table"})


def _count(catalog: Catalog, result: RebuildResult) -> None:
    for column, table in (("aips", "aips"), ("versions", "versions"), ("files", "files"),
                          ("replicas", "replicas"), ("events", "events")):
        setattr(result, column, catalog.execute(f"SELECT COUNT(*) FROM {table}").scalar())
