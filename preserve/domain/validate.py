"""Strict RFC 8493 validation of any bag (BagIt 0.97 and 1.0), ours or another system's.

Every finding has a stable code (E… for a violated MUST, which makes the bag
invalid; W… for a violated SHOULD or a risk) and names the file and, where
there is one, the line. Paths from manifests and fetch.txt are checked
before use: one that could leave the bag is an error and is never opened.
Symbolic links are never followed.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preserve.domain import bag as bagfmt
from preserve.domain.fixity import DIGEST_HEX_LENGTH, hash_batch, is_supported
from preserve.domain.names import UnsafePath, check_relative, decode_manifest_path, display
from preserve.parallel import batched, run_batches

SUPPORTED_VERSIONS = ("0.97", "1.0")


@dataclass
class Finding:
    severity: str  # "error" or "warning"
    code: str
    message: str
    file: str | None = None
    line: int | None = None

    def location(self) -> str:
        if self.file is None:
            return ""
        return f"{display(self.file)}:{self.line}" if self.line else display(self.file)


@dataclass
class ValidationReport:
    bag: str
    version: str | None = None
    findings: list[Finding] = field(default_factory=list)
    payload_files: int = 0
    payload_bytes: int = 0
    files_hashed: int = 0
    bytes_hashed: int = 0
    algorithms: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        d = asdict(self)
        d["valid"] = self.valid
        return d


class _Collector:
    def __init__(self, report: ValidationReport):
        self.report = report

    def error(self, code: str, message: str, file: str | None = None, line: int | None = None):
        self.report.findings.append(Finding("error", code, message, file, line))

    def warning(self, code: str, message: str, file: str | None = None, line: int | None = None):
        self.report.findings.append(Finding("warning", code, message, file, line))


@dataclass
class _Tree:
    payload: dict[str, int] = field(default_factory=dict)  # path -> size
    tags: dict[str, int] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)


ProgressFn = Callable[[int, int], None]  # (files done, bytes done) increments


def validate_bag(
    path: str | os.PathLike,
    *,
    check_fixity: bool = True,
    workers: int = 1,
    progress: ProgressFn | None = None,
    on_totals: Callable[[int, int], None] | None = None,
) -> ValidationReport:
    """Validate the bag at `path`. Never raises for a bad bag: everything becomes a finding."""
    root = Path(path)
    report = ValidationReport(bag=str(root))
    out = _Collector(report)
    if not root.is_dir():
        out.error("E001", "not a directory: a bag is a directory", str(root))
        return report

    encoding = _check_declaration(root, report, out)
    if not (root / "data").is_dir() or (root / "data").is_symlink():
        out.error("E020", "the payload directory data/ is missing", "data/")
    tree = _walk(root, out)
    report.payload_files = len(tree.payload)
    report.payload_bytes = sum(tree.payload.values())
    if encoding is None:
        return report

    manifests, tagmanifests = _find_manifests(root, tree, report, out)
    fetched = _check_fetch(root, tree, encoding, out)
    _check_bag_info(root, tree, encoding, report, out)

    # Which digests to compute for which file: (path -> {algorithm: (expected, manifest, line)}).
    expected: dict[str, dict[str, list[tuple[str, str, int]]]] = defaultdict(lambda: defaultdict(list))
    payload_listed: dict[str, set[str]] = {}
    for name, algorithm in manifests:
        listed = _read_manifest(root, name, algorithm, encoding, tree, fetched, expected, out,
                                tag=False)
        payload_listed[name] = listed
    tag_listed: set[str] = set()
    for name, algorithm in tagmanifests:
        tag_listed |= _read_manifest(root, name, algorithm, encoding, tree, fetched, expected, out,
                                     tag=True)

    _check_completeness(tree, payload_listed, report, out)
    if tagmanifests:
        manifest_names = {n for n, _ in tagmanifests}
        for tag in sorted(tree.tags):
            if tag not in tag_listed and tag not in manifest_names:
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
        _check_fixity(root, expected, report, out, workers, progress, on_totals)
    report.findings.sort(key=lambda f: (f.severity != "error", f.file or "", f.line or 0, f.code))
    return report


def _read_text(root: Path, name: str, encoding: str, out: _Collector) -> str | None:
    try:
        raw = (root / name).read_bytes()
    except OSError as e:
        out.error("E091", f"cannot read: {e.strerror}", name)
        return None
    if raw.startswith(codecs.BOM_UTF8):
        out.warning("W012", "starts with a byte-order mark; tag files should not", name)
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        out.error("E012", f"not valid {encoding} at byte {e.start}", name)
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
        report.version = f"{int(m.group(1))}.{int(m.group(2))}"
        if report.version == "0.97" or m.group(0).endswith("0.97"):
            report.version = "0.97"
        if report.version not in SUPPORTED_VERSIONS:
            out.warning("W010", f"BagIt version {report.version} is not one preserve knows "
                        "(0.97, 1.0); validated by the 1.0 rules", "bagit.txt", 1)
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


def _walk(root: Path, out: _Collector) -> _Tree:
    """Every regular file, classified as payload (under data/) or tag; links and specials reported."""
    tree = _Tree()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            rel = rel.replace(os.sep, "/")
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                out.error("E033", "name is not valid UTF-8 and cannot appear in a manifest",
                          display(rel))
                continue
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError as e:
                out.error("E091", f"cannot stat: {e.strerror}", rel)
                continue
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(os.path.join(dirpath, name))
                out.error("E030", f"symbolic link to {display(target)!r}; preserve never "
                          "follows links in a bag (the bytes could be anywhere)", rel)
                if name in dirnames:
                    dirnames.remove(name)
            elif stat.S_ISDIR(st.st_mode):
                tree.dirs.add(rel)
            elif stat.S_ISREG(st.st_mode):
                if rel.startswith("data/"):
                    tree.payload[rel] = st.st_size
                else:
                    tree.tags[rel] = st.st_size
            else:
                out.error("E032", "not a regular file (device, FIFO or socket)", rel)
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


def _check_fetch(root: Path, tree: _Tree, encoding: str, out: _Collector) -> set[str]:
    """fetch.txt is parsed and checked, never acted on: preserve never fetches."""
    if "fetch.txt" not in tree.tags:
        return set()
    text = _read_text(root, "fetch.txt", encoding, out)
    listed: set[str] = set()
    for number, line in enumerate(bagfmt.split_lines(text or ""), start=1):
        parts = line.split(None, 2)
        if len(parts) != 3 or not (parts[1] == "-" or parts[1].isdigit()):
            out.error("E080", "fetch.txt line must be 'URL LENGTH FILEPATH'", "fetch.txt", number)
            continue
        path = decode_manifest_path(parts[2])
        try:
            check_relative(path)
        except UnsafePath as e:
            out.error("E081", f"unsafe path {display(path)!r} ({e}); never used", "fetch.txt",
                      number)
            continue
        if not path.startswith("data/"):
            out.error("E081", "fetch.txt may only name payload files (data/…)", "fetch.txt", number)
            continue
        listed.add(path)
        if path not in tree.payload:
            out.error("E082", f"{display(path)!r} has not been fetched: the bag is incomplete "
                      "(preserve never fetches remote content)", "fetch.txt", number)
    return listed


def _check_bag_info(root: Path, tree: _Tree, encoding: str, report: ValidationReport,
                    out: _Collector) -> None:
    if "bag-info.txt" not in tree.tags:
        return
    text = _read_text(root, "bag-info.txt", encoding, out)
    if text is None:
        return
    items, errors = bagfmt.parse_bag_info(text)
    for number, message in errors:
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


def _read_manifest(root, name, algorithm, encoding, tree, fetched, expected, out, *, tag):
    text = _read_text(root, name, encoding, out)
    listed: set[str] = set()
    if text is None:
        return listed
    parsed = bagfmt.parse_manifest(text)
    for number, message in parsed.errors:
        out.error("E041", message, name, number)
    files = tree.tags if tag else tree.payload
    nfc_index: dict[str, str] | None = None
    want_len = DIGEST_HEX_LENGTH.get(algorithm)
    for entry in parsed.entries:
        path = entry.path
        try:
            check_relative(path)
        except UnsafePath as e:
            out.error("E042", f"unsafe path {display(path)!r} ({e}); never opened", name,
                      entry.line)
            continue
        if tag and path.startswith("data/"):
            out.error("E044", "a tag manifest must not list payload files", name, entry.line)
            continue
        if not tag and not path.startswith("data/"):
            out.error("E043", "a payload manifest may only list files under data/", name,
                      entry.line)
            continue
        if path in listed:
            out.error("E045", f"{display(path)!r} is listed more than once", name, entry.line)
            continue
        if want_len and len(entry.digest) != want_len:
            out.error("E048", f"a {algorithm} digest has {want_len} hex digits, this one "
                      f"{len(entry.digest)}", name, entry.line)
        if path in tree.dirs:
            out.error("E046", f"{display(path)!r} is a directory; manifests list files only",
                      name, entry.line)
            continue
        actual = path
        if path not in files:
            if nfc_index is None:
                nfc_index = {unicodedata.normalize("NFC", p): p for p in files}
            alt = nfc_index.get(unicodedata.normalize("NFC", path))
            if alt is not None:
                out.warning("W051", f"manifest names {display(path)!r} but the file on disk is "
                            "spelled in another Unicode normalisation form", name, entry.line)
                actual = alt
            elif path in fetched:
                listed.add(path)
                continue  # already reported as not fetched
            else:
                out.error("E047", f"{display(path)!r} is listed but missing", name, entry.line)
                listed.add(path)
                continue
        listed.add(actual)
        expected[actual][algorithm].append((entry.digest, name, entry.line))
    return listed


def _check_completeness(tree: _Tree, payload_listed: dict[str, set[str]],
                        report: ValidationReport, out: _Collector) -> None:
    if not payload_listed:
        return
    in_any = set().union(*payload_listed.values())
    for path in sorted(tree.payload):
        if path not in in_any:
            out.error("E050", "payload file is not listed in any payload manifest", path)
            continue
        for name, listed in payload_listed.items():
            if path not in listed:
                if report.version == "0.97":
                    out.warning("W050", f"payload file is not listed in {name}", path)
                else:
                    out.error("E050", f"payload file is not listed in {name} (every payload "
                              "manifest must list every payload file)", path)


def _check_fixity(root, expected, report, out, workers, progress, on_totals) -> None:
    jobs = [(p, os.path.join(root, p), tuple(sorted(algs))) for p, algs in expected.items()]
    sizes = {p: report_size(root, p) for p in expected}
    if on_totals:
        on_totals(len(jobs), sum(sizes.values()))
    # Biggest first so that two workers finish together; small files in large batches.
    jobs.sort(key=lambda j: -sizes[j[0]])
    batches = batched(jobs, 256, 32 << 20, size=lambda j: sizes[j[0]])
    use = workers if len(jobs) > 64 or sum(sizes.values()) > (64 << 20) else 1
    for results in run_batches(hash_batch, batches, workers=use):
        for rel, size, digests, error in results:
            report.files_hashed += 1
            report.bytes_hashed += size
            if progress:
                progress(1, size)
            if error:
                out.error("E091", f"cannot read: {error}", rel)
                continue
            for algorithm, entries in expected[rel].items():
                for digest, manifest, line in entries:
                    if digests[algorithm] != digest:
                        out.error("E090", f"{algorithm} mismatch for {display(rel)!r}: manifest "
                                  f"says {digest}, the file has {digests[algorithm]}",
                                  manifest, line)


def report_size(root, rel) -> int:
    try:
        return os.lstat(os.path.join(root, rel)).st_size
    except OSError:
        return 0
