"""Shared fixtures: real repositories in temp folders, real bags, real files."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import struct
import zlib
from pathlib import Path

import bagit
import pytest

from preserve.domain import ocfl
from preserve.repository import Repository


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "storage_left_damaged: the test leaves stored objects damaged on purpose "
        "(the OCFL check after each test is skipped)")
    config.addinivalue_line(
        "markers", "sqlite_catalog: the test reads or writes the SQLite catalog file itself "
        "(not run when PRESERVE_TEST_CATALOG=postgresql)")
    config.addinivalue_line(
        "markers", "slow: kills, stalls and memory probes that take many seconds each "
        "(the kill harness above all); `pytest -m 'not slow'` is the fast set")


@pytest.fixture(autouse=True)
def every_stored_object_is_valid_ocfl(request, tmp_path):
    """After each test, every OCFL storage root the test made on disk, and every object in
    it, must validate with ocfl-py (issue 9: an independent check of everything stored),
    unless the test leaves damage on purpose (marked storage_left_damaged)."""
    yield
    if request.node.get_closest_marker("storage_left_damaged"):
        return
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.passed:
        return  # the test's own failure says what went wrong
    roots = [p.parent for p in tmp_path.glob("**/" + ocfl.ROOT_DECLARATION)]
    if roots:
        assert_ocfl_valid(*roots)
    assert_premis_valid(tmp_path)


PREMIS_XSD = Path(__file__).with_name("data") / "premis-v3-0.xsd"  # shared/schemas' copy


@functools.cache
def _premis_schema():
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(PREMIS_XSD)))


def _work_in_progress(rel: Path) -> bool:
    """A document in a staging area or a partial export: a killed run's debris (the next
    run removes it), never a record anyone reads."""
    return any(part in ("staging", "preserve-staging") or ".partial-" in part
               for part in rel.parts)


def assert_premis_valid(root: Path) -> None:
    """Every PREMIS document under `root` (each version's, each event record in an
    object's logs/, each exported bag's) is valid against the PREMIS 3.0 schema."""
    from lxml import etree

    schema = _premis_schema()
    for path in [*root.glob("**/metadata/premis*.xml"), *root.glob("**/logs/*.xml")]:
        if not path.is_file() or path.is_symlink() or _work_in_progress(path.relative_to(root)):
            continue
        document = etree.parse(str(path))
        assert schema.validate(document), f"{path}: not valid PREMIS 3.0: {schema.error_log}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A real PostgreSQL server for the whole run (Debian's packages; see pgserver.py)."""
    from tests.pgserver import PostgresServer

    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def fresh_database(postgres) -> str:
    """The URL of a new, empty PostgreSQL database (one per test)."""
    return postgres.new_database(f"t{next(_databases)}")


# PRESERVE_TEST_CATALOG=postgresql runs the whole suite with the `repo` fixture's catalog
# (and every `preserve init` of the tests) on PostgreSQL: a wider net than test_catalog.py,
# which runs on both databases in every run.
SUITE_ON_POSTGRES = os.environ.get("PRESERVE_TEST_CATALOG") == "postgresql"


@pytest.fixture(autouse=SUITE_ON_POSTGRES)
def _catalog_on_postgres(request, monkeypatch):
    if request.node.get_closest_marker("sqlite_catalog"):
        pytest.skip("about the SQLite catalog file")
    url = request.getfixturevalue("fresh_database")
    monkeypatch.setenv("PRESERVE_CATALOG", url)
    return url


@pytest.fixture
def repo(tmp_path) -> Repository:
    r, _ = Repository.init(tmp_path / "repo", os.environ.get("PRESERVE_CATALOG"))
    yield r
    r.close()


def two_disk_repo(tmp_path: Path, catalog: str | None = None) -> Repository:
    """A repository whose policy keeps two copies: "local" and a second disk, "disk2"."""
    import yaml

    repo, _ = Repository.init(tmp_path / "repo", catalog)
    (tmp_path / "disk2").mkdir()
    (repo.root / "locations" / "disk2.yaml").write_text(yaml.safe_dump(
        {"name": "disk2", "kind": "local", "path": str(tmp_path / "disk2")}))
    policy = repo.root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"] = {"copies": 2, "locations": ["local", "disk2"]}
    policy.write_text(yaml.safe_dump(data))
    repo.close()
    return Repository(repo.root)


def tree_fingerprint(root: Path) -> dict:
    """Every name, type, mode, mtime and content digest under root (links not followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            digest = None
            if os.path.isfile(p) and not os.path.islink(p):
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            elif os.path.islink(p):
                digest = "link:" + os.readlink(p)
            out[rel] = (st.st_mode, st.st_mtime_ns, st.st_size, digest)
    return out


def _rfc8493_decode(s: str) -> str:
    return re.sub(r"%(25|0[AaDd])",
                  lambda m: {"25": "%", "0a": "\n", "0d": "\r"}[m.group(1).lower()], s)


def assert_bagit_python_valid(path: Path) -> None:
    """bagit-python's full validation must pass.

    bagit-python 1.9 does not decode "%25" in manifest paths (RFC 8493 §2.1.3
    requires it), and its %0D/%0A decoding is case-sensitive because of a
    flags/count mix-up. For bags that name such files we validate with
    bagit-python's own logic and the RFC's decoding rule swapped in; every
    other check is bagit-python's.
    """
    original = bagit._decode_filename
    bagit._decode_filename = _rfc8493_decode
    try:
        bagit.Bag(str(path)).validate()
    finally:
        bagit._decode_filename = original


def many_small_files(root: Path, files: int) -> Path:
    """A folder of `files` small text files in 20 subfolders (for tests of scale)."""
    for i in range(files):
        folder = root / f"d{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.txt").write_text(f"file {i}\n")
    return root


def object_key(aip_id: str) -> str:
    """The AIP's OCFL object root in a location (see domain/ocfl.py)."""
    return ocfl.object_root(aip_id)


def content_key(aip_id: str, version: int = 1) -> str:
    """The content folder of a version of the AIP's object: for v1, the whole bag."""
    return f"{ocfl.version_key(ocfl.object_root(aip_id), version)}{ocfl.CONTENT}/"


def stored_bag(repo: Repository, aip_id: str) -> Path:
    """The bag of v1 as stored on the primary disk (v1's content/ folder holds it all)."""
    return repo.primary_location().root / content_key(aip_id)


def holds_no_aip(root: Path) -> bool:
    """A location root that is an OCFL storage root and holds nothing else: no object, no
    folder of one begun (what a refused or undone ingest must leave)."""
    names = {p.name for p in root.iterdir()}
    layout = {p.name for p in (root / "extensions").iterdir()} - {"preserve-staging"}
    staging = root / "extensions" / "preserve-staging"
    return names <= {ocfl.ROOT_DECLARATION, "ocfl_layout.json", "extensions"} and \
        layout == {ocfl.LAYOUT} and (not staging.exists() or not any(staging.iterdir()))


def assert_ocfl_valid(*roots: Path) -> None:
    """Every storage root given, and every object in it, validates with ocfl-py (the
    independent check the issue asks for); warnings allowed, errors named."""
    from ocfl.storage_root import StorageRoot

    for root in roots:
        storage_root = StorageRoot(root=str(root))
        valid = storage_root.validate(log_warnings=False)
        assert valid and storage_root.good_objects == storage_root.num_objects, \
            f"{root}: not a valid OCFL storage root: {storage_root.errors or storage_root.log}"


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    """A real, minimal RGB PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + bytes((x * 50 + y * 30) % 256 for x in range(width * 3))
                    for y in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def pdf_bytes() -> bytes:
    """A real one-page PDF 1.4 with correct cross-reference offsets."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1,
                                                                               xref)
    return out


@pytest.fixture
def collection(tmp_path) -> Path:
    """A small but awkward collection: formats, empty things, odd names, depth."""
    src = tmp_path / "collection"
    (src / "images").mkdir(parents=True)
    (src / "images" / "photo.png").write_bytes(png_bytes())
    (src / "docs").mkdir()
    (src / "docs" / "report.pdf").write_bytes(pdf_bytes())
    (src / "docs" / "notes.txt").write_text("Field notes, 1923.\n", encoding="utf-8")
    (src / "docs" / "table.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (src / "empty-file.dat").write_bytes(b"")
    (src / "empty-folder").mkdir()
    (src / "with space and 100% sure.txt").write_text("percent\n")
    (src / "caf\u00e9-nfc.txt").write_text("nfc\n")
    (src / "cafe\u0301-nfd.txt").write_text("nfd\n")
    (src / "line\nfeed\rreturn.txt").write_text("controls\n")
    deep = src / "deep"
    for i in range(12):
        deep = deep / f"level{i}"
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_text("deep\n")
    return src


def memory_probe(kind: str, root: Path) -> dict:
    """Run tests/memory_probe.py's `kind` in a fresh interpreter; its JSON result."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "tests.memory_probe", kind, str(root)],
                          capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def processes_of(repo_root: Path) -> list[int]:
    """Live processes whose environment names this repository (workers included)."""
    marker = f"PRESERVE_REPO={repo_root}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    with open(f"/proc/{entry}/stat", "rb") as s:
                        if s.read().split(b") ")[-1][:1] != b"Z":
                            found.append(int(entry))
        except OSError:
            continue
    return found


def copy_catalog(source, target) -> None:
    """Every row of every table of catalog `source` into catalog `target` (emptied first):
    the same catalog on another database, for catalog diff to compare."""
    from preserve.catalog.tables import metadata

    with target.transaction() as db:
        for table in reversed(metadata.sorted_tables):
            db.execute(f"DELETE FROM {table.name}")
        for table in metadata.sorted_tables:
            columns = [c.name for c in table.columns]
            rows = source.execute(f"SELECT {', '.join(columns)} FROM {table.name}")
            db.executemany(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
                           f"({', '.join('?' * len(columns))})", rows.fetchall())


def as_at_a_terminal() -> None:
    """preexec_fn of a command a test stops with Ctrl-C (SIGINT): Ctrl-C's default
    disposition, as at a terminal. A test run started in the background by a shell (`&`)
    inherits SIGINT ignored, and so would the command: the test would wait on a command
    that never hears it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
