"""Describe: correct an AIP's descriptive metadata, as a new version of its OCFL object.

Archivists correct titles, creators, identifiers and rights statements; preservation
never rewrites what it holds. So a correction is a new version whose bag differs
from the last in bag-info.txt, the PREMIS record (one more event: what changed, who,
why) and the tag manifests; the payload is untouched and stays where it is, referenced
by the new inventory, never copied. The version is assembled in staging (named by
the AIP and version, with a lock naming the process, as ingest does), its rows and
inventory recorded, then published on the primary disk: its folder renamed into the
object, then the object's root inventory replaced, last. A crash before that leaves
the previous head intact; ingest.recover finishes or removes what it left.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from contextlib import suppress
from dataclasses import asdict, dataclass, field

from preserve import AGENT_NAME, __version__
from preserve.domain import bag as bagfmt
from preserve.domain import ocfl
from preserve.domain.fixity import hash_file
from preserve.domain.model import EventRecord
from preserve.domain.names import display
from preserve.domain.premis import Agent, Event, add_events
from preserve.errors import BadArgument, FixityMismatch, PreserveError, StorageUnreachable
from preserve.infrastructure import fstree
from preserve.infrastructure.locks import writer_lock
from preserve.infrastructure.repository import Repository
from preserve.services.common import now_utc
from preserve.services.ingest import (
    AGENT_PRESERVE,
    PREMIS_FILE,
    Metadata,
    check_metadata,
    resolve_versions,
)
from preserve.services.tidy import tidy
from preserve.services.versions import (
    new_record,
    tag_records,
    version_user,
    write_inventory,
    write_tag_manifests,
)

BAG_INFO = "bag-info.txt"
# bag-info.txt labels an archivist corrects, by Description field
LABELS = {"title": "Title", "creators": "Creator", "identifiers": "External-Identifier",
          "rights": "Rights"}


@dataclass
class Description:
    """The corrections asked for: None leaves a field as it is; a list replaces every
    value of a repeatable field."""
    title: str | None = None
    creators: list[str] | None = None
    identifiers: list[str] | None = None
    rights: str | None = None
    note: str | None = None  # why: the version's message and the PREMIS event's

    def changed(self) -> dict[str, list[str]]:
        """bag-info label -> its new values, for the fields given."""
        out = {}
        for name, label in LABELS.items():
            value = getattr(self, name)
            if value is not None:
                out[label] = list(value) if isinstance(value, list) else [value]
        return out


@dataclass
class DescribeResult:
    aip_id: str
    version: int
    changed: list[str]
    location: str
    replicas: list[str] = field(default_factory=list)
    replication_problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def describe(repo: Repository, ref: str, description: Description) -> DescribeResult:
    changes = description.changed()
    if not changes:
        raise BadArgument("nothing to correct", hint="give --title, --creator, --identifier "
                          "or --rights (and --note to say why)")
    check_metadata(Metadata("-", description.title, description.creators or [],
                            description.identifiers or [], description.rights))
    if description.note is not None and not description.note.strip():
        raise BadArgument("the note is blank", hint="say why the description changes, or "
                          "leave --note out")
    tidy(repo)
    catalog = repo.catalog
    aip_id = catalog.resolve(ref)
    location = repo.primary_location()
    with writer_lock(repo.root, location.name, aip_id):
        head = catalog.get_aip(aip_id).version  # read again: another run may have added one
        if location.name not in catalog.replica_locations(aip_id, head):
            raise StorageUnreachable(f"the primary location '{location.name}' holds no copy of "
                                     f"AIP {aip_id} v{head}", hint="run 'preserve replicate'")
        version = head + 1
        name = f"{aip_id}.v{version}"
        lock = repo.staging / f"{name}.lock"
        staged = repo.staging / name
        lock.write_text(f"{os.getpid()} {now_utc()}\n")
        try:
            try:
                _write_version(repo, location, aip_id, head, version, staged, description)
            finally:
                fstree.rmtree(staged, ignore_errors=True)
                lock.unlink(missing_ok=True)
        except BaseException:
            with suppress(Exception):  # else the next command's tidy does it
                resolve_versions(repo)
            raise
    result = DescribeResult(aip_id, version, sorted(changes), location.name, [location.name])
    from preserve.services.replicate import copy_version

    for target in repo.replica_locations()[1:]:
        try:
            copy_version(repo, aip_id, version, target)
            result.replicas.append(target.name)
        except PreserveError as e:
            result.replication_problems.append(f"{target.name}: {e.message}")
    return result


def _write_version(repo, location, aip_id: str, head: int, version: int, staged,
                   description: Description) -> None:
    catalog = repo.catalog
    root = ocfl.object_root(aip_id)
    bag = staged / f"v{version}" / ocfl.CONTENT
    fstree.makedirs(bag / "metadata")
    when = now_utc()
    changes = description.changed()
    user, _address = version_user()
    what = "; ".join(f"{label}: " + " | ".join(display(v) for v in values)
                     for label, values in changes.items())
    message = f"description corrected ({what})" + (
        f": {description.note}" if description.note else "")
    event = Event("metadata modification", when, "success",
                  f"descriptive metadata of version {head} corrected in version {version}: "
                  f"{what}", description.note,
                  [(AGENT_PRESERVE, "executing program"), (f"user-{user}", "implementer")])
    agents = [Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__,
                    "preserve digital preservation repository"),
              Agent(f"user-{user}", user, "person")]

    info_text = _read_verified(catalog, location, aip_id, head, BAG_INFO).decode("utf-8")
    fields, _ = bagfmt.parse_bag_info(info_text)
    (bag / BAG_INFO).write_text(
        bagfmt.format_bag_info(_corrected([(f.label, f.value) for f in fields], changes,
                                          version, when)), encoding="utf-8", newline="\n")
    premis = _verified_path(catalog, location, aip_id, head, PREMIS_FILE)  # streamed: it
    with open(premis, encoding="utf-8", newline="") as source, \
            open(bag / PREMIS_FILE, "w", encoding="utf-8", newline="") as out:  # can be large
        add_events(source, out, aip_id, [event], agents)

    algorithms = _tag_manifest_algorithms(catalog, aip_id, head)
    unchanged = {path: digests for path, _held, _size, digests in
                 catalog.state_files(aip_id, head)
                 if not path.startswith("data/") and not (bag / path).exists()}
    tagmanifest, tagmanifest_sha256 = write_tag_manifests(bag, algorithms, unchanged)
    catalog.add_files(aip_id, version, tag_records(bag))
    record = new_record(version, when, message)
    version_dir = staged / f"v{version}"
    inventory_sha512 = write_inventory(catalog, aip_id,
                                       [*catalog.version_records(aip_id, head), record],
                                       version_dir)
    info = catalog.version_info(aip_id, head)
    events = [EventRecord(event.identifier, aip_id, event.type, when, "success", event.detail,
                          description.note, AGENT_PRESERVE, version)]
    title = description.title if description.title is not None else \
        catalog.get_aip(aip_id).title
    catalog.stage_version(aip_id, version, record, info["files"], info["bytes"],
                          info["payload_oxum"], tagmanifest, tagmanifest_sha256,
                          inventory_sha512, events, title=title)
    key = ocfl.version_key(root, version)
    head_inventory = staged / ocfl.INVENTORY
    shutil.copyfile(version_dir / ocfl.INVENTORY, head_inventory)
    location.publish_bag(version_dir, key, move=True)
    location.replace_file(root + ocfl.INVENTORY, head_inventory)  # the version is visible
    location.put_bytes(root + ocfl.SIDECAR, ocfl.sidecar(inventory_sha512))
    catalog.mark_stored(aip_id, version, location.name, key, now_utc())


def _corrected(fields: list[tuple[str, str]], changes: dict[str, list[str]], version: int,
               when: str) -> list[tuple[str, str]]:
    """bag-info fields with the corrected labels' values replaced where they stood (or
    added before preserve's own fields), the version and bagging date updated."""
    out: list[tuple[str, str]] = []
    placed: set[str] = set()
    for label, value in fields:
        if label in changes:
            if label not in placed:
                out += [(label, v) for v in changes[label]]
                placed.add(label)
            continue
        if label == "Preserve-AIP-Identifier":
            for missing in (lbl for lbl in changes if lbl not in placed):
                out += [(missing, v) for v in changes[missing]]
                placed.add(missing)
        if label == "Preserve-AIP-Version":
            value = str(version)
        elif label == "Bagging-Date":
            value = when[:10]
        out.append((label, value))
    for missing in (lbl for lbl in changes if lbl not in placed):
        out += [(missing, v) for v in changes[missing]]
    return out


def _tag_manifest_algorithms(catalog, aip_id: str, head: int) -> list[str]:
    """The algorithms of the bag's tag manifests, the package digest's first, as ingest
    wrote them (a later version keeps its bag's algorithms, whatever the policy says now)."""
    first = catalog.version_info(aip_id, head)["tagmanifest"]
    names = [path for path, *_ in catalog.state_files(aip_id, head)
             if bagfmt.MANIFEST_RE.match(path) and path.startswith("tagmanifest-")]
    algorithms = [bagfmt.MANIFEST_RE.match(n).group(2) for n in sorted(names)]
    lead = bagfmt.MANIFEST_RE.match(first).group(2)
    return [lead] + [a for a in algorithms if a != lead]


def _read_verified(catalog, location, aip_id: str, version: int, rel: str) -> bytes:
    """A tag file of the bag of `version`, read from `location` and checked against its
    recorded sha512 (a correction is never built on damaged bytes)."""
    found = catalog.state_file(aip_id, version, rel)
    if found is None:
        raise FixityMismatch(f"AIP {aip_id} v{version} has no {rel} on record")
    held_in, digests = found
    key = ocfl.key_of(ocfl.version_key(ocfl.object_root(aip_id), held_in), rel)
    return _read_back(location, key, digests["sha512"])


def _verified_path(catalog, location, aip_id: str, version: int, rel: str):
    """Where a tag file of the bag of `version` is on the primary disk, once its bytes
    have been checked against the recorded sha512 (read as a stream)."""
    held_in, digests = catalog.state_file(aip_id, version, rel)
    path = location.local_path(ocfl.key_of(ocfl.version_key(ocfl.object_root(aip_id),
                                                             held_in), rel))
    try:
        digest = hash_file(path, ["sha512"])[1]["sha512"]
    except FileNotFoundError:
        digest = None
    if digest != digests["sha512"]:
        raise FixityMismatch(f"{path} is missing or does not match its recorded digest; "
                             "nothing was changed",
                             hint="run 'preserve repair', then describe again")
    return path


def _read_back(location, key: str, sha512: str) -> bytes:
    try:
        with location.open(key) as f:
            data = f.read()
    except FileNotFoundError:
        data = None
    if data is None or hashlib.sha512(data).hexdigest() != sha512:
        raise FixityMismatch(f"{key} at '{location.name}' is missing or does not match its "
                             "recorded digest; nothing was changed",
                             hint="run 'preserve repair', then describe again")
    return data
