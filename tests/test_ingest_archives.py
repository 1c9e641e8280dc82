"""Damaged and hostile archives: refused with a clear message and exit 1, never stored.

Red-team cases 30, 31, 33, 35, 40, 41, 42 and 43, each on an archive made in the test
(with Info-ZIP's zip and GNU tar where those are what archivists' archives come from).
"""

from __future__ import annotations

import bz2
import io
import random
import shutil
import struct
import subprocess
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from preserve.errors import SourceRefused
from preserve.ingest.ingest import Metadata, ingest
from tests.conftest import stored_bag
from tests.test_cli import run


def _ingest(repo, src, **kw):
    return ingest(repo, src, Metadata("archives"), **kw)


def _nothing_kept(repo) -> bool:
    return repo.catalog.list_aips() == [] and not any(repo.staging.iterdir())


@pytest.fixture
def random_tree(tmp_path) -> Path:
    rng = random.Random(7)
    src = tmp_path / "tsrc"
    src.mkdir()
    for i in range(50):
        (src / f"f{i}.bin").write_bytes(rng.randbytes(20_000))
    return src


def test_a_tar_gz_with_corrupt_deflate_data_is_refused(repo, tmp_path, random_tree):
    """Case 40: tarfile stopped at the end-of-archive blocks, gzip's CRC was never read, and
    one stored file differed from the original."""
    good = tmp_path / "good.tar.gz"
    subprocess.run(["tar", "-C", str(tmp_path), "-czf", str(good), "tsrc"], check=True)
    data = bytearray(good.read_bytes())
    data[len(data) // 2:len(data) // 2 + 4] = b"\0\0\0\0"
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(bytes(data))
    assert subprocess.run(["gzip", "-t", str(corrupt)], capture_output=True).returncode != 0
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, corrupt)
    assert str(corrupt) in refused.value.message
    assert _nothing_kept(repo)
    assert _ingest(repo, good).files == 50  # the intact archive still goes in


@pytest.mark.parametrize("cut", ["half", "trailer", "first block", "three bytes"])
def test_a_truncated_tar_gz_exits_1_never_130(repo, tmp_path, random_tree, cut):
    """Case 39/41: a truncated .gz raised EOFError, which click turned into 'interrupted'
    (exit 130); one missing only its 8-byte trailer went in unchecked."""
    good = tmp_path / "good.tar.gz"
    subprocess.run(["tar", "-C", str(tmp_path), "-czf", str(good), "tsrc"], check=True)
    data = good.read_bytes()
    truncated = tmp_path / "cut.tar.gz"
    # issue 22: cut within its first tar block (60 bytes, or a 3-byte file) it was an
    # internal error (EOFError) when its kind was sniffed
    truncated.write_bytes({"half": data[:len(data) // 2], "trailer": data[:-8],
                           "first block": data[:60], "three bytes": data[:3]}[cut])
    result = run(repo.root, "ingest", truncated, "-c", "x", check_code=1)
    assert "truncated" in result.stderr or "ended" in result.stderr
    assert "internal error" not in result.stderr and "nterrupted" not in result.stderr


def test_zip_members_with_a_bad_crc_or_disagreeing_names_exit_1(repo, tmp_path):
    """Case 35: BadZipFile escaped as an internal error (exit 3)."""
    bad_crc = tmp_path / "badcrc.zip"
    with zipfile.ZipFile(bad_crc, "w") as z:
        z.writestr("ok.txt", b"ok")
        z.writestr("data.bin", b"A" * 1000)
    data = bytearray(bad_crc.read_bytes())
    data[data.find(b"A" * 1000) + 500] = ord("B")
    bad_crc.write_bytes(bytes(data))

    names = tmp_path / "names.zip"
    with zipfile.ZipFile(names, "w") as z:
        z.writestr("k0000", b"one")
        z.writestr("k0001", b"two")
    data = bytearray(names.read_bytes())
    first_local = data.find(b"k0001")  # the local header's name; the directory keeps its own
    data[first_local:first_local + 5] = b"k0000"
    names.write_bytes(bytes(data))

    for archive, words in ((bad_crc, "CRC"), (names, "differ")):
        result = run(repo.root, "ingest", archive, "-c", "x", check_code=1)
        assert words in result.stderr and "internal error" not in result.stderr
        assert "damaged" in result.stderr
    assert _nothing_kept(repo)


def _tar_with(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_file_and_a_folder_of_the_same_name_are_refused_by_name(repo, tmp_path, kind):
    """Cases 30, 31: 'a' and 'a/b' in one archive: a misleading message, or FileExistsError
    as an internal error."""
    if kind == "zip":
        archive = tmp_path / "fd.zip"
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("a", b"1")
            z.writestr("a/b", b"2")
    else:
        archive = _tar_with(tmp_path / "fd.tar", [("a", b"1"), ("a/b", b"2")])
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, archive)
    assert any("'a' is both a file and a folder" in item for item in refused.value.items)
    assert _nothing_kept(repo)


def _overlapping_zip(path: Path, members: int = 200) -> Path:
    """The red-team's construction: every member's deflate stream holds the next member's
    local header as a stored block, and all end in one shared kernel."""
    rng = random.Random(1)
    plain = rng.randbytes(1200) + b"\0" * (1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    kernel = c.compress(plain) + c.flush()
    names = [b"f%04d.bin" % i for i in range(members)]
    lengths = [30 + len(n) for n in names]
    comp, unc, crc, lfh = [0] * members, [0] * members, [0] * members, [b""] * members
    for i in range(members - 1, -1, -1):
        comp[i] = len(kernel) if i == members - 1 else 5 + lengths[i + 1] + comp[i + 1]
    suffix = plain
    for i in range(members - 1, -1, -1):
        if i < members - 1:
            suffix = lfh[i + 1] + suffix
        crc[i], unc[i] = zlib.crc32(suffix), len(suffix)
        lfh[i] = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc[i], comp[i],
                             unc[i], len(names[i]), 0) + names[i]
    out, offsets = bytearray(), []
    for i in range(members):
        offsets.append(len(out))
        out += lfh[i]
        if i < members - 1:
            length = lengths[i + 1]
            out += bytes([0]) + struct.pack("<HH", length, length ^ 0xFFFF)
    out += kernel
    directory = bytearray()
    for i in range(members):
        directory += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0,
                                 crc[i], comp[i], unc[i], len(names[i]), 0, 0, 0, 0,
                                 0o100644 << 16, offsets[i]) + names[i]
    start = len(out)
    out += directory + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, members, members,
                                   len(directory), start, 0)
    path.write_bytes(bytes(out))
    return path


def test_an_overlapping_member_zip_bomb_is_refused(repo, tmp_path):
    """Case 33: 22 KB expanded to 210 MB, each member under the per-member ratio."""
    bomb = _overlapping_zip(tmp_path / "overlap.zip")
    assert bomb.stat().st_size < 30_000
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, bomb)
    assert "overlap" in refused.value.message
    assert _nothing_kept(repo)


def _zeros_tar_bz2(path: Path, size: int) -> Path:
    """A .tar.bz2 of one member of `size` zero bytes (bzip2 packs zeros about 1:1,000,000)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        info = tarfile.TarInfo("zero.bin")
        info.size = size
        t.addfile(info, io.BytesIO(bytes(size)))
    path.write_bytes(bz2.compress(raw.getvalue(), 9))
    return path


def test_a_bzip2_tar_bomb_is_refused(repo, tmp_path):
    """Case 42: 893 bytes of .tar.bz2 went in as 1 GiB."""
    bomb = _zeros_tar_bz2(tmp_path / "bomb.tar.bz2", 256 << 20)
    assert bomb.stat().st_size < 10_000
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, bomb)
    assert "archive bomb" in refused.value.message and "archive_max_ratio" in refused.value.hint
    assert _nothing_kept(repo)


def test_a_sparse_tar_bomb_is_refused(repo, tmp_path):
    """Case 42: 10 KB of GNU sparse tar went in as 1 GiB."""
    sparse = tmp_path / "sp"
    sparse.mkdir()
    with open(sparse / "zero.bin", "wb") as f:
        f.truncate(1 << 30)
    bomb = tmp_path / "sparse.tar"
    subprocess.run(["tar", "-C", str(tmp_path), "--sparse", "-cf", str(bomb), "sp"], check=True)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, bomb)
    assert "archive bomb" in refused.value.message
    assert _nothing_kept(repo)


def test_the_expansion_cap_is_the_policy_s(repo, tmp_path):
    archive = _zeros_tar_bz2(tmp_path / "zeros.tar.bz2", 4 << 20)
    with pytest.raises(SourceRefused):
        _ingest(repo, archive)
    from dataclasses import replace
    lenient = replace(repo.policy.ingest, archive_max_ratio=10_000_000)
    assert _ingest(repo, archive, policy=lenient).bytes == 4 << 20


@pytest.mark.skipif(shutil.which("zip") is None, reason="Info-ZIP's zip is installed by setup")
def test_info_zip_names_are_kept(repo, tmp_path):
    """Case 43: Info-ZIP leaves flag bit 11 unset and puts the UTF-8 name in a Unicode Path
    extra field; the names were stored as cp437 mojibake ('caf├⌐.txt')."""
    src = tmp_path / "z"
    src.mkdir()
    (src / "caf\u00e9.txt").write_text("hello\n")
    (src / "\u65e5\u672c.txt").write_text("x\n")
    archive = tmp_path / "infozip.zip"
    subprocess.run(["zip", "-q", str(archive), "caf\u00e9.txt", "\u65e5\u672c.txt"], cwd=src,
                   check=True)
    assert not any(i.flag_bits & 0x800 for i in zipfile.ZipFile(archive).infolist())
    result = _ingest(repo, archive)
    data = stored_bag(repo, result.aip_id) / "data"
    assert sorted(p.name for p in data.iterdir()) == sorted(["caf\u00e9.txt", "\u65e5\u672c.txt"])


def test_zip_names_of_no_declared_encoding_are_kept_and_noted(repo, tmp_path):
    """Without the flag or the extra field: UTF-8 bytes read as UTF-8, others as cp437
    (the zip format's default), each noted in the ingestion event with the raw bytes."""
    raw_names = {b"utf8-XX.txt": "utf8-\u00e9.txt".encode(),
                 b"latin-X.txt": "latin-\u00e9.txt".encode("latin-1")}
    archive = tmp_path / "raw.zip"
    with zipfile.ZipFile(archive, "w") as z:  # ASCII names: bit 11 stays unset
        for placeholder in raw_names:
            z.writestr(placeholder.decode(), b"1")
    data = archive.read_bytes()
    for placeholder, raw in raw_names.items():
        assert len(placeholder) == len(raw)
        data = data.replace(placeholder, raw)  # another producer's raw name bytes
    archive.write_bytes(data)
    result = _ingest(repo, archive)
    names = sorted(p.name for p in (stored_bag(repo, result.aip_id) / "data").iterdir())
    assert names == ["latin-\u0398.txt", "utf8-\u00e9.txt"]  # 0xE9 is theta in cp437
    ingestion = next(e for e in repo.catalog.events(result.aip_id) if e.type == "ingestion")
    assert ingestion.outcome_detail.count("declare no encoding") == 2
    assert "IBM code page 437" in ingestion.outcome_detail
    assert sum("declare no encoding" in w for w in result.warnings) == 2


def test_a_member_giving_more_than_it_declares_is_stopped_before_writing(tmp_path):
    """The per-member cap as bytes arrive (zipfile and tarfile already stop at the declared
    size; this guard does not depend on them)."""
    from preserve.pipeline.copying import Overflow, copy_one

    dest = tmp_path / "out.bin"
    with pytest.raises(Overflow):
        copy_one(io.BytesIO(b"x" * (3 << 20)), str(dest), ("sha256",), limit=1 << 20)
    assert dest.stat().st_size <= 1 << 20
    assert copy_one(io.BytesIO(b"y" * 10), str(tmp_path / "ok"), ("sha256",), limit=10)[0] == 10
