"""A new version of an AIP: what a correction (describe) or a migration writes.

Preservation never rewrites what it holds: a change is a new OCFL version whose bag
is the last one's plus the change. Only what changes is written to the version's
content/: payload added (never replaced), bag-info.txt, the version's own PREMIS
document (metadata/premis-v<n>.xml: its new objects, its event and agents; the
earlier documents stay as they were, so the AIP's record is all of them, in version
order), the payload manifests and the fast-digest list when payload is added, and
the tag manifests. Everything else is referenced by the new inventory, never copied:
a 20,000-file AIP's premis.xml is 30 MB, which a correction no longer writes again.

The version is assembled in staging (`staging/<aip>.v<n>/`, beside a lock naming this
process, as ingest does), its rows and inventory recorded in the catalog, then
published on the primary disk: its folder renamed into the object, then the object's
root inventory replaced, last. A crash before that leaves the previous head intact;
recovery.resolve_versions (run by every writer first) finishes or removes what a
killed run left. The other locations of the policy get the version by replication.
"""

from __future__ import annotations

import os
import shutil
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preserve.domain import bag as bagfmt
from preserve.domain import ocfl
from preserve.domain.bag import FAST_LIST
from preserve.domain.clock import now_utc
from preserve.domain.fixity import FAST_ALGORITHM, hash_stream, open_regular, write_all
from preserve.domain.identify import Identification, format_notes, identify_paths, siegfried_environment
from preserve.domain.model import FileRecord
from preserve.domain.names import UnsafePath, check_relative, display, encode_manifest_path
from preserve.domain.premis import Agent, Event, FileObject, PremisWriter
from preserve.domain.rights import RightsStatement
from preserve.errors import BadArgument, FixityMismatch, PreserveError, StorageUnreachable
from preserve.pipeline.copying import copy_one
from preserve.repository import Repository
from preserve.storage.object_log import event_record
from preserve.storage.recovery import resolve_versions, tidy
from preserve.storage.versions import (
    INVENTORY_ALGORITHMS,
    new_record,
    tag_records,
    verified_local,
    write_inventory,
    write_tag_manifests,
)
from preserve.stores.base import open_stored
from preserve.system import fstree
from preserve.system.locks import writer_lock

BAG_INFO = "bag-info.txt"
PREMIS_PREFIX = "metadata/premis"  # the versions' PREMIS documents: written here only
HASHED = (*INVENTORY_ALGORITHMS, FAST_ALGORITHM)


@dataclass
class VersionChange:
    """What a new version changes. `bag_info`: labels whose values are replaced (every
    line of a repeatable label); `added`: new payload, (bag path under data/, the file
    to copy in); `event`: the PREMIS event that says what happened (its time is the
    version's), naming `agents`; `events`: more events of the version (a migration's, one
    per file); `derived`: for an added file made from another, (its source's bag path,
    the migration event's identifier, the rule's name); `identified`: added files
    already identified (a migration identifies each derivative to accept it), which
    are not identified again; `metadata`: new tag files under metadata/ (extracted
    text, OCR), (bag path, the file to copy in), never replacing one the AIP holds."""
    message: str
    event: Event
    agents: list[Agent]
    bag_info: dict[str, list[str]] = field(default_factory=dict)
    added: list[tuple[str, Path]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    derived: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    identified: dict[str, Identification] = field(default_factory=dict)
    metadata: list[tuple[str, Path]] = field(default_factory=list)
    rights: list[RightsStatement] = field(default_factory=list)  # PREMIS rights it records


@dataclass
class VersionResult:
    aip_id: str
    version: int
    location: str
    files_added: int
    bytes_added: int
    replicas: list[str] = field(default_factory=list)
    replication_problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def add_version(repo: Repository, aip_id: str, change: VersionChange) -> VersionResult:
    """Write the change as the AIP's next version, on the primary disk, then on the
    policy's other locations (each failure there reported, `replicate` finishes it)."""
    _check_added(change.added)
    _check_added(change.metadata, "metadata/", "metadata")
    tidy(repo)
    catalog = repo.catalog
    location = repo.primary_location()
    with writer_lock(repo.root, location.name, aip_id, catalog=repo.catalog):
        head = catalog.get_aip(aip_id).version  # read again: another run may have added one
        if location.name not in catalog.replica_locations(aip_id, head):
            raise StorageUnreachable(f"the primary location '{location.name}' holds no copy of "
                                     f"AIP {aip_id} v{head}", hint="run 'preserve replicate'")
        taken = [rel for rel, _ in change.added if catalog.holds(aip_id, head, rel)]
        if taken:
            raise BadArgument(f"AIP {aip_id} v{head} already holds {display(taken[0])}: payload "
                              "is never replaced", hint="add the new file under another name")
        taken = [rel for rel, _ in change.metadata if catalog.holds(aip_id, head, rel)]
        if taken:
            raise BadArgument(f"AIP {aip_id} v{head} already holds {display(taken[0])}: a "
                              "version never replaces metadata it adds")
        version = head + 1
        name = f"{aip_id}.v{version}"
        lock = repo.staging / f"{name}.lock"
        staged = repo.staging / name
        lock.write_text(f"{os.getpid()} {now_utc()}\n")
        try:
            try:
                added = _write_version(repo, location, aip_id, head, version, staged, change)
            finally:
                fstree.rmtree(staged, ignore_errors=True)
                lock.unlink(missing_ok=True)
        except BaseException:
            with suppress(Exception):  # else the next writer's tidy does it
                resolve_versions(repo)
            raise
    result = VersionResult(aip_id, version, location.name, len(added),
                           sum(r.size for r in added), [location.name])
    copied, problems = copy_missing_versions(repo, aip_id, version)
    result.replicas += copied
    result.replication_problems += problems
    return result


def current_bag_info(repo: Repository, aip_id: str) -> list[tuple[str, str]]:
    """(label, value) of the head version's bag-info.txt, read from the primary disk once
    its bytes are found to be the recorded ones (what `show` and `describe` start from)."""
    head = repo.catalog.get_aip(aip_id).version
    tags = {path: (held_in, digests) for path, held_in, _size, digests in
            repo.catalog.state_files(aip_id, head, tags_only=True)}
    return _bag_info_fields(repo.primary_location(), aip_id, tags)


def _bag_info_fields(location, aip_id: str, tags: dict) -> list[tuple[str, str]]:
    """(label, value) of the last bag's bag-info.txt, once its bytes are the recorded ones."""
    fields, _ = bagfmt.parse_bag_info(_verified(location, aip_id, tags, BAG_INFO)
                                      .read_text(encoding="utf-8"))
    return [(f.label, f.value) for f in fields]


def copy_missing_versions(repo: Repository, aip_id: str, version: int
                          ) -> tuple[list[str], list[str]]:
    """Copy to each other location of the policy the versions up to `version` it lacks,
    in order (a version an interrupted run did not copy comes first); the locations
    brought up to date, and a line per location that could not be."""
    from preserve.storage.replicate import copy_version

    copied, problems = [], []
    for target in repo.replica_locations()[1:]:
        try:
            for missing in range(repo.catalog.head_at(aip_id, target.name) + 1, version + 1):
                copy_version(repo, aip_id, missing, target)
            copied.append(target.name)
        except PreserveError as e:
            problems.append(f"{target.name}: {e.message}")
    return copied, problems


def _check_added(added: list[tuple[str, Path]], folder: str = "data/",
                 what: str = "payload") -> None:
    """Each new file: a safe bag path under `folder`, named once, a file to copy in (the
    versions' PREMIS documents are written by the version writer only)."""
    seen = set()
    for rel, source in added:
        try:
            check_relative(rel)
        except UnsafePath as e:
            raise BadArgument(f"{display(rel)!r} cannot be a bag path: {e}") from None
        if not rel.startswith(folder) or rel in seen or rel.startswith(PREMIS_PREFIX):
            raise BadArgument(f"{display(rel)!r}: new {what} goes under {folder}, once")
        seen.add(rel)
        if not Path(source).is_file():
            raise BadArgument(f"{source} is not a file to add")


def _write_version(repo, location, aip_id: str, head: int, version: int, staged: Path,
                   change: VersionChange) -> list[FileRecord]:
    catalog = repo.catalog
    root = ocfl.object_root(aip_id)
    version_dir = staged / f"v{version}"
    bag = version_dir / ocfl.CONTENT
    fstree.makedirs(bag / "metadata")
    added = _copy_added(bag, change.added, change.identified)
    for rel, source in change.metadata:  # hashed with the other tag files, below
        fstree.makedirs((bag / rel).parent)
        shutil.copyfile(source, bag / rel)
    info = catalog.version_info(aip_id, head)
    files = info["files"] + len(added)
    nbytes = info["bytes"] + sum(r.size for r in added)

    tags = {path: (held_in, digests) for path, held_in, _size, digests in
            catalog.state_files(aip_id, head, tags_only=True)}  # the last bag's tag files
    (bag / BAG_INFO).write_text(bagfmt.format_bag_info(_bag_info(
        _bag_info_fields(location, aip_id, tags), change.bag_info, version,
        change.event.datetime, nbytes, files)), encoding="utf-8", newline="\n")
    with open(bag / premis_file(version), "x", encoding="utf-8", newline="\n") as out:
        premis = PremisWriter(out, aip_id)  # this version's record, beside the earlier ones
        for record in added:
            source = change.derived.get(record.path)
            premis.write_object(_premis_object(record, source[:2] if source else None))
        premis.finish([change.event, *change.events], change.agents, rights=change.rights)
    if added:
        _extend_manifests(location, aip_id, tags, bag, added)

    algorithms = _tag_manifest_algorithms(info["tagmanifest"], tags)
    unchanged = {path: digests for path, (_held, digests) in tags.items()
                 if not (bag / path).exists()}
    tagmanifest, tagmanifest_sha256 = write_tag_manifests(bag, algorithms, unchanged)
    catalog.add_files(aip_id, version, added + tag_records(bag))
    record = new_record(version, change.event.datetime, change.message)
    inventory_sha512 = write_inventory(catalog, aip_id,
                                       [*catalog.version_records(aip_id, head), record],
                                       version_dir)
    title = change.bag_info.get("Title", [catalog.get_aip(aip_id).title])[0]
    catalog.stage_version(
        aip_id, version, record, files, nbytes, bagfmt.payload_oxum(nbytes, files),
        tagmanifest, tagmanifest_sha256, inventory_sha512,
        [event_record(aip_id, event, version) for event in [change.event, *change.events]],
        title=title, derivations=[(source, rel, rule, event_id) for rel, (source, event_id, rule)
                                  in change.derived.items()],
        rights=[(r.identifier, r.recorded, r.to_json()) for r in change.rights])
    key = ocfl.version_key(root, version)
    head_inventory = staged / ocfl.INVENTORY
    shutil.copyfile(version_dir / ocfl.INVENTORY, head_inventory)
    location.publish_bag(version_dir, key, move=True)
    location.replace_file(root + ocfl.INVENTORY, head_inventory)  # the version is visible
    location.put_bytes(root + ocfl.SIDECAR, ocfl.sidecar(inventory_sha512))
    catalog.mark_stored(aip_id, version, location.name, key, now_utc())
    return added


def _copy_added(bag: Path, added: list[tuple[str, Path]],
                identified: dict[str, Identification]) -> list[FileRecord]:
    """Copy the new payload into the version's content, hashing on the way, then identify
    the copies as ingest does (siegfried and libmagic), unless they come identified."""
    copies = []
    for rel, source in added:
        dest = bag / rel
        fstree.makedirs(dest.parent)
        with open_regular(source) as stream:
            size, digests, _ = copy_one(stream, str(dest), HASHED)
        copies.append((rel, dest, size, digests))
    unknown = [c for c in copies if c[0] not in identified]
    if unknown:
        siegfried_environment()
        found = identify_paths([str(dest) for _, dest, _, _ in unknown])
        identified = {**identified, **{c[0]: i for c, i in zip(unknown, found, strict=True)}}
    records = []
    for rel, _, size, digests in copies:
        i = identified[rel]
        records.append(FileRecord(rel, size, digests, i.puid, i.format, i.version, i.mime,
                                  i.basis, i.warning, i.confidence, i.magic_mime,
                                  i.magic_description))
    return records


def premis_file(version: int) -> str:
    """The PREMIS document a version adds (v1's is metadata/premis.xml, from ingest)."""
    return f"metadata/premis-v{version}.xml"


def _premis_object(r: FileRecord, derived_from: tuple[str, str] | None) -> FileObject:
    notes = format_notes(r.mime, r.basis, r.warning, r.confidence, r.magic_mime,
                         r.magic_description)
    return FileObject(r.path, r.path[len("data/"):], r.size, r.digests, r.puid, r.format,
                      r.format_version, notes, derived_from)


def _extend_manifests(location, aip_id: str, tags: dict, bag: Path,
                      added: list[FileRecord]) -> None:
    """The payload manifests and the fast-digest list of the new bag: the last version's,
    verified, with a line per new file (streamed: a manifest lists every payload file)."""
    lines = {}
    for path in tags:
        m = bagfmt.MANIFEST_RE.match(path)
        if (m and not m.group(1)) or path == FAST_LIST:
            algorithm = FAST_ALGORITHM if path == FAST_LIST else m.group(2)
            lines[path] = [f"{r.digests[algorithm]}  {encode_manifest_path(r.path)}\n"
                           for r in added]
    for path, new_lines in lines.items():
        fstree.makedirs((bag / path).parent)
        stored = _stored(location, aip_id, tags, path)
        with open_stored(str(stored), str(stored)) as old, \
                open(bag / path, "xb") as out:  # read once: copied
            _, digests, _ = hash_stream(old, ["sha512"], sink=write_all(out.write))  # and
            out.write("".join(new_lines).encode("utf-8"))                         # checked
        if digests["sha512"] != tags[path][1]["sha512"]:
            raise FixityMismatch(f"{stored} does not match its recorded digest; nothing was "
                                 "changed", hint="run 'preserve repair', then try again")


def _bag_info(fields: list[tuple[str, str]], changes: dict[str, list[str]], version: int,
              when: str, nbytes: int, files: int) -> list[tuple[str, str]]:
    """bag-info fields with the changed labels' values replaced where they stood (or
    added before preserve's own fields); version, date, Payload-Oxum and Bag-Size
    brought up to date."""
    derived = {"Preserve-AIP-Version": str(version), "Bagging-Date": when[:10],
               "Payload-Oxum": bagfmt.payload_oxum(nbytes, files),
               "Bag-Size": bagfmt.human_size(nbytes)}
    out: list[tuple[str, str]] = []
    placed: set[str] = set()

    def place(labels) -> None:
        for label in labels:
            if label not in placed:
                out.extend((label, v) for v in changes[label])
                placed.add(label)

    for label, value in fields:
        if label in changes:
            place([label])
            continue
        if label == "Preserve-AIP-Identifier":
            place(changes)
        out.append((label, derived.get(label, value)))
    place(changes)
    return out


def _tag_manifest_algorithms(tagmanifest: str, tags: dict) -> list[str]:
    """The algorithms of the bag's tag manifests, the package digest's (`tagmanifest`)
    first, as ingest wrote them (a later version keeps its bag's algorithms, whatever the
    policy says now)."""
    lead = bagfmt.MANIFEST_RE.match(tagmanifest).group(2)
    others = sorted(bagfmt.MANIFEST_RE.match(path).group(2) for path in tags
                    if path.startswith("tagmanifest-") and bagfmt.MANIFEST_RE.match(path))
    return [lead] + [a for a in others if a != lead]


def _stored(location, aip_id: str, tags: dict, rel: str) -> Path:
    """Where a tag file of the last bag is on the primary disk."""
    if rel not in tags:
        raise FixityMismatch(f"AIP {aip_id} has no {rel} on record")
    return location.local_path(ocfl.key_of(ocfl.version_key(ocfl.object_root(aip_id),
                                                             tags[rel][0]), rel))


def _verified(location, aip_id: str, tags: dict, rel: str) -> Path:
    """The same, once its bytes are found to be the recorded ones: a new version is never
    built on damaged bytes."""
    path = _stored(location, aip_id, tags, rel)
    return verified_local(path, tags[rel][1]["sha512"], f"{path} (nothing was changed)",
                          "run 'preserve repair', then try again")
