"""Ingest of other systems' bags: damaged ones never accepted, good ones never refused.

Red-team cases 21-25 and the interoperability list of issue 12, each on a real bag made
in the test; every AIP that is stored is checked with bagit-python too.
"""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import bagit
import pytest

from preserve.domain.bag import SOURCE_BAG_DIR
from preserve.errors import BagInvalid, FixityMismatch
from preserve.ingest.ingest import Metadata, ingest
from tests.conftest import assert_bagit_python_valid, stored_bag, tree_fingerprint
from tests.test_validate_interop import make_bag, sha


def _ingest(repo, src, **kw):
    return ingest(repo, src, Metadata("bags"), **kw)


def _stored_payload(repo, result) -> dict[str, bytes]:
    data = stored_bag(repo, result.aip_id) / "data"
    return {p.relative_to(data).as_posix(): p.read_bytes() for p in data.rglob("*")
            if p.is_file()}


def _events(repo, result, kind):
    return [e for e in repo.catalog.events(result.aip_id) if e.type == kind]


def test_manifest_name_in_another_unicode_form_with_a_wrong_digest_is_refused(repo, tmp_path):
    """Case 23: the digest was filed under the NFD name, looked up under the NFC one, and
    never compared; PREMIS said 'all 1 file(s) matched'."""
    nfc_name = unicodedata.normalize("NFC", "caf\u00e9.txt")
    nfd_name = unicodedata.normalize("NFD", nfc_name)
    bag = make_bag(tmp_path / "nfd", files={nfc_name: b"the real bytes\n"},
                   manifest=f"{sha(b'DIFFERENT bytes')}  data/{nfd_name}\n")
    with pytest.raises(FixityMismatch) as refused:
        _ingest(repo, bag)
    assert "sha256" in refused.value.message and "caf" in refused.value.message
    assert repo.catalog.list_aips() == []


def test_manifest_name_in_another_unicode_form_with_the_right_digest_is_checked(repo, tmp_path):
    nfc_name = unicodedata.normalize("NFC", "caf\u00e9.txt")
    nfd_name = unicodedata.normalize("NFD", nfc_name)
    bag = make_bag(tmp_path / "nfd", files={nfc_name: b"bytes\n"},
                   manifest=f"{sha(b'bytes' + bytes([10]))}  data/{nfd_name}\n")
    result = _ingest(repo, bag)
    assert _stored_payload(repo, result) == {nfc_name: b"bytes\n"}
    assert any("W051" in w for w in result.warnings)
    validation = _events(repo, result, "validation")[0]
    assert "all 1 file(s)" in validation.outcome_detail and "W051" in validation.outcome_detail


@pytest.fixture
def rich_bag(tmp_path) -> Path:
    """A bagit-python bag with a metadata folder and an extra tag file, all in its tag
    manifests (as APTrust and Archivematica bags have)."""
    bag = tmp_path / "rich"
    bag.mkdir()
    (bag / "letter.txt").write_text("Dear archivist\n")
    bagit.make_bag(str(bag), {"Source-Organization": "Town Archive"}, checksums=["sha256"])
    (bag / "metadata").mkdir()
    (bag / "metadata" / "mods.xml").write_text("<mods/>\n")
    (bag / "aptrust-info.txt").write_text("Title: Letters\nAccess: Institution\n")
    reopened = bagit.Bag(str(bag))
    reopened.save(manifests=True)  # tag manifests now list the new tag files
    return bag


def test_a_tampered_bag_info_is_refused(repo, rich_bag):
    """Case 24: the tag manifests were never checked; the tampered bag-info.txt was
    carried into the AIP."""
    info = rich_bag / "bag-info.txt"
    info.write_text(info.read_text().replace("Town Archive", "TAMPERED Org"))
    with pytest.raises(FixityMismatch) as refused:
        _ingest(repo, rich_bag)
    assert "bag-info.txt" in refused.value.message and "tag manifest" in refused.value.message
    assert repo.catalog.list_aips() == [] and not any(repo.staging.iterdir())


def test_every_tag_file_of_a_source_bag_is_kept_and_verified(repo, rich_bag):
    """Case 25: metadata/mods.xml and aptrust-info.txt were silently dropped."""
    before = tree_fingerprint(rich_bag)
    result = _ingest(repo, rich_bag)
    assert tree_fingerprint(rich_bag) == before
    aip = stored_bag(repo, result.aip_id)
    kept = aip / SOURCE_BAG_DIR
    for rel in ("metadata/mods.xml", "aptrust-info.txt", "bag-info.txt", "bagit.txt",
                "manifest-sha256.txt", "tagmanifest-sha256.txt"):
        assert (kept / rel).read_bytes() == (rich_bag / rel).read_bytes(), rel
    assert "Source-Organization: Town Archive" in (aip / "bag-info.txt").read_text()
    assert f"{SOURCE_BAG_DIR}/metadata/mods.xml" in (aip / "tagmanifest-sha512.txt").read_text()
    assert_bagit_python_valid(aip)
    ingestion = _events(repo, result, "ingestion")[0]
    assert "aptrust-info.txt" in ingestion.outcome_detail
    assert "metadata/mods.xml" in ingestion.outcome_detail
    validation = _events(repo, result, "validation")[0]
    assert "tag files with its tag manifests" in validation.detail
    assert "5 tag file(s) matched" in validation.outcome_detail


@pytest.mark.parametrize("encoding,codec", [("ISO-8859-1", "latin-1"), ("UTF-16", "utf-16")])
def test_a_bag_in_a_declared_non_utf8_encoding_is_ingested(repo, tmp_path, encoding, codec):
    """Case 21: validate accepted it, ingest crashed (read as UTF-8)."""
    name = "caf\u00e9.txt"
    bag = make_bag(tmp_path / "enc", encoding=encoding, files={name: b"data\n"})
    (bag / "manifest-sha256.txt").write_bytes(f"{sha(b'data' + bytes([10]))}  data/{name}\n"
                                              .encode(codec))
    (bag / "bag-info.txt").write_bytes("Source-Organization: Soci\u00e9t\u00e9\n".encode(codec))
    result = _ingest(repo, bag)
    aip = stored_bag(repo, result.aip_id)
    assert (aip / "data" / name).read_bytes() == b"data\n"
    assert "Source-Organization: Soci\u00e9t\u00e9" in (aip / "bag-info.txt").read_text("utf-8")
    assert any("W016" in w for w in result.warnings)
    assert_bagit_python_valid(aip)


def test_a_manifest_of_an_unknown_algorithm_is_kept_not_fatal(repo, tmp_path):
    """Case 22: validate accepted it (W040), ingest crashed."""
    bag = make_bag(tmp_path / "b3")
    (bag / "manifest-blake3.txt").write_text("ab" * 32 + "  data/a.txt\n")
    result = _ingest(repo, bag)
    aip = stored_bag(repo, result.aip_id)
    assert (aip / SOURCE_BAG_DIR / "manifest-blake3.txt").is_file()
    assert any("W040" in w for w in result.warnings)
    assert "sha256 manifest digests" in _events(repo, result, "validation")[0].detail


def test_a_bag_that_other_producers_write_is_ingested_with_its_warnings_recorded(repo,
                                                                                tmp_path):
    """'./data/' paths, md5sum's '*' marker and blank bag-info lines: warnings, not refusals."""
    manifest = (f"{sha(b'alpha' + bytes([10]))}  ./data/a.txt\n"
                f"{sha(b'beta' + bytes([10]))} *data/sub/b.txt\n")
    bag = make_bag(tmp_path / "odd", "0.97", manifest=manifest,
                   bag_info="Source-Organization: A\n\nContact-Name: B\n")
    result = _ingest(repo, bag)
    codes = {w.split()[0] for w in result.warnings}
    assert {"W043", "W044", "W070"} <= codes
    ingestion = _events(repo, result, "ingestion")[0]
    validation = _events(repo, result, "validation")[0]
    assert ingestion.outcome == "warning" and validation.outcome == "warning"
    assert "W043" in ingestion.outcome_detail and "W070" in ingestion.outcome_detail
    assert "W043" in validation.outcome_detail and "all 2 file(s)" in validation.outcome_detail


def test_strict_refuses_a_bag_with_warnings(repo, tmp_path):
    manifest = (f"{sha(b'alpha' + bytes([10]))}  ./data/a.txt\n"
                f"{sha(b'beta' + bytes([10]))}  data/sub/b.txt\n")
    bag = make_bag(tmp_path / "odd", manifest=manifest)
    with pytest.raises(BagInvalid) as refused:
        _ingest(repo, bag, strict=True)
    assert "--strict" in refused.value.message
    assert any(f.code == "W043" for f in refused.value.findings)
    assert repo.catalog.list_aips() == []


def test_an_invalid_bag_is_ingested_as_a_folder_with_its_digests_reported(repo, tmp_path):
    bag = make_bag(tmp_path / "bad")
    (bag / "data" / "a.txt").write_bytes(b"ALPHA\n")  # no longer matches its manifest
    (bag / "data" / "extra.txt").write_bytes(b"unlisted\n")
    with pytest.raises(BagInvalid) as refused:
        _ingest(repo, bag)
    assert "--as-folder" in refused.value.hint
    before = tree_fingerprint(bag)
    result = _ingest(repo, bag, as_folder=True)
    assert tree_fingerprint(bag) == before
    assert result.source_kind == "bag-as-folder"
    stored = _stored_payload(repo, result)
    assert stored["data/a.txt"] == b"ALPHA\n" and "manifest-sha256.txt" in stored
    assert any("data/a.txt: sha256" in w for w in result.warnings)
    assert any("E050" in w for w in result.warnings)
    validation = _events(repo, result, "validation")[0]
    assert validation.outcome == "failure"
    assert "2 file(s) compared, 1 differ" in validation.outcome_detail
    assert_bagit_python_valid(stored_bag(repo, result.aip_id))


def test_archivematica_sample_style_bag_info_with_blank_lines(repo, tmp_path):
    """bagit-python 1.7 wrote blank lines into bag-info.txt (Archivematica's sample data):
    such a bag was refused (E070)."""
    bag = tmp_path / "am"
    bag.mkdir()
    (bag / "f.txt").write_text("x\n")
    bagit.make_bag(str(bag), {"Source-Organization": "Artefactual"}, checksums=["sha256"])
    info = bag / "bag-info.txt"
    info.write_text(info.read_text() + "\n")
    tm = bag / "tagmanifest-sha256.txt"
    tm.write_text("".join(
        f"{hashlib.sha256((bag / line.split()[1]).read_bytes()).hexdigest()}  "
        f"{line.split()[1]}\n" for line in tm.read_text().splitlines()))
    result = _ingest(repo, bag)
    assert any(w.startswith("W070") for w in result.warnings)


@pytest.mark.parametrize("pack", ["zip", "tar.gz", "zip-root"])
def test_a_bag_that_travels_zipped_or_tarred_is_ingested_as_the_bag_it_is(
        repo, rich_bag, tmp_path, pack):
    """Issue 22: a zipped or tarred bag was stored as a plain archive, the bag's own files
    under data/, never validated, its bag-info dropped."""
    import subprocess

    archive = tmp_path / f"rich.{pack.split('-')[0]}"
    if pack == "zip":
        subprocess.run(["zip", "-qr", str(archive), "rich"], cwd=tmp_path, check=True)
    elif pack == "zip-root":  # the bag's files at the archive's root
        subprocess.run(["zip", "-qr", str(archive), "."], cwd=rich_bag, check=True)
    else:
        subprocess.run(["tar", "-czf", str(archive), "rich"], cwd=tmp_path, check=True)
    result = _ingest(repo, archive)
    assert _stored_payload(repo, result) == {"letter.txt": b"Dear archivist\n"}
    aip = stored_bag(repo, result.aip_id)
    assert "Source-Organization: Town Archive" in (aip / "bag-info.txt").read_text()
    assert (aip / SOURCE_BAG_DIR / "aptrust-info.txt").is_file()
    assert f"Preserve-Source: bag {archive.name}" in (aip / "bag-info.txt").read_text()
    assert "5 tag file(s) matched" in _events(repo, result, "validation")[0].outcome_detail
    assert not [p for p in repo.staging.iterdir() if p.name.startswith("unpack-")]
    as_archive = _ingest(repo, archive, as_folder=True)  # the old behaviour, on request
    assert "bagit.txt" in "".join(_stored_payload(repo, as_archive))


def test_a_damaged_zipped_bag_is_refused(repo, rich_bag, tmp_path):
    """Issue 22: a damaged zipped bag was stored with exit 0 and no warning."""
    import subprocess

    (rich_bag / "data" / "letter.txt").write_text("Dear archivisT\n")  # same size
    subprocess.run(["zip", "-qr", str(tmp_path / "rich.zip"), "rich"], cwd=tmp_path, check=True)
    with pytest.raises(FixityMismatch) as refused:
        _ingest(repo, tmp_path / "rich.zip")
    assert "rich.zip" in refused.value.message and "letter.txt" in refused.value.message
    (rich_bag / "data" / "letter.txt").write_text("Dear archivist, again\n")  # Payload-Oxum
    subprocess.run(["zip", "-qr", str(tmp_path / "oxum.zip"), "rich"], cwd=tmp_path, check=True)
    with pytest.raises(BagInvalid) as refused:
        _ingest(repo, tmp_path / "oxum.zip")
    assert f"the bag {tmp_path / 'oxum.zip'} is not valid" in refused.value.message
    assert repo.catalog.list_aips() == []
    assert not [p for p in repo.staging.iterdir() if p.name.startswith("unpack-")]
