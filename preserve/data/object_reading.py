"""Reading one OCFL object back into the catalog's rows (issue 24's rebuild): what an AIP
is, every version, every file with all its digests and identification, and what each
migration derived from what. Nothing here trusts the catalog: the object alone says it.

Where each column comes from:
    aips        id: the inventory; collection, title, source kind: v1's bag-info.txt;
                created: v1's created; source: v1's message (which names it)
    versions    created, message, user: the inventory; files, bytes: the version's
                Payload-Oxum; title: its bag-info Title (else the AIP's); the package
                digest: the tag manifest that lists the others, and its SHA-256;
                inventory_sha512: the version's sidecar
    files       sha512: the inventory's manifest; sha256: its fixity block; xxh3_128: the
                version's metadata/fixity-xxh3_128.txt for payload, the tag file itself
                for tag files; size: the store's listing; identification: the version's
                PREMIS file objects (formatName, formatVersion, PRONOM key, formatNotes)
    derivations the PREMIS derivation relationships of a version's new files
    file_validations  the per-file validation and virus check events of the version's
                PREMIS (domain/file_checks.py); later checks (validate-files) are in
                logs/ documents, applied by the rebuild from the event log
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import xxhash

from preserve.domain import bag as bagfmt
from preserve.domain import ocfl
from preserve.domain.bag import FAST_LIST
from preserve.domain.file_checks import read_check_rows
from preserve.domain.identify import parse_format_notes
from preserve.domain.premis import PREMIS_NS, decode_name, read_rights
from preserve.errors import PreserveError
from preserve.stores.base import open_stored

P = f"{{{PREMIS_NS}}}"
PAYLOAD = "data/"


class UnreadableObject(Exception):
    """An object whose inventory cannot be read or does not match its sidecar."""


@dataclass
class ObjectRows:
    aip: str
    head: int
    inventory_digests: dict[int, str]  # version -> its inventory's sha512 (its sidecar)
    aip_row: tuple = ()
    versions: list[tuple] = field(default_factory=list)
    files: list[tuple] = field(default_factory=list)
    derivations: list[tuple] = field(default_factory=list)  # without the rule: the log's
    validations: list[tuple] = field(default_factory=list)  # file_validations rows
    rights: list[tuple] = field(default_factory=list)  # rights_statements rows


def _reader(storage, root: str) -> Callable[[str], bytes]:
    """The bytes of a file of the object at `root`, by its path in the object. On a disk,
    one checked folder for the object and each file opened as a regular file, never
    through a link (stores.local.local_files, base.open_stored): a realpath a file would
    cost as much as reading it."""
    if hasattr(storage, "local_files"):
        path_of = storage.local_files(root)

        def read_local(rel: str) -> bytes:
            with open_stored(path_of(rel), f"{root}{rel}") as f:
                return f.read()
        return read_local

    def read_store(rel: str) -> bytes:
        with storage.open(root + rel) as f:
            return f.read()
    return read_store


def read_object(storage, root: str, aip: str, *, verify: bool = False) -> ObjectRows:
    """The rows of the object at `root` in `storage`. With `verify`, every content file is
    read and its digests recomputed (UnreadableObject names the first that differs)."""
    read = _reader(storage, root)
    listed: dict[str, int] = {}

    def size_of(where: str) -> int | None:
        """A payload file's size where its PREMIS object does not say it: the store's."""
        if not listed:
            listed.update({i.key[len(root):]: i.size for i in storage.list(root)})
        return listed.get(where)

    try:
        text = read(ocfl.INVENTORY)
        sidecar = read(ocfl.SIDECAR).decode("utf-8", "replace").split()
    except (PreserveError, OSError) as e:
        raise UnreadableObject(f"cannot be read: {getattr(e, 'message', e)}") from None
    if not sidecar or hashlib.sha512(text).hexdigest() != sidecar[0]:
        raise UnreadableObject("its inventory does not match its sidecar")
    try:
        inventory = json.loads(text)
        head = int(inventory["head"][1:])
    except (ValueError, KeyError, TypeError):
        raise UnreadableObject("its inventory is not OCFL JSON") from None
    if inventory.get("id") != aip:
        raise UnreadableObject(f"its inventory names the object {inventory.get('id')!r}")
    out = ObjectRows(aip, head, {})
    content = {p: d for d, paths in inventory["manifest"].items() for p in paths}
    sha256 = {p: d for d, paths in inventory.get("fixity", {}).get("sha256", {}).items()
              for p in paths}
    for n in range(1, head + 1):
        try:
            out.inventory_digests[n] = read(f"v{n}/{ocfl.SIDECAR}").decode(
                "utf-8", "replace").split()[0]
        except (PreserveError, OSError, IndexError):
            raise UnreadableObject(f"v{n}'s inventory sidecar cannot be read") from None
    try:
        for n in range(1, head + 1):
            _read_version(read, inventory, n, content, sha256, size_of, out, verify)
    except (PreserveError, OSError, KeyError, ValueError) as e:
        raise UnreadableObject(f"cannot be read: {getattr(e, 'message', e)}") from None
    return out


def _state(inventory: dict, n: int) -> dict[str, str]:
    """Version n's logical paths -> content paths."""
    manifest = inventory["manifest"]
    return {path: manifest[digest][0] for digest, paths in
            inventory["versions"][f"v{n}"]["state"].items() for path in paths}


def _read_version(read: Callable[[str], bytes], inventory: dict, n: int,
                  content: dict[str, str], sha256: dict[str, str],
                  size_of: Callable[[str], int | None], out: ObjectRows, verify: bool) -> None:
    state = _state(inventory, n)
    version = inventory["versions"][f"v{n}"]
    held: dict[str, bytes] = {}  # each tag file read once

    def data_of(path: str) -> bytes:
        if path not in held:
            held[path] = read(state[path])
        return held[path]

    def text(path: str) -> str:
        return data_of(path).decode("utf-8")

    info: dict[str, list[str]] = {}
    for line in bagfmt.parse_bag_info(text("bag-info.txt"))[0]:
        info.setdefault(line.label, []).append(line.value)
    fast = {}
    if FAST_LIST in state:
        for entry in bagfmt.parse_manifest(text(FAST_LIST)).entries:
            fast[entry.path] = entry.digest
    premis_name = "metadata/premis.xml" if n == 1 else f"metadata/premis-v{n}.xml"
    identified, sizes, derived = (_premis(text(premis_name)) if premis_name in state
                                  else ({}, {}, {}))
    if premis_name in state:  # the checks of each new file's content (issue 26)
        checks = {(r.path, r.check_type): r for r in read_check_rows(text(premis_name))}
        out.validations += [(out.aip, n, r.path, r.check_type, r.status, r.detail, r.tools,
                             r.checked, r.event) for r in checks.values()]
        out.rights += [(out.aip, n, r.identifier, r.recorded, r.to_json())
                       for r in read_rights(text(premis_name))]
    prefix = f"v{n}/content/"
    for path, where in sorted(state.items()):
        if not where.startswith(prefix):
            continue  # kept from an earlier version: its row is that version's
        payload = path.startswith(PAYLOAD)
        data = data_of(path) if not payload or verify else None
        if verify and hashlib.sha512(data).hexdigest() != content[where]:
            raise UnreadableObject(f"{where} does not match its inventory digest")
        xxh = fast.get(path) if payload else xxhash.xxh3_128_hexdigest(data)
        size = len(data) if data is not None else sizes.get(path)
        ident = identified.get(path, (None,) * 9)
        out.files.append((out.aip, n, path, size_of(where) if size is None else size,
                          sha256.get(where), content[where], xxh, *ident))
        if path in derived:
            out.derivations.append((out.aip, n, derived[path][0], path, derived[path][1]))
    oxum = info.get("Payload-Oxum", ["0.0"])[0]
    nbytes, _, files = oxum.partition(".")
    user = version.get("user") or {}
    if n == 1:
        collection = info.get("Preserve-Collection", [""])[0]
        kind = info.get("Preserve-Source", [""])[0].split(" ", 1)[0] or None
        out.aip_row = (out.aip, collection, info.get("Title", [None])[0], "stored",
                       version["created"], _source(version.get("message", ""), kind,
                                                   collection), kind)
    title = info.get("Title", [out.aip_row[2]])[0]
    manifest, digest = _package_manifest(state, sha256, text)
    out.versions.append((out.aip, n, version["created"], int(files or 0), int(nbytes or 0),
                         oxum, manifest, digest, out.inventory_digests[n],
                         version.get("message", ""), user.get("name", ""),
                         user.get("address"), title, "stored"))


def _source(message: str, kind: str | None, collection: str) -> str | None:
    """The source an ingest names in v1's message: "ingested <kind> <source> into
    collection <collection, quoted as Python does>" (ingest/record.py writes it)."""
    start, end = f"ingested {kind} ", f" into collection {collection!r}"
    if kind and message.startswith(start) and message.endswith(end):
        return message[len(start):len(message) - len(end)]
    return None


def _package_manifest(state: dict[str, str], sha256: dict[str, str],
                      text: Callable[[str], str]) -> tuple[str, str]:
    """The tag manifest written last (the one that lists the others: its digest vouches
    for every file of the bag; versions.write_tag_manifests), and its SHA-256."""
    names = sorted(p for p in state if re.fullmatch(r"tagmanifest-[a-z0-9]+\.txt", p))
    if not names:
        return "", ""
    first = names[0] if len(names) == 1 else next(
        (n for n in names if "tagmanifest-" in text(n)), names[0])
    return first, sha256.get(state[first], "")


def _file_objects(text: str) -> Iterator[ET.Element]:
    """The document's objects. Its events and agents, which follow them
    (premis.PremisWriter), are cut off unparsed (the event log holds the events): a
    20,000-file AIP's PREMIS is mostly objects, and C parses them."""
    cut = min((i for i in (text.find("<premis:event>"), text.find("<premis:agent>"))
               if i >= 0), default=-1)
    try:
        root = ET.fromstring(text[:cut] + "</premis:premis>" if cut >= 0 else text)
    except ET.ParseError:
        root = ET.fromstring(text)  # not laid out as preserve writes it: read it whole
    yield from root.iter(P + "object")


# A file object as premis.PremisWriter lays it out, and the elements read from it. A
# document laid out otherwise (counted apart) is read by the XML parser instead.
_OBJECT = re.compile(r'<premis:object xsi:type="premis:file">(.*?)</premis:object>', re.S)
_FIELD = {name: re.compile(f"<premis:{name}>([^<]*)</premis:{name}>") for name in (
    "objectIdentifierValue", "size", "formatName", "formatVersion", "formatRegistryKey")}
_NOTE = re.compile(r"<premis:formatNote>([^<]*)</premis:formatNote>")
_DERIVATION = re.compile(
    r"<premis:relationshipType>derivation</premis:relationshipType>.*?"
    r"<premis:relatedObjectIdentifierValue>([^<]*)</premis:relatedObjectIdentifierValue>.*?"
    r"<premis:relatedEventIdentifierValue>([^<]*)</premis:relatedEventIdentifierValue>", re.S)


def _text(escaped: str | None) -> str | None:
    """An element's text as PremisWriter escaped it (&, <, > and the name encoding)."""
    if escaped is None:
        return None
    if "&" in escaped:
        escaped = escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return decode_name(escaped) if "%" in escaped else escaped


def _premis(text: str) -> tuple[dict[str, tuple], dict[str, int], dict[str, tuple[str, str]]]:
    """Identification of each file object (puid, format, version, mime, basis, warning,
    confidence, magic mime, magic description), its size, and derivations (derivative ->
    (source, event id)) of a PREMIS document preserve wrote: read by pattern where it is
    laid out as PremisWriter writes it (a 20,000-file AIP's in a fraction of the XML
    parser's time), else by the XML parser."""
    blocks = _OBJECT.findall(text)
    if len(blocks) != text.count("<premis:object ") - 1 or "<![CDATA[" in text:
        return _premis_parsed(text)
    identified, sizes, derived = {}, {}, {}
    for block in blocks:
        found = {name: (m.group(1) if (m := regex.search(block)) else None)
                 for name, regex in _FIELD.items()}
        path = _text(found["objectIdentifierValue"])
        if path is None or "<premis:format>" not in block:
            continue
        name, puid = _text(found["formatName"]), _text(found["formatRegistryKey"])
        notes = parse_format_notes([_text(n) for n in _NOTE.findall(block)])
        if found["size"] is not None:
            sizes[path] = int(found["size"])
        identified[path] = (puid, None if name == "unknown" and not puid else name,
                            _text(found["formatVersion"]), *notes)
        if "<premis:relationship>" in block:  # a migration's derivative
            for source, event in _DERIVATION.findall(block):
                derived[path] = (_text(source), _text(event))
    return identified, sizes, derived


def _premis_parsed(text: str) -> tuple[dict, dict, dict]:
    """_premis by the XML parser, for a document laid out otherwise."""
    identified, sizes, derived = {}, {}, {}
    for obj in _file_objects(text):
        path = decode_name(obj.findtext(f"{P}objectIdentifier/{P}objectIdentifierValue"))
        fmt = obj.find(f"{P}objectCharacteristics/{P}format")
        if path is None or fmt is None:
            continue
        name = decode_name(fmt.findtext(f"{P}formatDesignation/{P}formatName"))
        version = decode_name(fmt.findtext(f"{P}formatDesignation/{P}formatVersion"))
        puid = decode_name(fmt.findtext(f"{P}formatRegistry/{P}formatRegistryKey"))
        notes = parse_format_notes([decode_name(n.text or "")
                                    for n in fmt.iter(P + "formatNote")])
        size = obj.findtext(f"{P}objectCharacteristics/{P}size")
        if size is not None and size.isdigit():
            sizes[path] = int(size)
        identified[path] = (puid, None if name == "unknown" and not puid else name, version,
                            *notes)
        for rel in obj.iter(P + "relationship"):
            if rel.findtext(P + "relationshipType") == "derivation":
                source = decode_name(rel.findtext(f"{P}relatedObjectIdentifier/"
                                                  f"{P}relatedObjectIdentifierValue"))
                event = rel.findtext(f"{P}relatedEventIdentifier/"
                                     f"{P}relatedEventIdentifierValue")
                derived[path] = (source, event)
    return identified, sizes, derived
