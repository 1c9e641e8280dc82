"""Property-based tests (hypothesis) of what issue 12 promises for any input: manifests and
bag-info of any content, archive members of any name. Whatever is generated:

- nothing outside the bag or archive is opened or written (a canary beside it keeps its
  access time; a folder beside it stays empty);
- what is stored is what the source holds: every stored payload file's digest equals the
  digest of the source's bytes under that name;
- the only outcomes are success or a PreserveError whose exit code is 1 or 2 (never an
  internal error, never 3 or 130).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from preserve.errors import PreserveError
from preserve.ingest.ingest import Metadata, ingest
from preserve.ingest.validation import validate_bag
from preserve.repository import Repository
from tests.conftest import stored_bag

SETTINGS = settings(max_examples=int(os.environ.get("PRESERVE_EXAMPLES", "40")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
PAYLOAD = {"a.txt": b"alpha\n", "sub/b c.txt": b"beta\n", "caf\u00e9.txt": b"gamma\n"}
OLD_ATIME = 946684800  # 2000-01-01: any read of the canary would move its access time on

path_parts = st.sampled_from(["data", "..", ".", "", "a.txt", "sub", "b c.txt", "canary",
                              "caf\u00e9.txt", "cafe\u0301.txt", "%2E%2E", "%0A", "*data",
                              "~", "C:", "\\..\\canary", "x\x00y", " ", "\u202e"])
manifest_paths = st.lists(path_parts, min_size=1, max_size=5).map("/".join) | st.text(max_size=30)
digests = st.sampled_from([hashlib.sha256(d).hexdigest() for d in PAYLOAD.values()]
                          + ["0" * 64, "zz", "", "A" * 64])
separators = st.sampled_from(["  ", " ", "\t", " *", "   "])
manifest_lines = st.tuples(digests, separators, manifest_paths).map("".join)
line_ends = st.sampled_from(["\n", "\r\n", "\r"])
bag_info_lines = st.text(max_size=40) | st.sampled_from(
    ["Source-Organization: X", " continued", "", "Payload-Oxum: 17.3", "Label : spaced",
     "no colon", "Bagging-Date: 2026-11-26"])


def _canary(outside: Path) -> Path:
    outside.mkdir()
    canary = outside / "canary"
    canary.write_bytes(b"secret\n")
    os.utime(canary, (OLD_ATIME, canary.stat().st_mtime))
    return canary


def _untouched(canary: Path) -> bool:
    return canary.stat().st_atime == OLD_ATIME and [p.name for p in canary.parent.iterdir()] \
        == ["canary"]


def _outcome(run):
    """Run an ingest; its result, or None when it was refused with exit code 1 or 2."""
    try:
        return run()
    except PreserveError as e:
        assert e.exit_code in (1, 2), (type(e).__name__, e.message)
        return None


def _stored_matches(repo: Repository, result, source_bytes: dict[str, bytes]) -> None:
    data = stored_bag(repo, result.aip_id) / "data"
    stored = {p.relative_to(data).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in data.rglob("*") if p.is_file()}
    assert stored == {k: hashlib.sha256(v).hexdigest() for k, v in source_bytes.items()}
    for path in data.rglob("*"):
        assert Path(os.path.realpath(path)).is_relative_to(os.path.realpath(data))


@SETTINGS
@given(st.lists(st.tuples(manifest_lines, line_ends).map("".join), max_size=8),
       st.lists(st.tuples(bag_info_lines, line_ends).map("".join), max_size=6),
       st.sampled_from(["1.0", "0.97", "0.93"]))
def test_any_manifest_and_bag_info(lines, info, version):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        canary = _canary(tmp / "outside")
        bag = tmp / "bag"
        for rel, content in PAYLOAD.items():
            (bag / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
            (bag / "data" / rel).write_bytes(content)
        (bag / "bagit.txt").write_text(f"BagIt-Version: {version}\n"
                                       "Tag-File-Character-Encoding: UTF-8\n")
        (bag / "manifest-sha256.txt").write_text("".join(lines), encoding="utf-8",
                                                 errors="surrogatepass", newline="")
        (bag / "bag-info.txt").write_text("".join(info), encoding="utf-8",
                                          errors="surrogatepass", newline="")
        report = validate_bag(bag)
        report.findings.close()
        repo, _ = Repository.init(tmp / "repo")
        try:
            result = _outcome(lambda: ingest(repo, bag, Metadata("p"), workers=1))
            if result is not None:
                assert report.valid
                _stored_matches(repo, result, PAYLOAD)
            as_folder = _outcome(lambda: ingest(repo, bag, Metadata("p"), workers=1,
                                                as_folder=True))
            assert as_folder is not None  # a readable folder always goes in as a folder
        finally:
            repo.close()
        assert _untouched(canary)


member_names = (st.lists(path_parts, min_size=1, max_size=4).map("/".join)
                | st.text(min_size=1, max_size=20))
members = st.lists(st.tuples(member_names, st.binary(max_size=64)), min_size=1, max_size=6)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@SETTINGS
@given(members, st.sampled_from(["zip", "tar", "tar.gz"]))
def test_any_archive_member_names(entries, kind):
    # folder members (a trailing '/') are tested elsewhere; here every member is a file
    assume(not any(name.split("\x00")[0].endswith("/") for name, _ in entries))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        canary = _canary(tmp / "outside")
        archive = tmp / f"in.{kind}"
        if kind == "zip":
            try:
                with zipfile.ZipFile(archive, "w") as z:
                    for name, data in entries:
                        z.writestr(name, data)
            except (IndexError, ValueError):  # zipfile cannot write a name like "\x00"
                assume(False)
        else:
            with tarfile.open(archive, "w:gz" if kind == "tar.gz" else "w") as t:
                for name, data in entries:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
        repo, _ = Repository.init(tmp / "repo")
        try:
            result = _outcome(lambda: ingest(repo, archive, Metadata("p"), workers=1))
            if result is not None:
                # every member name is used at most once (repeats are refused)
                expected = {}
                for name, data in entries:
                    rel = name.split("\x00")[0]  # readers stop at a NUL, as unzip does
                    if kind != "zip" and rel.startswith("./"):
                        rel = rel[2:]
                    expected[rel] = data
                _stored_matches(repo, result, {k: v for k, v in expected.items() if k})
        finally:
            repo.close()
        assert _untouched(canary)
