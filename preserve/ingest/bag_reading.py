"""Reading a bag's tag files as RFC 8493 says: past a byte-order mark (warned about), in the
declared encoding, as a stream of lines (CR, LF or CRLF) that never holds a manifest of
millions of files whole, each line checked on its own and reported at its own number."""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from preserve.domain import bag as bagfmt
from preserve.domain.fixity import DIGEST_HEX_LENGTH
from preserve.domain.names import UnsafePath, check_relative, display
from preserve.ingest.bag_findings import Collector

PAYLOAD, TAG, DIRECTORY = 0, 1, 2  # files.kind; lines.tag is PAYLOAD or TAG


def open_tag_file(root: Path, name: str, out: Collector) -> BinaryIO | None:
    """A tag file opened for reading, past a byte-order mark (warned about: tag files should
    not start with one); None, with the error reported, if it cannot be opened."""
    try:
        raw = open(root / name, "rb")  # noqa: SIM115 (the callers close it)
    except OSError as e:
        out.error("E091", f"cannot read: {e.strerror}", name)
        return None
    if raw.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
        out.warning("W012", "starts with a byte-order mark; tag files should not", name)
    else:
        raw.seek(0)
    return raw


def read_text(root: Path, name: str, encoding: str, out: Collector) -> str | None:
    """A small tag file (bag-info.txt) whole."""
    raw = open_tag_file(root, name, out)
    if raw is None:
        return None
    with raw:
        try:
            return raw.read().decode(encoding)
        except UnicodeDecodeError as e:
            out.error("E012", f"not valid {encoding} at byte {e.start}", name)
            return None
        except OSError as e:
            out.error("E091", f"cannot read: {e.strerror}", name)
            return None


def stream_lines(root: Path, name: str, encoding: str,
                  out: Collector) -> Iterator[tuple[int, str]]:
    """(line number, text) of a tag file, read as a stream (a manifest of millions of files
    is never held whole). CR, LF and CRLF all end a line, as in bagfmt.split_lines.

    In an encoding that spells line ends as ASCII does (UTF-8, ISO-8859-1, ...) each line
    is decoded on its own: a line that does not decode is reported at its own number and
    the lines after it are still read. UTF-16 and UTF-32 are decoded as a stream."""
    raw = open_tag_file(root, name, out)
    if raw is None:
        return
    number = 0
    with raw:
        try:
            if not _ascii_compatible(encoding):
                text = io.TextIOWrapper(raw, encoding=encoding, newline=None)
                try:
                    for number, line in enumerate(text, start=1):
                        yield number, line[:-1] if line.endswith("\n") else line
                except UnicodeDecodeError:
                    out.error("E012", f"not valid {encoding} after line {number}", name,
                              number + 1)
                return
            for number, line in enumerate(_raw_lines(raw), start=1):
                try:
                    yield number, line.decode(encoding)
                except UnicodeDecodeError as e:
                    out.error("E012", f"not valid {encoding} at byte {e.start} of the line",
                              name, number)
        except OSError as e:
            out.error("E091", f"cannot read: {e.strerror}", name, number + 1)


def _ascii_compatible(encoding: str) -> bool:
    return "\r\n:% ".encode(encoding, errors="replace") == b"\r\n:% "


_EOL = re.compile(rb"\r\n|\r|\n")


def _raw_lines(raw: BinaryIO, chunk: int = 1 << 16) -> Iterator[bytes]:
    """The lines of a binary stream without their ends (CR, LF or CRLF), in time linear in
    its length however long a line is."""
    buf = bytearray()
    scanned = 0  # bytes of buf already searched for a line end
    while True:
        data = raw.read(chunk)
        eof = not data
        buf += data
        start = 0
        for m in _EOL.finditer(buf, scanned):
            if m.end() == len(buf) and m.group() == b"\r" and not eof:
                break  # a CR at the end may be the first half of a CRLF
            yield bytes(buf[start:m.start()])
            start = m.end()
        del buf[:start]
        scanned = max(0, len(buf) - 1)
        if eof:
            if buf:
                yield bytes(buf)
            return


def read_manifest(root, name, algorithm, encoding, db, out, *, tag: bool,
                   tags: dict[str, int]) -> None:
    """Check each line on its own as it streams by; what needs the whole bag (repeats,
    missing files, completeness) is asked of the scratch tables afterwards."""
    want_len = DIGEST_HEX_LENGTH.get(algorithm)
    kind = TAG if tag else PAYLOAD

    def rows():
        for number, line in stream_lines(root, name, encoding, out):
            entry = bagfmt.parse_manifest_line(line)
            if isinstance(entry, str):
                out.error("E041", entry, name, number)
                continue
            digest, path = entry
            path = _tolerated_spelling(path, tag, tags, name, number, out)
            try:
                check_relative(path)
            except UnsafePath as e:
                out.error("E042", f"unsafe path {display(path)!r} ({e}); never opened", name,
                          number)
                continue
            if tag and path.startswith("data/"):
                out.error("E044", "a tag manifest must not list payload files", name, number)
                continue
            if not tag and not path.startswith("data/"):
                out.error("E043", "a payload manifest may only list files under data/", name,
                          number)
                continue
            if want_len and len(digest) != want_len:
                out.error("E048", f"a {algorithm} digest has {want_len} hex digits, this one "
                          f"{len(digest)}", name, number)
            yield path, name, number, kind, algorithm, digest

    db.executemany("INSERT INTO lines VALUES (?, ?, ?, ?, ?, ?)", rows())


def _tolerated_spelling(path: str, tag: bool, tags: dict[str, int], manifest: str, number: int,
                        out: Collector) -> str:
    """Spellings that common producers write and that name one file without doubt, read as
    that file with a warning: a leading "./" (find and sha256sum write it), and md5sum's
    binary-mode marker ("<digest> *data/file"). A payload path must start with data/, so
    "*data/..." can mean nothing else; in a tag manifest the marker is dropped only where
    the name without it is a tag file and the name with it is not."""
    if path.startswith("*"):
        rest = path[1:]
        bare = rest[2:] if rest.startswith("./") else rest
        if (bare.startswith("data/") if not tag else bare in tags and path not in tags):
            out.warning("W044", "'*' before the path is md5sum's binary-mode marker, not part "
                        "of the name: read as " + repr(display(bare)), manifest, number)
            return bare
    if path.startswith("./") and not path.startswith("./."):
        out.warning("W043", "path starts with './': read as " + repr(display(path[2:])),
                    manifest, number)
        return path[2:]
    return path
