"""Ingest of folders: the AIP is a valid BagIt 1.0 bag, the source is untouched."""

from __future__ import annotations

import os
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from preserve.access.export import export
from preserve.domain.names import encode_manifest_path
from preserve.domain.policy import IngestPolicy
from preserve.errors import SourceRefused
from preserve.ingest.ingest import Metadata, ingest
from preserve.ingest.validation import validate_bag
from tests.conftest import (
    assert_bagit_python_valid,
    assert_ocfl_valid,
    holds_no_aip,
    memory_probe,
    stored_bag,
    tree_fingerprint,
)

P = "{http://www.loc.gov/premis/v3}"


def _ingest(repo, src, **kw):
    return ingest(repo, src, Metadata("test", title="T", creators=["C1", "C2"],
                                      identifiers=["ID-1"], rights="public domain"), **kw)


@pytest.mark.parametrize("workers", [1, 2])
def test_folder_becomes_a_valid_bag_and_the_source_is_untouched(repo, collection, workers):
    before = tree_fingerprint(collection)
    result = _ingest(repo, collection, workers=workers)
    assert tree_fingerprint(collection) == before

    bag = stored_bag(repo, result.aip_id)
    report = validate_bag(bag)
    assert report.valid, report.errors
    assert report.version == "1.0"
    assert_bagit_python_valid(bag)
    assert (bag / "bagit.txt").read_text() == ("BagIt-Version: 1.0\n"
                                               "Tag-File-Character-Encoding: UTF-8\n")
    for name in ("manifest-sha256.txt", "manifest-sha512.txt", "tagmanifest-sha256.txt",
                 "tagmanifest-sha512.txt", "metadata/premis.xml",
                 "metadata/fixity-xxh3_128.txt"):
        assert (bag / name).is_file(), name
    # every source file is in the payload with identical bytes, under its exact name
    for rel, (_mode, _mtime, _size, digest) in before.items():
        if digest is None:
            continue
        assert os.path.isfile(bag / "data" / rel), rel
    assert result.files == 10 and result.empty_dirs == 1


def test_names_are_kept_exactly_nfc_and_nfd_apart(repo, collection):
    result = _ingest(repo, collection)
    names = set(os.listdir(stored_bag(repo, result.aip_id) / "data"))
    nfc = unicodedata.normalize("NFC", "café-nfc.txt")
    nfd = "cafe\u0301-nfd.txt"
    assert nfc in names and nfd in names
    assert "line\nfeed\rreturn.txt" in names
    manifest = (stored_bag(repo, result.aip_id) / "manifest-sha256.txt").read_text()
    assert "data/line%0Afeed%0Dreturn.txt" in manifest
    assert "data/with space and 100%25 sure.txt" in manifest


def test_empty_files_and_folders_are_recorded_not_dropped(repo, collection):
    result = _ingest(repo, collection)
    bag = stored_bag(repo, result.aip_id)
    assert (bag / "data" / "empty-file.dat").stat().st_size == 0
    # OCFL keeps no empty folder in content (E024): the bag lists it, export makes it
    assert not (bag / "data" / "empty-folder").exists()
    assert (bag / "metadata" / "empty-directories.txt").read_text() == "data/empty-folder\n"
    assert_ocfl_valid(repo.primary_location().root)
    export(repo, result.aip_id, repo.root.parent / "out")
    assert (repo.root.parent / "out" / "data" / "empty-folder").is_dir()
    files = {f.path: f for f in repo.catalog.files(result.aip_id, 1)}
    zero = files["data/empty-file.dat"]
    assert zero.size == 0 and zero.puid is None and zero.warning == "zero-byte file"


def test_formats_are_identified_with_pronom_and_libmagic(repo, collection):
    result = _ingest(repo, collection)
    files = {f.path: f for f in repo.catalog.files(result.aip_id, 1)}
    png = files["data/images/photo.png"]
    assert (png.puid, png.mime, png.confidence) == ("fmt/11", "image/png", "signature")
    # siegfried matched a signature and PRONOM gives the MIME type: libmagic would repeat
    # it (issue 11), so it is not asked
    assert png.magic_mime is None and png.magic_description is None
    pdf = files["data/docs/report.pdf"]
    assert pdf.puid == "fmt/18" and pdf.mime == "application/pdf"
    assert files["data/docs/notes.txt"].puid == "x-fmt/111"
    csv = files["data/docs/table.csv"]
    assert csv.confidence == "extension" and "extension only" in csv.warning
    # an extension-only match: libmagic is asked, and its answer kept beside siegfried's
    assert csv.magic_mime in ("text/csv", "text/plain") and csv.magic_description
    empty = files["data/empty-file.dat"]
    assert empty.magic_mime in ("application/x-empty", "inode/x-empty")


def test_premis_records_objects_events_and_agents(repo, collection):
    result = _ingest(repo, collection)
    bag = stored_bag(repo, result.aip_id)
    root = ET.parse(bag / "metadata" / "premis.xml").getroot()
    objects = root.findall(f"{P}object")
    files = [o for o in objects if o.find(f"{P}objectCharacteristics") is not None]
    assert len(files) == result.files
    png = next(o for o in files if o.findtext(f"{P}originalName") == "images/photo.png")
    fixity = {f.findtext(f"{P}messageDigestAlgorithm"): f.findtext(f"{P}messageDigest")
              for f in png.iter(f"{P}fixity")}
    record = next(f for f in repo.catalog.files(result.aip_id, 1)
                  if f.path == "data/images/photo.png")
    assert fixity == {"SHA-512": record.digests["sha512"], "SHA-256": record.digests["sha256"]}
    assert png.findtext(f".//{P}formatRegistryKey") == "fmt/11"
    assert png.findtext(f".//{P}size") == str(record.size)
    odd = [o.findtext(f"{P}originalName") for o in files]
    assert "line%0Afeed%0Dreturn.txt" in odd  # XML would normalise a raw CR away
    events = [e.findtext(f"{P}eventType") for e in root.findall(f"{P}event")]
    # the AIP's events (the catalog's too), then a format validation event per file
    aip_events = ["ingestion", "message digest calculation", "format identification",
                  "validation", "validation", "virus check"]
    assert events[:6] == aip_events
    per_file = root.findall(f"{P}event")[6:]
    validated = sum(result.checks["validation"].get(s, 0) for s in ("valid", "invalid"))
    assert len(per_file) == validated > 0
    assert all(e.findtext(f"{P}eventType") == "validation" for e in per_file)
    linked = {v.text for e in per_file for v in e.iter(f"{P}linkingObjectIdentifierValue")}
    assert "data/images/photo.png" in linked
    agents = {a.findtext(f"{P}agentName"): a for a in root.findall(f"{P}agent")}
    assert {"preserve", "siegfried", "libmagic", "Pillow"} <= set(agents)
    assert "DROID_SignatureFile_V" in agents["siegfried"].findtext(f"{P}agentNote")
    assert [e.type for e in repo.catalog.events(result.aip_id)] == aip_events


def test_bag_info_carries_the_descriptive_fields(repo, collection):
    result = _ingest(repo, collection)
    info = (stored_bag(repo, result.aip_id) / "bag-info.txt").read_text()
    for line in ("Title: T", "Creator: C1", "Creator: C2", "External-Identifier: ID-1",
                 "Rights: public domain", f"Preserve-AIP-Identifier: {result.aip_id}",
                 "Bag-Software-Agent: preserve", f"Payload-Oxum: {result.bytes}.{result.files}",
                 "Bagging-Date: 20", "Bag-Size: "):
        assert line in info, line


def test_symlinks_are_refused_by_default_naming_each(repo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "real.txt").write_text("x")
    (src / "inside").symlink_to("real.txt")
    (src / "outside").symlink_to("/etc/passwd")
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, src)
    text = "\n".join(refused.value.items)
    assert "inside -> real.txt" in text and "outside -> /etc/passwd" in text
    assert repo.catalog.list_aips() == []
    assert holds_no_aip(repo.primary_location().root)


def test_links_can_be_skipped_or_followed_only_inside(repo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "real.txt").write_text("payload")
    (src / "inside").symlink_to("real.txt")
    policy = IngestPolicy(links="follow-inside")
    result = _ingest(repo, src, policy=policy)
    bag = stored_bag(repo, result.aip_id)
    assert (bag / "data" / "inside").read_text() == "payload"
    assert not (bag / "data" / "inside").is_symlink()

    (src / "outside").symlink_to("/etc/hostname")
    with pytest.raises(SourceRefused, match="cannot be ingested"):
        _ingest(repo, src, policy=policy)
    result = _ingest(repo, src, policy=replace(policy, links="skip"))
    assert result.files == 1
    assert any("outside -> /etc/hostname" in s for s in result.skipped)
    assert "left out by policy" in " ".join(
        e.outcome_detail for e in repo.catalog.events(result.aip_id))


def test_fifos_are_refused_unless_skipped(repo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    os.mkfifo(src / "pipe")
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, src)
    assert any("FIFO" in i and "pipe" in i for i in refused.value.items)
    result = _ingest(repo, src, policy=IngestPolicy(special_files="skip"))
    assert result.files == 1 and result.skipped == ["FIFO pipe"]


def test_colliding_names_are_reported_before_anything_is_written(repo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "Report.txt").write_text("1")
    (src / "report.txt").write_text("2")
    (src / unicodedata.normalize("NFC", "é.txt")).write_text("3")
    (src / unicodedata.normalize("NFD", "é.txt")).write_text("4")
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, src)
    text = "\n".join(refused.value.items)
    assert "Unicode normalisation" in text and "letter case" in text
    assert list(repo.staging.iterdir()) == []
    assert holds_no_aip(repo.primary_location().root)
    # case-only collisions may be allowed; Unicode ones never
    (src / unicodedata.normalize("NFD", "é.txt")).unlink()
    result = _ingest(repo, src, policy=IngestPolicy(case_collisions="allow"))
    assert result.files == 3


def test_non_utf8_names_are_refused_with_their_name(repo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("x")
    with open(os.path.join(os.fsencode(src), b"latin1-\xe9.txt"), "wb") as f:
        f.write(b"x")
    with pytest.raises(SourceRefused) as refused:
        _ingest(repo, src)
    assert any("latin1-" in i and "UTF-8" in i for i in refused.value.items)


def test_the_same_source_twice_gives_two_aips(repo, collection):
    a = _ingest(repo, collection)
    b = _ingest(repo, collection)
    assert a.aip_id != b.aip_id
    assert {x.id for x in repo.catalog.list_aips()} == {a.aip_id, b.aip_id}


def test_two_worker_processes_give_the_same_digests_as_one(repo, tmp_path):
    src = tmp_path / "many"
    for i in range(150):
        d = src / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(os.urandom(i * 97))
    one = _ingest(repo, src, workers=1)
    two = _ingest(repo, src, workers=2)
    digests = [{f.path: f.digests for f in repo.catalog.files(r.aip_id, 1)} for r in (one, two)]
    assert digests[0] == digests[1] and len(digests[0]) == 150
    assert_bagit_python_valid(stored_bag(repo, two.aip_id))


_COPY_WORKER = """
import json, sys
from preserve.pipeline.copying import copy_batch
from preserve.pipeline.identifying import identify_batch, magic_batch
src, dst = sys.argv[1], sys.argv[2]
results = copy_batch((("folder", src), ("sha256",), [(0, src + "/a.png", dst + "/a.png", int(sys.argv[3]))]))
loaded = "pygfried" in sys.modules
results, tools = magic_batch(identify_batch(results))
r = results[0]
print(json.dumps([loaded, r.magic[0], r.identification.puid, tools["siegfried"]["version"] != ""]))
"""


def test_copy_workers_never_load_siegfried_one_process_identifies(tmp_path):
    """siegfried's signatures take about 100 MB a process: only the identifying process
    loads them; copy workers copy and hash (and ask libmagic what siegfried left it)."""
    import json
    import subprocess
    import sys

    from tests.conftest import png_bytes

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "a.png").write_bytes(png_bytes())
    script = tmp_path / "worker.py"
    script.write_text(_COPY_WORKER)
    out = subprocess.run([sys.executable, str(script), str(src), str(dst),
                          str(len(png_bytes()))], capture_output=True, text=True, check=True,
                         cwd=os.getcwd())
    loaded, magic_mime, puid, named = json.loads(out.stdout)
    assert loaded is False and magic_mime is None  # a PNG: siegfried's answer suffices
    assert puid in ("fmt/11", "fmt/12", "fmt/13") and named  # PNG, by the identifier


def test_memory_does_not_grow_with_the_number_of_files(tmp_path):
    """Scan, collision check, copy queue, tag files and the structure check keep what they
    know about all files on disk: 5x the files must not mean more Python memory in the
    main process (it took ~1.9 KB a file before). Measured in a fresh interpreter
    (tests/memory_probe.py says why)."""
    result = memory_probe("ingest", tmp_path)
    assert result["files"] == [1_000, 5_000] and result["valid"] == [True, True]
    small, big = result["ingest"]
    assert big - small < 2 << 20, result


def test_the_premis_object_holds_every_identification_field_the_catalog_keeps(
        repo, collection):
    """Issue 24 (the catalog rebuilt from storage alone): the MIME type, how the format was
    identified, siegfried's basis and warning and libmagic's answer were in the catalog
    only (or not at all); each is now a formatNote of the file's PREMIS object."""
    result = _ingest(repo, collection)
    root = ET.parse(stored_bag(repo, result.aip_id) / "metadata" / "premis.xml").getroot()
    notes = {o.findtext(f"{P}originalName"): [n.text for n in o.iter(f"{P}formatNote")]
             for o in root.findall(f"{P}object")
             if o.find(f"{P}objectCharacteristics") is not None}
    for record in repo.catalog.files(result.aip_id, 1):
        if not record.path.startswith("data/"):
            continue
        said = notes[encode_manifest_path(record.path)[len("data/"):]]  # CR, LF: %0D, %0A
        assert f"identified by: {record.confidence}" in said
        assert (f"MIME type: {record.mime}" in said) == bool(record.mime)
        assert (f"siegfried warning: {record.warning}" in said) == bool(record.warning)
        if record.magic_mime:
            assert f"libmagic: {record.magic_mime}; {record.magic_description}" in said
    assert "MIME type: image/png" in notes["images/photo.png"]
