"""BagIt (RFC 8493) text formats: bag declaration, bag-info, manifests.

Pure functions that turn structured data into tag-file text and back. The
strict validator (validate.py) and the bag writer (ingest/ingest.py) both
stand on these, so a bag we write is read back by the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from preserve.domain.names import decode_manifest_path, encode_manifest_path

BAGIT_VERSION = "1.0"
DECLARATION = f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n"
MANIFEST_RE = re.compile(r"^(tag)?manifest-([A-Za-z0-9]+)\.txt$")

# Every published BagIt version. A bag is judged by the rules of the version it declares:
# what a later version made a MUST is only a warning in a bag that declares an earlier one.
SUPPORTED_VERSIONS = ("0.93", "0.94", "0.95", "0.96", "0.97", "1.0")

# Where an AIP's bag keeps preserve's own tag files (export and the version writer read
# them back).
PREMIS_FILE = "metadata/premis.xml"
FAST_LIST = "metadata/fixity-xxh3_128.txt"
EMPTY_DIRS_FILE = "metadata/empty-directories.txt"
SOURCE_BAG_DIR = "metadata/source-bag"  # a source bag's own tag files, kept as they were

# bag-info.txt labels that RFC 8493 §2.2.2 reserves and that should appear once.
NON_REPEATABLE = (
    "Bagging-Date", "Bag-Size", "Payload-Oxum", "Bag-Group-Identifier", "Bag-Count",
)


def decode_tag_text(raw: bytes, encoding: str) -> str:
    """A tag file's bytes as text in its declared encoding, past a UTF-8 byte-order mark
    (the validator warns of one; the text is unaffected)."""
    if raw.startswith(b"\xef\xbb\xbf") and encoding.lower().replace("_", "-") in ("utf-8",
                                                                                   "utf8"):
        raw = raw[3:]
    return raw.decode(encoding)


def split_lines(text: str) -> list[str]:
    """Split on LF, CR or CRLF (all three are allowed line endings in tag files)."""
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


@dataclass
class ManifestEntry:
    line: int
    digest: str
    path: str  # decoded, exactly as the file is named


@dataclass
class ParsedManifest:
    entries: list[ManifestEntry] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, message)


def format_manifest(entries: list[tuple[str, str]]) -> str:
    """(path, hex digest) pairs -> manifest text, paths percent-encoded."""
    return "".join(f"{digest}  {encode_manifest_path(path)}\n" for path, digest in entries)


def manifest_line(path: str, digest: str) -> str:
    return f"{digest}  {encode_manifest_path(path)}\n"


_MANIFEST_LINE = re.compile(r"^([0-9A-Fa-f]+)[ \t]+(.+)$")


def parse_manifest(text: str) -> ParsedManifest:
    """Parse `<digest><whitespace><path>` lines; malformed lines become errors with line numbers."""
    parsed = ParsedManifest()
    for number, line in enumerate(split_lines(text), start=1):
        entry = parse_manifest_line(line)
        if isinstance(entry, str):
            parsed.errors.append((number, entry))
        else:
            parsed.entries.append(ManifestEntry(number, *entry))
    return parsed


def parse_manifest_line(line: str) -> tuple[str, str] | str:
    """One manifest line -> (lowercase digest, decoded path), or what is wrong with it.

    The separator is one or more spaces or tabs (RFC 8493 §2.1.3); the path
    is everything after it, taken literally except for the %-escapes.
    """
    if not line.strip():
        return "blank line"
    m = _MANIFEST_LINE.match(line)
    if not m:
        return f"not '<digest> <path>': {line[:80]!r}"
    return m.group(1).lower(), decode_manifest_path(m.group(2))


@dataclass
class BagInfoLine:
    line: int
    label: str
    value: str


def format_bag_info(fields: list[tuple[str, str]]) -> str:
    """Labels and values -> bag-info.txt. Multi-line values become indented continuation lines."""
    out = []
    for label, value in fields:
        if not label or ":" in label or label != label.strip():
            raise ValueError(f"invalid bag-info label {label!r}")
        value_lines = split_lines(str(value)) or [""]
        out.append(f"{label}: {value_lines[0]}\n")
        out.extend(f"  {v}\n" for v in value_lines[1:])
    return "".join(out)


class BagInfoProblem(NamedTuple):
    """Something wrong on one line of bag-info.txt. `kind` says how bad: "error" breaks
    every version's grammar; "blank" (an empty line) and "spaced-label" (whitespace
    around the label) are what common producers write and a reader can interpret without
    doubt, so the validator decides by the bag's declared version."""

    line: int
    message: str
    kind: str = "error"


def parse_bag_info(text: str) -> tuple[list[BagInfoLine], list[BagInfoProblem]]:
    """Parse bag-info.txt; continuation lines (leading whitespace) join the previous value.

    Linear in the size of the text, however many continuation lines a value has."""
    items: list[BagInfoLine] = []
    parts: list[list[str]] = []  # each item's value, line by line (joined once, at the end)
    problems: list[BagInfoProblem] = []
    for number, line in enumerate(split_lines(text), start=1):
        if not line:
            problems.append(BagInfoProblem(number, "empty line", "blank"))
            continue
        if line[:1] in (" ", "\t"):
            if not items:
                problems.append(BagInfoProblem(number, "continuation line before any label"))
            else:
                parts[-1].append(line.strip())
            continue
        if ":" not in line:
            problems.append(BagInfoProblem(
                number, f"no ':' separating label and value: {line[:80]!r}"))
            continue
        label, _, value = line.partition(":")
        if not label.strip():
            problems.append(BagInfoProblem(number, "empty label"))
            continue
        if label != label.strip():
            problems.append(BagInfoProblem(
                number, f"label {label!r} has surrounding whitespace", "spaced-label"))
        items.append(BagInfoLine(number, label.strip(), ""))
        parts.append([value.strip()])
    for item, value in zip(items, parts, strict=True):
        item.value = "\n".join(value)
    return items, problems


def payload_oxum(total_bytes: int, file_count: int) -> str:
    return f"{total_bytes}.{file_count}"


def human_size(n: int) -> str:
    """Bag-Size style: '1.4 GB' (decimal units, as bagit tools write it)."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
