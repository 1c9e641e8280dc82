"""Strict RFC 8493 validation of any bag (BagIt 0.97 and 1.0), ours or another system's.

Every finding has a stable code (E… for a violated MUST, which makes the bag
invalid; W… for a violated SHOULD or a risk) and names the file and, where
there is one, the line. Paths from manifests and fetch.txt are checked
before use: one that could leave the bag is an error and is never opened.
Symbolic links are never followed. What it reports is bag_findings.py; how it reads tag
files and manifests, bag_reading.py.
"""

from __future__ import annotations

import codecs
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterator
from itertools import groupby
from pathlib import Path

from preserve.domain import bag as bagfmt
from preserve.domain.bag import SUPPORTED_VERSIONS
from preserve.domain.fixity import hash_batch, is_supported
from preserve.domain.names import UnsafePath, check_relative, decode_manifest_path, display, nfc
from preserve.ingest.bag_findings import Collector, ValidationReport
from preserve.ingest.bag_reading import DIRECTORY, PAYLOAD, TAG, read_manifest, read_text, stream_lines
from preserve.parallel import batched, run_batches
from preserve.system.scratch import scratch_database

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
    out = Collector(report)
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
        read_manifest(root, name, algorithm, encoding, db, out, tag=False, tags=tree.tags)
    for name, algorithm in tagmanifests:
        read_manifest(root, name, algorithm, encoding, db, out, tag=True, tags=tree.tags)
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


def _check_declaration(root: Path, report: ValidationReport, out: Collector) -> str | None:
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


def _walk(root: Path, db: sqlite3.Connection, out: Collector) -> _Tree:
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


def _find_manifests(root: Path, tree: _Tree, report: ValidationReport, out: Collector):
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


def _check_fetch(root: Path, tree: _Tree, encoding: str, out: Collector) -> None:
    """fetch.txt is parsed and checked, never acted on: preserve never fetches. The paths
    it names go into the scratch table `fetched`."""
    if "fetch.txt" not in tree.tags:
        return

    def listed():
        for number, line in stream_lines(root, "fetch.txt", encoding, out):
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
                    out: Collector) -> None:
    if "bag-info.txt" not in tree.tags:
        return
    text = read_text(root, "bag-info.txt", encoding, out)
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


_UNMATCHED = ("NOT EXISTS (SELECT 1 FROM files WHERE files.path = lines.path "
              "AND files.kind = lines.tag)")
BIG_FILE = 4 << 20  # hashed first, biggest first, so that the workers finish together


def _resolve_lines(db: sqlite3.Connection, out: Collector, before_1_0: bool) -> None:
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
                        report: ValidationReport, out: Collector) -> None:
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
