"""Format identification: PRONOM through siegfried (pygfried), MIME through libmagic.

siegfried gives the PRONOM PUID, format name and version and says on what
basis it matched; libmagic sniffs the first bytes for a MIME type and a
technical description. Both answers are kept. A match on the extension
alone, an extension that contradicts the bytes, an unknown format and a
zero-byte file are recorded as what they are, never as errors.

pygfried embeds a Go runtime: import this module only in processes that
will not fork afterwards (preserve's worker pools use "spawn").
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import cache

from preserve.domain.fixity import open_regular

HEAD_BYTES = 8192  # what libmagic needs to sniff nearly every format

# confidence levels, strongest first
SIGNATURE = "signature"        # byte, container or text signature matched
EXTENSION_ONLY = "extension"   # only the file name suggested the format
NONE = "none"                  # nothing matched, or the file is empty


@dataclass
class Identification:
    puid: str | None
    format: str | None
    version: str | None
    mime: str | None               # best MIME: siegfried's on a signature match, else libmagic's
    basis: str | None
    warning: str | None
    confidence: str
    magic_mime: str | None
    magic_description: str | None
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def format_notes(mime: str | None, basis: str | None, warning: str | None,
                 confidence: str | None, magic_mime: str | None,
                 magic_description: str | None) -> list[str]:
    """What identification found beyond the PUID and name, as the PREMIS object's
    formatNotes: every field the catalog keeps of it, one labelled note each, so that the
    object itself holds them all (issue 24: the catalog is to be rebuilt from storage)."""
    notes = [f"MIME type: {mime}"] if mime else []
    if confidence:
        notes.append(f"identified by: {confidence}")
    if basis:
        notes.append(f"siegfried basis: {basis}")
    if warning:
        notes.append(f"siegfried warning: {warning}")
    if magic_mime or magic_description:
        notes.append(f"libmagic: {magic_mime}; {magic_description}")
    return notes


NOTE_LABELS = {"MIME type: ": 0, "siegfried basis: ": 1, "siegfried warning: ": 2,
               "identified by: ": 3}


def parse_format_notes(notes: list[str]) -> tuple:
    """format_notes read back: (mime, basis, warning, confidence, magic mime, magic
    description); a field without its note is None."""
    out: list[str | None] = [None] * 6
    for note in notes:
        for label, index in NOTE_LABELS.items():
            if note.startswith(label):
                out[index] = note[len(label):]
        if note.startswith("libmagic: "):
            mime, _, description = note[len("libmagic: "):].partition("; ")
            out[4] = None if mime == "None" else mime
            out[5] = None if description == "None" else description
    mime, basis, warning, confidence, magic_mime, magic_description = out
    return mime, basis, warning, confidence, magic_mime, magic_description


def siegfried_environment() -> None:
    """Call in the parent before starting processes that will load siegfried: a tight Go
    garbage-collection target (GOGC=10) keeps their heap near 100 MiB private instead of
    about 145 MiB at Go's default, at no measurable cost in speed on 20,000 files. It must
    be set before the process starts: Go reads the environment the process was started
    with, not later changes (an archivist's own GOGC wins)."""
    os.environ.setdefault("GOGC", "10")


@cache
def _magic_handle():
    """One libmagic handle a process, its flags set for each question (a second handle
    would map and parse the magic database again: 2 MiB more in every copy worker)."""
    import magic

    return magic.Magic()


def _ask_libmagic(mime: bool, head: bytes) -> str:
    import magic

    handle = _magic_handle()
    magic.magic_setflags(handle.cookie, magic.MAGIC_MIME_TYPE if mime else magic.MAGIC_NONE)
    return handle.from_buffer(head)


@cache
def siegfried_info() -> dict:
    """siegfried's version and the PRONOM signature files it embeds (for PREMIS agents)."""
    import pygfried

    empty = pygfried.identify_many([])
    details = "; ".join(i.get("details", "") for i in empty.get("identifiers", []))
    return {"version": pygfried.version(), "signature": empty.get("signature", ""),
            "signature_created": empty.get("created", ""), "pronom": details}


def tool_versions() -> dict:
    """What identified the files, for PREMIS agents (computed where the tools run)."""
    return {"siegfried": siegfried_info(), "libmagic": libmagic_version()}


@cache
def libmagic_version() -> str:
    import magic

    v = magic.version()
    return f"{v // 100}.{v % 100:02d}"


GENERIC_MIME = ("application/octet-stream", "application/x-empty", "inode/x-empty")


def sniff_mime(head: bytes) -> str | None:
    """libmagic's MIME type for the first bytes of a file."""
    try:
        return _ask_libmagic(True, head)
    except Exception:  # libmagic raises its own MagicException on odd input
        return None


def describe(head: bytes) -> str | None:
    """libmagic's technical description (dimensions, bit depth, sample rate...)."""
    try:
        return _ask_libmagic(False, head)
    except Exception as e:
        return f"libmagic failed: {e}"


def sniff(head: bytes, size: int) -> tuple[str | None, str | None]:
    """libmagic's (MIME type, description) of a file from its first bytes."""
    magic_mime = sniff_mime(head)
    # The description is a second libmagic pass; where libmagic found no type at all it
    # would only say "data", after testing its whole database (about 0.25 ms a file).
    magic_description = None
    if size and magic_mime not in GENERIC_MIME:
        magic_description = describe(head)
    return magic_mime, magic_description


def combine(entry: dict, size: int, magic: tuple[str | None, str | None]) -> Identification:
    """One file's identification from siegfried's entry and libmagic's answer."""
    magic_mime, magic_description = magic
    if size == 0:
        return Identification(None, None, None, magic_mime, None, "zero-byte file", NONE,
                              magic_mime, magic_description)
    matches = [m for m in entry.get("matches", []) if m.get("ns") == "pronom"]
    error = entry.get("errors") or None
    if not matches or matches[0].get("id") in ("UNKNOWN", "", None):
        warning = matches[0].get("warning") if matches else None
        return Identification(None, None, None, magic_mime, None, warning or "no PRONOM match",
                              NONE, magic_mime, magic_description, error)
    m = matches[0]
    warning = m.get("warning") or None
    basis = m.get("basis") or None
    confidence = SIGNATURE
    if warning and "extension only" in warning:
        confidence = EXTENSION_ONLY
    sf_mime = m.get("mime") or None
    mime = sf_mime if (confidence == SIGNATURE and sf_mime) else (magic_mime or sf_mime)
    return Identification(m.get("id"), m.get("format") or None, m.get("version") or None, mime,
                          basis, warning, confidence, magic_mime, magic_description, error)


def needs_libmagic(found: Identification) -> bool:
    """Whether libmagic can add to siegfried's answer: not where siegfried matched a
    signature and PRONOM gives a MIME type (libmagic would only repeat it, at up to 6 ms
    a file for text and JSON), but where it matched nothing, only the extension, or a
    format without a MIME type, and for empty files."""
    return found.confidence != SIGNATURE or not found.mime


def siegfried_entries(paths: list[str], workers: int = 1) -> list[dict]:
    """siegfried's entry for each path: one call for the batch (`workers` goroutines), or
    one by one when the batch fails (a name Go cannot take)."""
    import pygfried

    if not paths:
        return []
    try:
        entries = pygfried.identify_many(paths, workers=workers)["files"]
        if len(entries) != len(paths):
            raise RuntimeError("siegfried returned a different number of results")
        return entries
    except Exception:
        return [_identify_one(p) for p in paths]


def identify_files(files: list[tuple[str, int, bytes]]) -> list[Identification]:
    """Identify (path, size, head bytes) triples; one siegfried batch call for all of them.

    The head is what the caller already read (ingest keeps it from its
    single pass), so libmagic never re-reads the file.
    """
    entries = siegfried_entries([p for p, _, _ in files])
    return [combine(e, size, sniff(head, size))
            for e, (_, size, head) in zip(entries, files, strict=True)]


def _identify_one(path: str) -> dict:
    import pygfried

    try:
        return pygfried.identify_many([path], workers=1)["files"][0]
    except Exception as e:
        return {"errors": f"siegfried failed: {e}", "matches": []}


def identify_paths(paths: list[str]) -> list[Identification]:
    """Identify files on disk, reading only their first bytes for libmagic."""
    files = []
    for p in paths:
        try:
            with open_regular(p, follow=True) as f:
                head = f.read(HEAD_BYTES)
            size = os.stat(p).st_size
        except OSError:
            head, size = b"", -1
        files.append((p, size, head))
    return identify_files(files)
