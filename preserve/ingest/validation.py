"""Strict RFC 8493 validation of any bag (BagIt 0.97 and 1.0), ours or another system's.

Every finding has a stable code (E… for a violated MUST, which makes the bag
invalid; W… for a violated SHOULD or a risk) and names the file and, where
there is one, the line. Paths from manifests and fetch.txt are checked
before use: one that could leave the bag is an error and is never opened.
Symbolic links are never followed.
"""

from __future__ import annotations

import codecs
import io
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby, islice
from pathlib import Path
from typing import BinaryIO

from preserve.domain import bag as bagfmt
from preserve.domain.fixity import DIGEST_HEX_LENGTH, hash_batch, is_supported
from preserve.domain.names import (
    UnsafePath,
    check_relative,
    decode_manifest_path,
    display,
    nfc,
)
from preserve.parallel import batched, run_batches
from preserve.system.scratch import scratch_database

# Every published BagIt version. A bag is judged by the rules of the version it declares:
# what a later version made a MUST is only a warning in a bag that declares an earlier one.
SUPPORTED_VERSIONS = ("0.93", "0.94", "0.95", "0.96", "0.97", "1.0")


@dataclass
class Finding:
    severity: str  # "error" or "warning"
    code: str
    message: str
    file: str | None = None
    line: int | None = None

    def to_dict(self) -> dict:
        return {"severity": self.severity, "code": self.code, "message": self.message,
                "file": self.file, "line": self.line}

    def location(self) -> str:
        if self.file is None:
            return ""
        return f"{display(self.file)}:{self.line}" if self.line else display(self.file)


class Findings:
    """Every finding of a validation, in report order (errors first, then by file, line and
    code), in bounded memory: past SPILL findings they go to a scratch database, which
    sorts them on disk (a manifest of a million lines naming missing files gives a million
    findings: red-team case 13 took 1.8 GB). Counts by severity and code stay in memory."""

    SPILL = 5000

    def __init__(self) -> None:
        self._memory: list[Finding] = []
        self._db: sqlite3.Connection | None = None
        self._database = None
        self.count = {"error": 0, "warning": 0}
        self.by_code: dict[str, int] = {}

    def add(self, finding: Finding) -> None:
        self.count[finding.severity] += 1
        self.by_code[finding.code] = self.by_code.get(finding.code, 0) + 1
        self._memory.append(finding)
        if len(self._memory) >= self.SPILL:
            self._spill()

    def _spill(self) -> None:
        if self._db is None:
            self._database = scratch_database(
                "CREATE TABLE findings(severity TEXT, code TEXT, message TEXT, file TEXT, "
                "line INTEGER)")
            self._db = self._database.__enter__()
        self._db.executemany("INSERT INTO findings VALUES (?, ?, ?, ?, ?)",
                             ((f.severity, f.code, f.message, f.file, f.line)
                              for f in self._memory))
        self._memory = []

    def __len__(self) -> int:
        return self.count["error"] + self.count["warning"]

    def __iter__(self) -> Iterator[Finding]:
        if self._db is None:
            yield from sorted(self._memory, key=_report_order)
            return
        self._spill()
        for row in self._db.execute(
                "SELECT severity, code, message, file, line FROM findings ORDER BY "
                "severity != 'error', coalesce(file, ''), coalesce(line, 0), code"):
            yield Finding(*row)

    def first(self, severity: str, limit: int) -> list[Finding]:
        """The first `limit` findings of one severity, in report order."""
        return list(islice((f for f in self if f.severity == severity), limit))

    def close(self) -> None:
        if self._database is not None:
            self._database.__exit__(None, None, None)
            self._database = self._db = None


def _report_order(f: Finding) -> tuple:
    return f.severity != "error", f.file or "", f.line or 0, f.code


@dataclass
class ValidationReport:
    bag: str
    version: str | None = None
    encoding: str | None = None  # the declared tag-file encoding, once it is known to work
    findings: Findings = field(default_factory=Findings)
    tag_files: list[tuple[str, int]] = field(default_factory=list)  # (path, size), sorted
    payload_files: int = 0
    payload_bytes: int = 0
    files_hashed: int = 0
    bytes_hashed: int = 0
    algorithms: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """Every error (a list: for a report of any size, use findings.first)."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def valid(self) -> bool:
        return not self.findings.count["error"]

    @property
    def before_1_0(self) -> bool:
        """Declares a draft version (0.93 to 0.97), whose rules are more lenient."""
        return self.version in SUPPORTED_VERSIONS and self.version != "1.0"

    def summary(self) -> dict:
        """Everything but the findings themselves (which may be millions: stream them)."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("findings", "tag_files")}
        d["valid"] = self.valid
        d["errors"] = self.findings.count["error"]
        d["warnings"] = self.findings.count["warning"]
        d["findings_by_code"] = dict(sorted(self.findings.by_code.items()))
        return d

    def to_dict(self) -> dict:
        return {**self.summary(), "findings": [f.to_dict() for f in self.findings]}


class _Collector:
    def __init__(self, report: ValidationReport):
        self.report = report

    def error(self, code: str, message: str, file: str | None = None, line: int | None = None):
        self.report.findings.add(Finding("error", code, message, file, line))

    def warning(self, code: str, message: str, file: str | None = None, line: int | None = None):
        self.report.findings.add(Finding("warning", code, message, file, line))


PAYLOAD, TAG, DIRECTORY = 0, 1, 2  # files.kind; lines.tag is PAYLOAD or TAG

# What the validator knows about the whole bag lives in a scratch database, not in memory:
# a bag of millions of files costs disk there, never memory (DESIGN principle 7).
_SCHEMA = """
CREATE TABLE files(path TEXT PRIMARY KEY, size INTEGER NOT NULL, kind INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE lines(path TEXT NOT NULL, manifest TEXT NOT NULL, line INTEGER NOT NULL,
                   tag INTEGER NOT NULL, algorithm TEXT NOT NULL, digest TEXT NOT NULL);
CREATE TABLE fetched(path TEXT PRIMARY KEY) WITHOUT ROWID;
"""


class _Tree:
    """What is on disk: every file and directory in the scratch table `files`; the tag
    files (a handful) in memory too, since most checks look at them by name."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.tags: dict[str, int] = {}
        self.payload_files = 0
        self.payload_bytes = 0

    def has(self, path: str, kind: int) -> bool:
        return self.db.execute("SELECT 1 FROM files WHERE path = ? AND kind = ?",
                               (path, kind)).fetchone() is not None


ProgressFn = Callable[[int, int], None]  # (files done, bytes done) increments


def validate_bag(
    path: str | os.PathLike,
    *,
    check_fixity: bool = True,
    workers: int = 1,
    progress: ProgressFn | None = None,
    on_totals: Callable[[int, int], None] | None = None,
    on_lines: Callable[[Iterator[tuple[str, str, str, int]]], None] | None = None,
) -> ValidationReport:
    """Validate the bag at `path`. Never raises for a bad bag: everything becomes a finding.

    `on_lines`, if given, is handed every usable manifest line once the lines are resolved:
    (path as on disk, algorithm, digest, TAG or PAYLOAD), in path order. Ingest takes a
    source bag's digests from here, so that it compares exactly what validation resolved
    (a name spelled in another Unicode form, './data/...') and reads each manifest once, in
    the bag's declared encoding."""
    root = Path(path)
    report = ValidationReport(bag=str(root))
    out = _Collector(report)
    if not root.is_dir():
        out.error("E001", "not a directory: a bag is a directory", str(root))
        return report

    encoding = report.encoding = _check_declaration(root, report, out)
    if not (root / "data").is_dir() or (root / "data").is_symlink():
        out.error("E020", "the payload directory data/ is missing", "data/")
    with scratch_database(_SCHEMA) as db:
        db.create_function("nfc", 1, nfc, deterministic=True)
        tree = _walk(root, db, out)
        report.payload_files, report.payload_bytes = tree.payload_files, tree.payload_bytes
        report.tag_files = sorted(tree.tags.items())
        if encoding is not None:
            _check_contents(root, tree, encoding, report, out, check_fixity, workers, progress,
                            on_totals, on_lines)
    return report


def _check_contents(root, tree, encoding, report, out, check_fixity, workers, progress,
                    on_totals, on_lines) -> None:
    db = tree.db
    manifests, tagmanifests = _find_manifests(root, tree, report, out)
    _check_fetch(root, tree, encoding, out)
    _check_bag_info(root, tree, encoding, report, out)
    for name, algorithm in manifests:
        _read_manifest(root, name, algorithm, encoding, db, out, tag=False, tags=tree.tags)
    for name, algorithm in tagmanifests:
        _read_manifest(root, name, algorithm, encoding, db, out, tag=True, tags=tree.tags)
    # Built once all lines are in (a sort, much faster than keeping it up to date), and
    # covering: every later query reads the lines in path order from it alone.
    db.execute("CREATE INDEX lines_by_path ON lines(path, manifest, line, tag, algorithm, "
               "digest)")
    _resolve_lines(db, out, report.before_1_0)
    if on_lines is not None:
        on_lines(db.execute("SELECT path, algorithm, digest, tag FROM lines ORDER BY path"))

    if manifests:
        _check_completeness(db, manifests, report, out)
    if tagmanifests:
        manifest_names = {n for n, _ in tagmanifests}
        for tag in sorted(tree.tags):
            listed = db.execute("SELECT 1 FROM lines WHERE path = ? AND tag = ? LIMIT 1",
                                (tag, TAG)).fetchone()
            if not listed and tag not in manifest_names:
                out.warning("W060", "tag file is not listed in any tag manifest, so its "
                            "integrity is unprotected", tag)
    elif manifests:
        out.warning("W062", "no tag manifest: the payload manifests and bag-info.txt are "
                    "unprotected; a damaged or replaced manifest would go unnoticed")
    tag_algorithms = {a for _, a in tagmanifests}
    for name, algorithm in manifests:
        if tagmanifests and algorithm not in tag_algorithms:
            out.warning("W061", f"payload manifest algorithm {algorithm} has no matching "
                        f"tagmanifest-{algorithm}.txt", name)

    if check_fixity:
        _check_fixity(root, db, report, out, workers, progress, on_totals)


def _open_tag_file(root: Path, name: str, out: _Collector) -> BinaryIO | None:
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


def _read_text(root: Path, name: str, encoding: str, out: _Collector) -> str | None:
    """A small tag file (bag-info.txt) whole."""
    raw = _open_tag_file(root, name, out)
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


def _check_declaration(root: Path, report: ValidationReport, out: _Collector) -> str | None:
    """bagit.txt: exactly two lines, version then encoding, UTF-8 without BOM (RFC 8493 §2.1.1)."""
    decl = root / "bagit.txt"
    if not decl.is_file() or decl.is_symlink():
        out.error("E010", "the bag declaration bagit.txt is missing", "bagit.txt")
        return None
    raw = decl.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        out.error("E011", "bagit.txt MUST NOT begin with a byte-order mark", "bagit.txt", 1)
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        out.error("E012", f"bagit.txt is not valid UTF-8 at byte {e.start}", "bagit.txt")
        return None
    lines = bagfmt.split_lines(text)
    if len(lines) != 2:
        out.error("E013", f"bagit.txt must have exactly two lines, found {len(lines)}", "bagit.txt")
    version_line = lines[0] if lines else ""
    m = re.fullmatch(r"BagIt-Version: ([0-9]+)\.([0-9]+)", version_line)
    if not m:
        out.error("E014", f"first line must be 'BagIt-Version: M.N', found {version_line[:60]!r}",
                  "bagit.txt", 1)
    else:
        report.version = f"{int(m.group(1))}.{m.group(2)}"
        if report.version not in SUPPORTED_VERSIONS:
            out.warning("W010", f"BagIt version {report.version} is not one preserve knows "
                        f"({', '.join(SUPPORTED_VERSIONS)}); validated by the 1.0 rules",
                        "bagit.txt", 1)
    enc_line = lines[1] if len(lines) > 1 else ""
    m = re.fullmatch(r"Tag-File-Character-Encoding: (\S+)", enc_line)
    if not m:
        out.error("E015", "second line must be 'Tag-File-Character-Encoding: ENCODING', "
                  f"found {enc_line[:60]!r}", "bagit.txt", 2)
        return "utf-8"
    encoding = m.group(1)
    try:
        codecs.lookup(encoding)
    except LookupError:
        out.error("E016", f"unknown tag file encoding {encoding!r}", "bagit.txt", 2)
        return None
    if codecs.lookup(encoding).name != "utf-8":
        out.warning("W016", f"tag files are declared as {encoding}; UTF-8 is recommended",
                    "bagit.txt", 2)
    return encoding


def _walk(root: Path, db: sqlite3.Connection, out: _Collector) -> _Tree:
    """Every regular file, classified as payload (under data/) or tag; links and specials
    reported. Rows stream into the scratch table as the walk goes. The walk keeps its own
    stack of folders (no depth of nesting exhausts the interpreter's recursion) and reads
    each folder as a stream, unsorted (a folder of a million files costs no memory)."""
    tree = _Tree(db)

    def rows():
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            try:
                children = os.scandir(os.path.join(root, rel_dir) if rel_dir else root)
            except OSError as e:
                out.error("E091", f"cannot read folder: {e.strerror}", rel_dir or ".")
                continue
            with children:
                for child in children:
                    rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
                    row = _classify(child, rel)
                    if row is not None:
                        if row[2] == DIRECTORY:
                            stack.append(rel)
                        yield row

    def _classify(child: os.DirEntry, rel: str) -> tuple[str, int, int] | None:
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            out.error("E033", "name is not valid UTF-8 and cannot appear in a manifest",
                      display(rel))
            return None
        try:
            st = child.stat(follow_symlinks=False)
        except OSError as e:
            out.error("E091", f"cannot stat: {e.strerror}", rel)
            return None
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(child.path)
            out.error("E030", f"symbolic link to {display(target)!r}; preserve never follows "
                      "links in a bag (the bytes could be anywhere)", rel)
        elif stat.S_ISDIR(st.st_mode):
            return rel, 0, DIRECTORY
        elif stat.S_ISREG(st.st_mode):
            if rel.startswith("data/"):
                tree.payload_files += 1
                tree.payload_bytes += st.st_size
                return rel, st.st_size, PAYLOAD
            tree.tags[rel] = st.st_size
            return rel, st.st_size, TAG
        else:
            out.error("E032", "not a regular file (device, FIFO or socket)", rel)
        return None

    db.executemany("INSERT INTO files VALUES (?, ?, ?)", rows())
    return tree


def _find_manifests(root: Path, tree: _Tree, report: ValidationReport, out: _Collector):
    manifests: list[tuple[str, str]] = []
    tagmanifests: list[tuple[str, str]] = []
    for name in sorted(tree.tags):
        if "/" in name:
            continue
        m = bagfmt.MANIFEST_RE.match(name)
        if not m:
            continue
        algorithm = m.group(2)
        if algorithm != algorithm.lower():
            out.warning("W042", "algorithm names in manifest file names should be lowercase", name)
            algorithm = algorithm.lower()
        if not is_supported(algorithm) or algorithm == "xxh3_128":
            out.warning("W040", f"unknown algorithm {algorithm!r}: this manifest cannot be "
                        "verified", name)
            continue
        (tagmanifests if m.group(1) else manifests).append((name, algorithm))
    if not manifests:
        out.error("E040", "no payload manifest (manifest-<algorithm>.txt) found")
    report.algorithms = sorted({a for _, a in manifests})
    if report.version == "1.0":
        for name, algorithm in manifests + tagmanifests:
            if algorithm in ("md5", "sha1"):
                out.warning("W041", f"{algorithm} is weak; RFC 8493 recommends sha256 or sha512",
                            name)
    return manifests, tagmanifests


def _check_fetch(root: Path, tree: _Tree, encoding: str, out: _Collector) -> None:
    """fetch.txt is parsed and checked, never acted on: preserve never fetches. The paths
    it names go into the scratch table `fetched`."""
    if "fetch.txt" not in tree.tags:
        return

    def listed():
        for number, line in _stream_lines(root, "fetch.txt", encoding, out):
            parts = line.split(None, 2)
            if len(parts) != 3 or not (parts[1] == "-" or parts[1].isdigit()):
                out.error("E080", "fetch.txt line must be 'URL LENGTH FILEPATH'", "fetch.txt",
                          number)
                continue
            path = decode_manifest_path(parts[2])
            try:
                check_relative(path)
            except UnsafePath as e:
                out.error("E081", f"unsafe path {display(path)!r} ({e}); never used",
                          "fetch.txt", number)
                continue
            if not path.startswith("data/"):
                out.error("E081", "fetch.txt may only name payload files (data/…)", "fetch.txt",
                          number)
                continue
            if not tree.has(path, PAYLOAD):
                out.error("E082", f"{display(path)!r} has not been fetched: the bag is "
                          "incomplete (preserve never fetches remote content)", "fetch.txt",
                          number)
            yield (path,)

    tree.db.executemany("INSERT OR IGNORE INTO fetched VALUES (?)", listed())


def _check_bag_info(root: Path, tree: _Tree, encoding: str, report: ValidationReport,
                    out: _Collector) -> None:
    if "bag-info.txt" not in tree.tags:
        return
    text = _read_text(root, "bag-info.txt", encoding, out)
    if text is None:
        return
    items, problems = bagfmt.parse_bag_info(text)
    for number, message, kind in problems:
        if kind == "blank":
            out.warning("W070", f"{message}: ignored (bag-info.txt has no blank lines, but the "
                        "meaning is clear)", "bag-info.txt", number)
        elif kind == "spaced-label" and report.before_1_0:
            out.warning("W076", f"{message}: tolerated in BagIt {report.version}, an error "
                        "from 1.0 on", "bag-info.txt", number)
        else:
            out.error("E070", message, "bag-info.txt", number)
    seen: dict[str, int] = {}
    for item in items:
        lower = item.label.lower()
        for reserved in bagfmt.NON_REPEATABLE:
            if lower == reserved.lower() and lower in seen:
                out.warning("W071", f"{reserved} should appear only once (first on line "
                            f"{seen[lower]})", "bag-info.txt", item.line)
        seen.setdefault(lower, item.line)
        if lower == "payload-oxum":
            m = re.fullmatch(r"([0-9]+)\.([0-9]+)", item.value)
            if not m:
                out.error("E072", f"Payload-Oxum must be OCTETS.FILES, found {item.value!r}",
                          "bag-info.txt", item.line)
            elif (int(m.group(1)), int(m.group(2))) != (report.payload_bytes, report.payload_files):
                out.error("E073", f"Payload-Oxum says {item.value} but data/ holds "
                          f"{report.payload_bytes}.{report.payload_files} (bytes.files)",
                          "bag-info.txt", item.line)
        elif lower == "bagging-date" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", item.value):
            out.warning("W074", f"Bagging-Date should be YYYY-MM-DD, found {item.value!r}",
                        "bag-info.txt", item.line)


def _stream_lines(root: Path, name: str, encoding: str,
                  out: _Collector) -> Iterator[tuple[int, str]]:
    """(line number, text) of a tag file, read as a stream (a manifest of millions of files
    is never held whole). CR, LF and CRLF all end a line, as in bagfmt.split_lines.

    In an encoding that spells line ends as ASCII does (UTF-8, ISO-8859-1, ...) each line
    is decoded on its own: a line that does not decode is reported at its own number and
    the lines after it are still read. UTF-16 and UTF-32 are decoded as a stream."""
    raw = _open_tag_file(root, name, out)
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


def _read_manifest(root, name, algorithm, encoding, db, out, *, tag: bool,
                   tags: dict[str, int]) -> None:
    """Check each line on its own as it streams by; what needs the whole bag (repeats,
    missing files, completeness) is asked of the scratch tables afterwards."""
    want_len = DIGEST_HEX_LENGTH.get(algorithm)
    kind = TAG if tag else PAYLOAD

    def rows():
        for number, line in _stream_lines(root, name, encoding, out):
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
                        out: _Collector) -> str:
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


_UNMATCHED = ("NOT EXISTS (SELECT 1 FROM files WHERE files.path = lines.path "
              "AND files.kind = lines.tag)")
BIG_FILE = 4 << 20  # hashed first, biggest first, so that the workers finish together


def _resolve_lines(db: sqlite3.Connection, out: _Collector, before_1_0: bool) -> None:
    """Make each manifest line name the file on disk it vouches for: report (and drop)
    repeats and directories; report files spelled in another Unicode form (and point the
    line at the file on disk) and missing files. Each query is one pass in path order."""
    repeats = db.execute("SELECT path, manifest FROM lines GROUP BY path, manifest "
                         "HAVING count(*) > 1").fetchall()
    for path, manifest in repeats:
        first, *later = db.execute("SELECT line, digest FROM lines WHERE path = ? AND "
                                   "manifest = ? ORDER BY line", (path, manifest)).fetchall()
        for line, digest in later:
            if digest != first[1]:
                out.error("E045", f"{display(path)!r} is listed again with another digest "
                          f"(first on line {first[0]})", manifest, line)
            elif before_1_0:
                out.warning("W045", f"{display(path)!r} is listed again with the same digest "
                            f"(first on line {first[0]}); an error from BagIt 1.0 on",
                            manifest, line)
            else:
                out.error("E045", f"{display(path)!r} is listed more than once (first on "
                          f"line {first[0]})", manifest, line)
            db.execute("DELETE FROM lines WHERE path = ? AND manifest = ? AND line = ?",
                       (path, manifest, line))
    directories = db.execute(
        "SELECT l.manifest, l.path, l.line FROM lines AS l JOIN files AS f "
        f"ON f.path = l.path WHERE f.kind = {DIRECTORY}").fetchall()
    for manifest, path, line in directories:
        out.error("E046", f"{display(path)!r} is a directory; manifests list files only",
                  manifest, line)
        db.execute("DELETE FROM lines WHERE path = ? AND manifest = ? AND line = ?",
                   (path, manifest, line))
    db.execute("CREATE TABLE unmatched AS SELECT path, manifest, line, tag FROM lines "
               f"WHERE {_UNMATCHED}")
    if db.execute("SELECT 1 FROM unmatched LIMIT 1").fetchone() is None:
        return
    db.execute("CREATE TABLE by_nfc AS SELECT nfc(path) AS key, kind, max(path) AS path "
               f"FROM files WHERE kind != {DIRECTORY} GROUP BY key, kind")
    db.execute("CREATE INDEX by_nfc_key ON by_nfc(key, kind)")
    for path, manifest, line, alternative, fetched in db.execute(
            "SELECT u.path, u.manifest, u.line, n.path, "
            "EXISTS (SELECT 1 FROM fetched WHERE fetched.path = u.path) FROM unmatched AS u "
            "LEFT JOIN by_nfc AS n ON n.key = nfc(u.path) AND n.kind = u.tag"):
        if alternative is not None:
            out.warning("W051", f"manifest names {display(path)!r} but the file on disk is "
                        "spelled in another Unicode normalisation form", manifest, line)
            db.execute("UPDATE lines SET path = ? WHERE path = ? AND manifest = ? AND line = ?",
                       (alternative, path, manifest, line))
        elif not fetched:  # a file not fetched was reported with fetch.txt
            out.error("E047", f"{display(path)!r} is listed but missing", manifest, line)


def _check_completeness(db: sqlite3.Connection, manifests: list[tuple[str, str]],
                        report: ValidationReport, out: _Collector) -> None:
    """Every payload file in every payload manifest: one pass over the files in path order,
    which returns only the files some manifest leaves out."""
    names = [name for name, _ in manifests]
    for path, listed_in in db.execute(
            "SELECT f.path, group_concat(DISTINCT l.manifest) FROM files AS f "
            f"LEFT JOIN lines AS l ON l.path = f.path AND l.tag = {PAYLOAD} "
            f"WHERE f.kind = {PAYLOAD} GROUP BY f.path "
            "HAVING count(DISTINCT l.manifest) < ?", (len(names),)):
        if listed_in is None:
            out.error("E050", "payload file is not listed in any payload manifest", path)
            continue
        present = set(listed_in.split(","))
        for name in names:
            if name in present:
                continue
            if report.version == "0.97":
                out.warning("W050", f"payload file is not listed in {name}", path)
            else:
                out.error("E050", f"payload file is not listed in {name} (every payload "
                          "manifest must list every payload file)", path)


def _check_fixity(root, db, report, out, workers, progress, on_totals) -> None:
    """Hash every listed file once, whatever the number of manifests naming it: jobs stream
    from the scratch tables (big files first, biggest first), each carrying the digests its
    file must match."""
    listed = "EXISTS (SELECT 1 FROM lines WHERE lines.path = f.path)"
    files, total = db.execute(f"SELECT count(*), coalesce(sum(size), 0) FROM files AS f "
                              f"WHERE kind != {DIRECTORY} AND {listed}").fetchone()
    if on_totals:
        on_totals(files, total)
    select = ("SELECT f.path, f.size, l.algorithm, l.digest, l.manifest, l.line "
              f"FROM files AS f CROSS JOIN lines AS l ON l.path = f.path WHERE f.kind != "
              f"{DIRECTORY} AND f.size")
    big = db.execute(f"{select} >= ? ORDER BY f.size DESC, f.path", (BIG_FILE,))
    small = db.cursor().execute(f"{select} < ?", (BIG_FILE,))  # in path order: no sort

    def jobs():
        for rows in (big, small):
            for (rel, size), group in groupby(rows, key=lambda r: (r[0], r[1])):
                expected = [r[2:] for r in group]
                yield (rel, size, expected), os.path.join(root, rel), tuple(sorted(
                    {algorithm for algorithm, *_ in expected}))

    batches = batched(jobs(), 256, 32 << 20, size=lambda job: job[0][1])
    use = workers if files > 64 or total > (64 << 20) else 1
    for results in run_batches(hash_batch, batches, workers=use):
        for (rel, _, expected), size, digests, error in results:
            report.files_hashed += 1
            report.bytes_hashed += size
            if progress:
                progress(1, size)
            if error:
                out.error("E091", f"cannot read: {error}", rel)
                continue
            for algorithm, digest, manifest, line in expected:
                if digests[algorithm] != digest:
                    out.error("E090", f"{algorithm} mismatch for {display(rel)!r}: manifest "
                              f"says {digest}, the file has {digests[algorithm]}",
                              manifest, line)
