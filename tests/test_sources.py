"""Ingest of existing bags, zip and tar files: validated, checked, extracted safely."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import zipfile

import bagit
import pytest

from preserve.errors import BagInvalid, FixityMismatch, SourceRefused
from preserve.ingest.ingest import Metadata, ingest
from tests.conftest import assert_bagit_python_valid, holds_no_aip, png_bytes, stored_bag, tree_fingerprint


def _ingest(repo, src, **kw):
    return ingest(repo, src, Metadata("sources"), **kw)


@pytest.fixture
def source_bag(tmp_path):
    """A bag made by bagit-python (BagIt 0.97, md5 + sha256), with bag-info fields."""
    bag_dir = tmp_path / "bag"
    (bag_dir / "sub").mkdir(parents=True)
    (bag_dir / "sub" / "image.png").write_bytes(png_bytes())
    (bag_dir / "readme.txt").write_text("hello\n")
    bagit.make_bag(str(bag_dir), {"Source-Organization": "Town Archive",
                                  "External-Description": "Letters, 1900-1950"},
                   checksums=["md5", "sha256"])
    return bag_dir


def test_existing_bag_is_validated_and_its_bag_info_carried_over(repo, source_bag):
    before = tree_fingerprint(source_bag)
    result = _ingest(repo, source_bag)
    assert tree_fingerprint(source_bag) == before
    assert result.source_kind == "bag" and result.files == 2
    bag = stored_bag(repo, result.aip_id)
    assert_bagit_python_valid(bag)
    info = (bag / "bag-info.txt").read_text()
    assert "Source-Organization: Town Archive" in info
    assert "External-Description: Letters, 1900-1950" in info
    assert "Source-Bagging-Date: " in info and "Bagging-Date: " in info
    assert (bag / "data" / "sub" / "image.png").read_bytes() == png_bytes()
    events = repo.catalog.events(result.aip_id)
    assert any(e.type == "validation" and "md5, sha256" in e.detail for e in events)


def test_bag_whose_bytes_do_not_match_its_manifest_is_refused_with_nothing_written(
        repo, source_bag):
    target = source_bag / "data" / "readme.txt"
    target.write_text("HELLO\n")  # same size, different bytes: only hashing can tell
    with pytest.raises(FixityMismatch) as failed:
        _ingest(repo, source_bag)
    assert "data/readme.txt" not in failed.value.message  # payload-relative name
    assert "readme.txt" in failed.value.message and "md5" in failed.value.message
    assert repo.catalog.list_aips() == [] and repo.catalog.pending() == []
    assert list(repo.staging.iterdir()) == []
    assert holds_no_aip(repo.primary_location().root)


def test_structurally_invalid_bag_is_refused_before_reading_payload(repo, source_bag):
    (source_bag / "data" / "stray.txt").write_text("not in any manifest")
    with pytest.raises(BagInvalid) as refused:
        _ingest(repo, source_bag)
    assert any(f.code == "E050" and f.file == "data/stray.txt" for f in refused.value.findings)


def _zip(path, members: dict[str, bytes], symlinks: dict[str, str] | None = None,
         compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def test_zip_is_ingested_with_empty_folders_and_unicode_names(repo, tmp_path):
    archive = _zip(tmp_path / "c.zip", {"a/photo.png": png_bytes(), "a/é.txt": b"x",
                                        "empty/": b"", "top.txt": b"top"})
    before = (archive.stat().st_mtime_ns, archive.read_bytes())
    result = _ingest(repo, archive)
    assert (archive.stat().st_mtime_ns, archive.read_bytes()) == before
    assert result.source_kind == "zip" and result.files == 3 and result.empty_dirs == 1
    bag = stored_bag(repo, result.aip_id)
    assert "data/empty\n" in (bag / "metadata" / "empty-directories.txt").read_text()
    assert (bag / "data" / "a" / "é.txt").read_bytes() == b"x"
    assert_bagit_python_valid(bag)


@pytest.mark.parametrize("evil", ["../escape.txt", "/abs/path.txt", "a/../../b.txt"])
def test_zip_with_members_leaving_the_staging_area_is_refused(repo, tmp_path, evil):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", b"ok")
        info = zipfile.ZipInfo("placeholder")
        info.filename = evil  # bypass zipfile's own name sanitising, as a hostile tool would
        zf.writestr(info, b"evil")
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, archive)
    assert any("zip member" in i for i in refused.value.items)
    assert not (tmp_path / "escape.txt").exists()
    assert holds_no_aip(repo.primary_location().root)


def test_zip_symlink_members_are_refused(repo, tmp_path):
    archive = _zip(tmp_path / "l.zip", {"a.txt": b"a"}, symlinks={"link": "/etc/passwd"})
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, archive)
    assert any("symbolic link" in i for i in refused.value.items)


def test_zip_bomb_member_is_refused(repo, tmp_path):
    archive = _zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * (20 << 20)},
                   compression=zipfile.ZIP_BZIP2)  # bzip2 squeezes zeros far past 1000:1
    with pytest.raises(SourceRefused, match="cannot be ingested") as refused:
        _ingest(repo, archive)
    assert any("zip bomb" in i for i in refused.value.items)


def _tar(path, mode="w:gz", add=None):
    with tarfile.open(path, mode) as tf:
        for name, data in {"dir/a.txt": b"alpha", "dir/sub/photo.png": png_bytes(),
                           "b c%.txt": b"beta"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        empty = tarfile.TarInfo("nothing-here")
        empty.type = tarfile.DIRTYPE
        tf.addfile(empty)
        if add:
            add(tf)
    return path


def test_a_large_tar_is_identified_by_the_siegfried_process(repo, tmp_path):
    """Past 50 files, tar members copied in archive order here go to the one siegfried
    process like the copies of folder sources."""
    def more(tf):
        for i in range(60):
            data = f"note {i}\n".encode()
            info = tarfile.TarInfo(f"notes/n{i:02}.txt")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

    result = _ingest(repo, _tar(tmp_path / "big.tar", "w", more))
    assert result.files == 63
    files = {f.path: f for f in repo.catalog.files(result.aip_id, 1)}
    assert files["data/dir/sub/photo.png"].puid == "fmt/11"
    assert files["data/notes/n42.txt"].puid == "x-fmt/111"  # plain text
    assert files["data/notes/n42.txt"].mime == "text/plain"
    assert_bagit_python_valid(stored_bag(repo, result.aip_id))


@pytest.mark.parametrize("mode,name", [("w", "c.tar"), ("w:gz", "c.tar.gz")])
def test_tar_is_ingested(repo, tmp_path, mode, name):
    archive = _tar(tmp_path / name, mode)
    result = _ingest(repo, archive)
    assert result.source_kind == "tar" and result.files == 3 and result.empty_dirs == 1
    bag = stored_bag(repo, result.aip_id)
    assert (bag / "data" / "dir" / "a.txt").read_bytes() == b"alpha"
    files = {f.path: f for f in repo.catalog.files(result.aip_id, 1)}
    assert files["data/dir/sub/photo.png"].puid == "fmt/11"
    assert_bagit_python_valid(bag)


def _add_link(tf):
    link = tarfile.TarInfo("dir/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../../etc/passwd"
    tf.addfile(link)


def _add_traversal(tf):
    info = tarfile.TarInfo("../../outside.txt")
    info.size = 4
    tf.addfile(info, io.BytesIO(b"evil"))


def _add_device(tf):
    dev = tarfile.TarInfo("dev/null")
    dev.type = tarfile.CHRTYPE
    tf.addfile(dev)


@pytest.mark.parametrize("add,words", [(_add_link, "symbolic link"),
                                       (_add_traversal, "tar member"),
                                       (_add_device, "device")])
def test_unsafe_tar_members_are_refused(repo, tmp_path, add, words):
    archive = _tar(tmp_path / "evil.tar", "w", add)
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, archive)
    assert any(words in i for i in refused.value.items)
    assert not (tmp_path.parent / "outside.txt").exists()
    assert holds_no_aip(repo.primary_location().root)


def test_links_in_a_tar_can_be_left_out(repo, tmp_path):
    from preserve.domain.policy import IngestPolicy

    archive = _tar(tmp_path / "links.tar", "w", _add_link)
    result = _ingest(repo, archive, policy=IngestPolicy(links="skip"))
    assert result.files == 3 and any("dir/link" in s for s in result.skipped)


def test_something_that_is_not_an_archive_is_refused(repo, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(1000))
    with pytest.raises(SourceRefused, match="neither a folder"):
        _ingest(repo, junk)
    with pytest.raises(SourceRefused, match="does not exist"):
        _ingest(repo, tmp_path / "nope")
    shutil.rmtree(tmp_path / "repo" / "staging")
    empty = tmp_path / "emptydir"
    empty.mkdir()
    with pytest.raises(SourceRefused, match="no files or folders"):
        _ingest(repo, empty)


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_member_named_twice_is_refused_naming_it(repo, tmp_path, kind):
    path = tmp_path / f"twice.{kind}"
    if kind == "tar":
        with tarfile.open(path, "w") as tf:
            for body in (b"first\n", b"second\n"):
                info = tarfile.TarInfo("letters/a.txt")
                info.size = len(body)
                tf.addfile(info, io.BytesIO(body))
    else:
        with pytest.warns(UserWarning), zipfile.ZipFile(path, "w") as zf:
            zf.writestr("letters/a.txt", "first\n")
            zf.writestr("letters/a.txt", "second\n")
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, path)
    assert any("letters/a.txt" in p and "more than once" in p for p in refused.value.items)
    assert not list((repo.root / "staging").glob("*-*"))
