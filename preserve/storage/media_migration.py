"""Media refresh: move every AIP copy off a location whose medium is ageing out or whose
store is being given up, and only then, if asked, empty it and retire it (issue 25).

Three steps, each safe to interrupt and run again:

1. copy: every version held at FROM that TO lacks is written to TO as replication writes
   it (copy_version: from a local copy checked against the record, each file verified as
   it lands, the copy recorded only once all of it is there); a PREMIS replication event
   (refreshment, for a medium of the same type) in the object's logs/ at TO;
2. verify: an audit of the AIPs' copies at TO re-reads and re-hashes every byte there
   (see _verify; a copy TO already held is verified too: it becomes what FROM's copy
   leaves behind);
3. retire (--retire): for an AIP whose every version at FROM has a copy at TO that the
   audit passed, and whose other copies still number what policy asks, the object's
   files at FROM are deleted and found gone, then its rows are removed with a PREMIS
   deletion event, in one transaction; once FROM holds nothing, its file says `retired`.

No copy is deleted before its replacement is verified, so no AIP ever has fewer verified
copies than policy asks (Archivematica's moves left debris and its databases out of step;
iRODS's failed replications were only logged: each failure here is reported and stops
that AIP alone). A kill between two steps leaves what a re-run finishes: copies recorded
are skipped, the audit runs again, a deletion half done is done again.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field

import yaml

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.premis import Agent, Event
from preserve.domain.progress import Progress, Share, Silent
from preserve.domain.schema import load_yaml
from preserve.errors import (
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_UNREACHABLE,
    BadArgument,
    PreserveError,
    StorageUnreachable,
)
from preserve.repository import Repository
from preserve.storage.audit import audit
from preserve.storage.lanes import Locked, in_lanes
from preserve.storage.locations import location_file
from preserve.storage.object_log import event_record, log_document, record_event, write_document
from preserve.storage.recovery import tidy
from preserve.storage.replicate import copy_version, lanes_at_once
from preserve.stores import LocalStorage
from preserve.stores.base import ensure_ocfl_root
from preserve.system.locks import writer_lock

RATE_SAMPLE_BYTES = 64 * 2**20  # what --plan reads of FROM to estimate the time


@dataclass
class AipMove:
    aip: str
    versions: list[int]  # held at FROM
    bytes: int
    to_copy: list[int] = field(default_factory=list)  # of those, not yet at TO
    copied: list[int] = field(default_factory=list)
    verified: bool = False
    retired: bool = False
    problem: str = ""
    unreachable: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MoveResult:
    source: str
    target: str
    retire: bool
    plan_only: bool = False
    moves: list[AipMove] = field(default_factory=list)
    read_rate: float | None = None  # bytes/s read at FROM just now (--plan)
    location_retired: bool = False
    unreachable: str = ""  # why FROM or TO could not be reached
    notes: list[str] = field(default_factory=list)

    @property
    def bytes_to_copy(self) -> int:
        return sum(m.bytes for m in self.moves if m.to_copy)

    @property
    def estimate_seconds(self) -> float | None:
        """Copy at the rate FROM was read at, then read all of it again at TO (the audit):
        a lower bound, for a target that writes no faster than the source reads."""
        if not self.read_rate:
            return None
        return round((self.bytes_to_copy + sum(m.bytes for m in self.moves)) / self.read_rate, 1)

    @property
    def exit_code(self) -> int:
        if any(m.problem and not m.unreachable for m in self.moves):
            return EXIT_PROBLEMS
        if self.unreachable or any(m.unreachable for m in self.moves):
            return EXIT_UNREACHABLE
        if self.retire and not self.plan_only and not self.location_retired:
            return EXIT_PROBLEMS  # something stays at FROM (said in notes)
        return EXIT_OK

    def to_dict(self) -> dict:
        return {"source": self.source, "target": self.target, "retire": self.retire,
                "plan": self.plan_only, "aips": len(self.moves),
                "versions": sum(len(m.versions) for m in self.moves),
                "bytes": sum(m.bytes for m in self.moves),
                "bytes_to_copy": self.bytes_to_copy, "read_rate": self.read_rate,
                "estimate_seconds": self.estimate_seconds,
                "copied": sum(len(m.copied) for m in self.moves),
                "verified": sum(m.verified for m in self.moves),
                "retired": sum(m.retired for m in self.moves),
                "location_retired": self.location_retired, "unreachable": self.unreachable,
                "notes": self.notes, "exit_code": self.exit_code,
                "moves": [m.to_dict() for m in self.moves]}


def plan(repo: Repository, source: str, target: str, *, retire: bool = False,
         aips: list[str] | None = None) -> MoveResult:
    """What a migration from `source` to `target` would do: each AIP held at `source`, its
    versions and bytes, and which versions `target` lacks. Refuses what it must never
    do: a location onto itself, a retired or unknown one, or retiring a location the
    policy still sends copies to."""
    for name, flag in ((source, "FROM"), (target, "TO")):
        if name in repo.retired:
            raise BadArgument(f"location '{name}' ({flag}) was retired on "
                              f"{repo.retired[name]['retired']}",
                              hint="'preserve storage list' shows the locations in use")
        if name not in repo.locations:
            raise BadArgument(f"no location '{name}' ({flag})",
                              hint="'preserve storage add NAME PATH|s3://...' defines one")
    if source == target:
        raise BadArgument(f"FROM and TO are both '{source}'", hint="name another location")
    if retire and source in repo.policy.locations[: repo.policy.copies]:
        raise BadArgument(
            f"policy {repo.policy.source} still copies every AIP to '{source}': retired, "
            "it would be written to again by the next 'preserve replicate'",
            hint=f"put '{target}' in its place under replication.locations, then run this again")
    result = MoveResult(source, target, retire)
    wanted = {repo.catalog.resolve(a) for a in aips} if aips else None
    held: dict[str, list[tuple[int, int]]] = {}
    for aip, version, nbytes in repo.catalog.held_at(source):  # one query, not one per AIP
        if wanted is None or aip in wanted:
            held.setdefault(aip, []).append((version, nbytes))
    at: dict[str, set[int]] = {}
    for aip, version, _ in repo.catalog.held_at(target):
        at.setdefault(aip, set()).add(version)
    for aip in sorted(held):
        versions = sorted(v for v, _ in held[aip])
        at_target = at.get(aip, set())
        top = max(versions)
        move = AipMove(aip, versions, sum(n for _, n in held[aip]))
        # TO takes every version up to FROM's newest, in order (each is written on the one
        # before), those FROM never held included
        move.to_copy = [v for v in range(1, top + 1) if v not in at_target]
        result.moves.append(move)
    return result


def migrate_location(repo: Repository, source: str, target: str, *, retire: bool = False,
                     plan_only: bool = False, aips: list[str] | None = None,
                     progress: Progress | None = None) -> MoveResult:
    """Copy, verify and (with `retire`) remove every AIP copy at `source`: see the module."""
    progress = progress or Silent()
    result = plan(repo, source, target, retire=retire, aips=aips)
    result.plan_only = plan_only
    src, dst = repo.locations[source], repo.locations[target]
    for storage in (src, dst):
        try:
            storage.check_reachable()
        except StorageUnreachable as e:
            result.unreachable = e.message
            return result
    if plan_only:
        result.read_rate = _read_rate(repo, src, result.moves)
        return result
    tidy(repo)
    _copy(repo, result, dst, progress)
    _verify(repo, result, progress)
    if retire:
        for move in result.moves:
            if move.verified:
                _retire_copy(repo, move, src, dst)
        if aips is None or not repo.catalog.replica_count(source):
            _retire_location(repo, result)
    return result


def _copy(repo: Repository, result: MoveResult, target, progress: Progress) -> None:
    """Each AIP's versions in turn; several AIPs at once to an object store (as
    replicate copies them: lanes.in_lanes)."""
    todo = [(m, v) for m in result.moves for v in m.to_copy]
    size = {(m.aip, v): repo.catalog.version_info(m.aip, v) for m, v in todo}
    progress.start("copy", sum(s["files"] for s in size.values()),
                   sum(s["bytes"] for s in size.values()))
    medium = _medium(repo, result.source)
    same_medium = medium is not None and medium == _medium(repo, result.target)
    at_once = lanes_at_once([target], len([m for m in result.moves if m.to_copy]))
    progress = Locked(progress) if at_once > 1 else progress
    stop = threading.Event()

    def copy_moves(moves: list[AipMove], here: Repository) -> None:
        to = here.locations[target.name]
        for move in moves:
            shares = [Share(progress, size[(move.aip, v)]["files"], size[(move.aip, v)]["bytes"])
                      for v in move.to_copy]
            try:
                for version, share in zip(move.to_copy, shares, strict=True):
                    if stop.is_set():
                        raise PreserveError("stopped")
                    if copy_version(here, move.aip, version, to, share, stop=stop):
                        move.copied.append(version)
            except StorageUnreachable as e:
                move.problem, move.unreachable = e.message, True
            except PreserveError as e:
                move.problem = e.message
            for share in shares:
                share.finish()
            if move.copied:
                _event(here, to, move.aip, Event(
                    "refreshment" if same_medium else "replication", now_utc(), "success",
                    f"storage migration from location '{result.source}' to "
                    f"'{result.target}'",
                    f"v{', v'.join(map(str, move.copied))} copied to '{result.target}', every "
                    "file verified against the record as it was written",
                    [(AGENT_PRESERVE, "executing program")]), "migrate")

    if at_once <= 1:
        copy_moves(result.moves, repo)
        return
    with suppress(PreserveError):  # once, before several copies might each find it empty
        ensure_ocfl_root(target)
    in_lanes(repo, [[m] for m in result.moves if m.to_copy], at_once, copy_moves, stop)


def _verify(repo: Repository, result: MoveResult, progress: Progress) -> None:
    """Every byte of the AIPs' copies at TO read back and hashed, in one audit of them: on
    a disk a quick one (every byte re-read, hashed with the fast digest recorded at ingest:
    the copy was already checked against SHA-256 as it was written, so what is left to
    catch is what the medium did to it since); elsewhere a full one (SHA-512 and
    SHA-256 of every byte read back)."""
    ready = [m for m in result.moves if not m.problem]
    if not ready:
        return
    on_disk = isinstance(repo.locations[result.target], LocalStorage)
    found = audit(repo, aips=[m.aip for m in ready], location=result.target,
                  full=not on_disk, progress=progress)
    damage: dict[str, list[str]] = {}
    for p in found.problems:
        if p.kind != "stale" and p.location == result.target:
            damage.setdefault(p.aip, []).append(f"{p.kind} {p.path or ''}".strip())
    for move in ready:
        at_target = set(repo.catalog.versions_at(move.aip, result.target))
        missing = [v for v in move.versions if v not in at_target]
        if move.aip in damage:
            move.problem = (f"the copy at '{result.target}' did not pass its audit: "
                            + "; ".join(damage[move.aip][:5]))
        elif missing:
            move.problem = f"v{missing[0]} is not at '{result.target}'"
        else:
            move.verified = True


def _retire_copy(repo: Repository, move: AipMove, source, target) -> None:
    """Delete the AIP's object at FROM, see that it is gone, then forget it with a PREMIS
    deletion event (one transaction), its document in the object's logs/ at TO."""
    catalog = repo.catalog
    with writer_lock(repo.root, source.name, move.aip, catalog=catalog):
        short = [v for v in move.versions
                 if len([n for n in catalog.replica_locations(move.aip, v)
                         if n != source.name and n in repo.locations]) < repo.policy.copies]
        if short:
            move.problem = (f"v{short[0]} would keep fewer copies than policy asks "
                            f"({repo.policy.copies}) without '{source.name}': kept there")
            return
        root = ocfl.object_root(move.aip)
        try:
            source.delete_prefix(root)
            source.abort_uploads(root)
            if isinstance(source, LocalStorage):
                source.remove_empty_folders(root)
            left = [o.key for o in source.list(root)]
        except PreserveError as e:
            move.problem = f"its copy at '{source.name}' could not be deleted: {e.message}"
            return
        if left:
            move.problem = (f"{len(left)} file(s) of its copy at '{source.name}' are still "
                            f"there after deletion (e.g. {left[0]}): an Object Lock, or "
                            "permissions; its record is kept")
            return
        event = Event("deletion", now_utc(), "success",
                      f"copy at location '{source.name}' removed after its storage migration "
                      f"to '{target.name}'",
                      f"v{', v'.join(map(str, move.versions))} deleted at '{source.name}' and "
                      f"found gone; the copy at '{target.name}' was verified whole first",
                      [(AGENT_PRESERVE, "executing program")])
        document = log_document(target, root, move.aip, event, "retire", _agents(),
                                staging=repo.staging)
        catalog.remove_replicas(move.aip, source.name,
                                event_record(move.aip, event, None, document.record))
    write_document(catalog, event.identifier, document)
    move.retired = True


def _retire_location(repo: Repository, result: MoveResult) -> None:
    """Once FROM holds no copy the catalog knows, its file says it is retired (kept, as
    history: the log and the events name it)."""
    left = repo.catalog.replica_count(result.source)
    if left:
        result.notes.append(f"'{result.source}' still holds {left} AIP version copies "
                            "(see the problems above): it is not retired; run this again "
                            "once they are solved")
        return
    file = repo.root / "locations" / f"{result.source}.yaml"
    text = file.read_text(encoding="utf-8")
    data = load_yaml(text, file) or {}
    if not data.get("retired"):
        data.update(retired=dt.date.today().isoformat(), retired_to=result.target)
        tmp = file.with_suffix(".yaml.tmp")
        tmp.write_text(text.split("\n", 1)[0] + "\n" + yaml.safe_dump(data, sort_keys=False)
                       if text.startswith("#") else yaml.safe_dump(data, sort_keys=False),
                       encoding="utf-8")
        tmp.replace(file)
    result.location_retired = True


def _event(repo: Repository, storage, aip: str, event: Event, label: str) -> None:
    record_event(repo, storage, ocfl.object_root(aip), aip, event, label, _agents())


def _agents() -> list[Agent]:
    return [Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__)]


def _medium(repo: Repository, name: str) -> str | None:
    """The location's medium as its file names it (none named: not known to be alike)."""
    raw = location_file(repo, name)
    return str(raw["media"]).lower() if raw.get("media") else None


def _read_rate(repo: Repository, source, moves: list[AipMove]) -> float | None:
    """Bytes per second read at FROM now, from the first files of the first AIPs (at most
    RATE_SAMPLE_BYTES): what the estimate of --plan rests on."""
    read, started = 0, time.perf_counter()
    for move in moves:
        key = repo.catalog.replica_key(move.aip, move.versions[0], source.name)
        try:
            for info in source.list(key):
                with source.open(info.key) as f:
                    while chunk := f.read(2**20):
                        read += len(chunk)
                if read >= RATE_SAMPLE_BYTES:
                    break
        except (PreserveError, OSError):
            return None
        if read >= RATE_SAMPLE_BYTES:
            break
    elapsed = time.perf_counter() - started
    return round(read / elapsed) if read and elapsed > 0 else None
