"""AIPs as OCFL 1.1 objects whose every version is a complete BagIt bag (issue 9).

Independent checks: ocfl-py's validator for every object stored (on S3 after reading
it back), bagit-python's for every version exported."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preserve.access.export import export
from preserve.data.describe import Description, describe
from preserve.domain import ocfl
from preserve.domain.premis import Agent, Event
from preserve.errors import ConfigError, NotFound
from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from preserve.storage.audit import audit
from preserve.storage.new_version import VersionChange, add_version
from preserve.storage.repair import repair
from tests.conftest import (
    assert_bagit_python_valid,
    assert_ocfl_valid,
    many_small_files,
    object_key,
)
from tests.s3server import S3Server
from tests.test_cli import run


@pytest.fixture
def server():
    s = S3Server()
    yield s
    s.stop()


def _inventory(root: Path, aip: str, version: int | None = None) -> dict:
    folder = root / object_key(aip) / (f"v{version}" if version else "")
    return json.loads((folder / "inventory.json").read_text(encoding="utf-8"))


def _files_under(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}


def test_ingest_writes_a_valid_ocfl_object_whose_v1_is_the_bag(repo, collection, tmp_path):
    aip = ingest(repo, collection, Metadata("c", title="Letters")).aip_id
    root = repo.primary_location().root
    assert (root / "0=ocfl_1.1").read_text() == "ocfl_1.1\n"
    layout = json.loads((root / "ocfl_layout.json").read_text())
    assert layout["extension"] == "0003-hash-and-id-n-tuple-storage-layout"
    assert_ocfl_valid(root)
    obj = root / object_key(aip)
    assert obj.name == aip  # a person finds an AIP's folder by its id
    inventory = _inventory(root, aip)
    assert (inventory["id"], inventory["head"], inventory["digestAlgorithm"]) == (aip, "v1",
                                                                                   "sha512")
    assert (obj / "inventory.json").read_bytes() == (obj / "v1" / "inventory.json").read_bytes()
    for folder in (obj, obj / "v1"):  # `sha512sum -c` checks the sidecar as it is
        assert subprocess.run(["sha512sum", "-c", "inventory.json.sha512"], cwd=folder,
                              capture_output=True).returncode == 0
    v1 = inventory["versions"]["v1"]
    assert v1["message"].startswith("ingested folder") and v1["user"]["name"]
    assert v1["created"] == [e for e in repo.catalog.events(aip) if e.type == "ingestion"][0].datetime
    # every content file has its sha512 in the manifest and its sha256 in the fixity block
    content = {f"v1/content/{p}" for p in _files_under(obj / "v1" / "content")}
    assert {p for paths in inventory["manifest"].values() for p in paths} == content
    assert {p for paths in inventory["fixity"]["sha256"].values() for p in paths} == content
    export(repo, aip, tmp_path / "out")
    assert_bagit_python_valid(tmp_path / "out")


def test_describe_writes_version_2_with_only_what_changed(repo, collection, tmp_path):
    aip = ingest(repo, collection, Metadata("c", title="Harbor", creators=["A. Clerk"])).aip_id
    result = describe(repo, aip[:8], Description(title="Harbour records",
                                                 creators=["Port Authority", "A. Clerk"],
                                                 note="title misspelt at ingest"))
    assert (result.version, result.files_added) == (2, 0)
    root = repo.primary_location().root
    obj = root / object_key(aip)
    assert _files_under(obj / "v2" / "content") == {
        "bag-info.txt", "metadata/premis-v2.xml", "tagmanifest-sha256.txt",
        "tagmanifest-sha512.txt"}  # no payload, no earlier record: referenced, never copied
    assert_ocfl_valid(root)
    inventory = _inventory(root, aip)
    assert inventory["head"] == "v2" and inventory == _inventory(root, aip, 2)
    assert _inventory(root, aip, 1)["head"] == "v1"  # v1's own inventory is untouched
    state = {p: d for d, paths in inventory["versions"]["v2"]["state"].items() for p in paths}
    where = {p: d for d, paths in inventory["manifest"].items() for p in paths}
    payload = [p for p in state if p.startswith("data/")]
    assert payload and all(f"v1/content/{p}" in where for p in payload)
    v2 = inventory["versions"]["v2"]
    assert "title misspelt at ingest" in v2["message"] and "Title: Harbour records" in \
        v2["message"]
    for version, title in ((1, "Harbor"), (2, "Harbour records")):
        out = tmp_path / f"v{version}"
        export(repo, aip, out, version=version)
        assert_bagit_python_valid(out)
        info = (out / "bag-info.txt").read_text()
        assert f"Title: {title}\n" in info and f"Preserve-AIP-Version: {version}\n" in info
    assert (tmp_path / "v2" / "bag-info.txt").read_text().count("Creator:") == 2
    with pytest.raises(NotFound, match="versions 1 to 2, not 3"):
        export(repo, aip, tmp_path / "v3", version=3)
    assert not (tmp_path / "v3").exists()
    premis = (tmp_path / "v2" / "metadata" / "premis-v2.xml").read_text()
    assert "metadata modification" in premis and "title misspelt at ingest" in premis
    assert premis.count("<premis:event>") == 1 and aip in premis
    assert (tmp_path / "v2" / "metadata" / "premis.xml").read_bytes() == \
        (tmp_path / "v1" / "metadata" / "premis.xml").read_bytes()  # the record, kept
    [summary] = repo.catalog.list_aips()
    assert (summary.version, summary.title) == (2, "Harbour records")
    shown = json.loads(run(repo.root, "show", aip, "--json").stdout)
    v1_files = len(_files_under(obj / "v1" / "content"))
    assert [(v["version"], v["files_added"]) for v in shown["versions"]] == [(1, v1_files),
                                                                             (2, 4)]
    assert shown["versions"][1]["message"] == v2["message"]
    assert audit(repo, full=True).status == "ok"


def test_a_version_adding_a_file_stores_only_that_file_and_its_tag_files(repo, tmp_path):
    src = many_small_files(tmp_path / "src", 50)
    aip = ingest(repo, src, Metadata("c")).aip_id
    new = tmp_path / "transcript.txt"
    new.write_text("A transcription of letter 12.\n")
    root = repo.primary_location().root
    result = add_version(repo, aip, VersionChange(
        "transcription added", Event("creation", "2026-11-26T00:00:00Z", "success",
                                     "a transcription of letter 12 added"),
        [Agent("archivist", "An Archivist", "person")],
        bag_info={"Title": ["Letters, with a transcription"]},
        added=[("data/transcripts/letter-12.txt", new)]))
    assert (result.version, result.files_added) == (2, 1)
    v2 = root / object_key(aip) / "v2" / "content"
    assert _files_under(v2) == {
        "data/transcripts/letter-12.txt", "bag-info.txt", "manifest-sha256.txt",
        "manifest-sha512.txt", "metadata/fixity-xxh3_128.txt", "metadata/premis-v2.xml",
        "tagmanifest-sha256.txt", "tagmanifest-sha512.txt"}
    v2_payload = sum(p.stat().st_size for p in (v2 / "data").rglob("*") if p.is_file())
    assert v2_payload == new.stat().st_size  # none of v1's payload is written again
    assert_ocfl_valid(root)
    out = tmp_path / "out"
    export(repo, aip, out)
    assert_bagit_python_valid(out)
    assert (out / "data" / "transcripts" / "letter-12.txt").read_text() == new.read_text()
    info = (out / "bag-info.txt").read_text()
    payload = sum(p.stat().st_size for p in src.rglob("*.txt")) + new.stat().st_size
    assert f"Payload-Oxum: {payload}.51\n" in info
    [row] = [f for f in repo.catalog.files(aip, 2) if f.path.endswith("letter-12.txt")]
    assert row.puid == "x-fmt/111"  # identified as ingest identifies
    assert audit(repo, full=True).status == "ok"


def test_s3_objects_read_back_are_valid_ocfl(tmp_path, server, collection):
    from tests.test_replication import _two_copy_repo

    repo = _two_copy_repo(tmp_path, server, bucket="readback")  # a bucket of its own
    aip = ingest(repo, collection, Metadata("c")).aip_id
    result = describe(repo, aip, Description(rights="Public domain"))
    assert result.replicas == ["local", "cloud"] and not result.replication_problems
    cloud = repo.locations["cloud"]
    copy = tmp_path / "read-back"
    for o in cloud.list(""):  # every object under the location's prefix, as preserve reads it
        target = copy / o.key
        target.parent.mkdir(parents=True, exist_ok=True)
        with cloud.open(o.key) as f:
            target.write_bytes(f.read())
    assert_ocfl_valid(copy)
    assert _files_under(copy / object_key(aip) / "v2" / "content") == {
        "bag-info.txt", "metadata/premis-v2.xml", "tagmanifest-sha256.txt",
        "tagmanifest-sha512.txt"}  # no server-side copy of v1's payload either
    assert audit(repo, full=True).status == "ok"


def test_a_damaged_inventory_is_its_own_kind_and_repaired_from_a_good_replica(tmp_path,
                                                                             collection):
    repo, _ = Repository.init(tmp_path / "repo")
    (tmp_path / "disk2").mkdir()
    run(repo.root, "storage", "add", "disk2", tmp_path / "disk2")
    policy = repo.root / "policies" / "default.yaml"
    policy.write_text(policy.read_text().replace("copies: 1", "copies: 2").replace(
        "locations: [local]", "locations: [local, disk2]"))
    repo = Repository(repo.root)
    assert repo.policy.copies == 2
    aip = ingest(repo, collection, Metadata("c")).aip_id
    describe(repo, aip, Description(title="T"))
    local, disk2 = (repo.locations[n].root / object_key(aip) for n in ("local", "disk2"))
    (disk2 / "v1" / "inventory.json").write_text("{}")               # a version's, damaged
    (local / "inventory.json").unlink()                               # the root's, gone
    with open(local / "v2" / "inventory.json.sha512", "a") as f:      # a sidecar, altered
        f.write(" ")
    found = audit(repo)
    assert sorted((p.location, p.kind, p.path) for p in found.problems) == [
        ("disk2", "inventory", "inventory.json"),
        ("local", "inventory", "/inventory.json"),
        ("local", "inventory", "inventory.json.sha512")]
    assert found.exit_code == 1
    fixed = repair(repo)
    assert fixed.exit_code == 0 and all(r.outcome == "repaired" for r in fixed.repairs)
    assert audit(repo, full=True).status == "ok"
    assert_ocfl_valid(repo.locations["local"].root, repo.locations["disk2"].root)


@pytest.mark.parametrize("moment", [
    "preserve.storage.new_version:write_inventory",            # before anything is stored
    "preserve.stores.local:fsync_dir",          # version folder in place
    "preserve.stores.local:LocalStorage.put_bytes",  # root inventory written
])
def test_a_killed_describe_leaves_the_previous_head_whole_and_the_next_run_resolves_it(
        repo, tmp_path, moment):
    aip = ingest(repo, many_small_files(tmp_path / "src", 20), Metadata("c")).aip_id
    env = dict(os.environ, PRESERVE_REPO=str(repo.root), PRESERVE_NO_PROGRESS="1")
    done = subprocess.run([sys.executable, "-m", "tests.killer", moment, "1", "describe", aip,
                           "--title", "New"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -9, done.stderr
    root = repo.primary_location().root
    head = _inventory(root, aip)["head"]  # the previous head, or the new one: never half
    assert head in ("v1", "v2")
    assert (root / object_key(aip) / "v1" / "inventory.json").is_file()
    found = json.loads(run(repo.root, "check", "--json", check_code=None).stdout)
    assert {f["kind"] for f in found["findings"]} <= {"half-aip", "leftover", "stale-lock"}
    fixed = json.loads(run(repo.root, "check", "--fix", "--json").stdout)
    assert fixed["status"] == "consistent", fixed
    repo = Repository(repo.root)
    [summary] = repo.catalog.list_aips()
    assert summary.version == int(head[1:])  # the catalog follows what storage says
    assert_ocfl_valid(root)
    assert audit(repo, full=True).status == "ok"
    describe(repo, aip, Description(title="Newer"))
    assert repo.catalog.list_aips()[0].title == "Newer"
    assert_ocfl_valid(root)


def test_a_location_in_the_layout_before_ocfl_is_refused_by_name(tmp_path, collection):
    repo, _ = Repository.init(tmp_path / "repo")
    ingest(repo, collection, Metadata("c"))
    old = tmp_path / "old-disk"
    (old / "ab" / "abcd-1234" / "v1").mkdir(parents=True)
    (old / "ab" / "abcd-1234" / "v1" / "bagit.txt").write_text("BagIt-Version: 1.0\n")
    said = run(repo.root, "storage", "add", "old", old, check_code=2).stderr  # said at once
    assert "not an OCFL storage root" in said
    (repo.root / "locations" / "old.yaml").write_text(  # a location file of an older release
        f"name: old\nkind: local\npath: {old}\n")
    policy = repo.root / "policies" / "default.yaml"
    policy.write_text(policy.read_text().replace("copies: 1", "copies: 2").replace(
        "locations: [local]", "locations: [local, old]"))
    out = run(repo.root, "replicate", check_code=None)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "not an OCFL storage root" in out.stdout + out.stderr
    assert (old / "ab" / "abcd-1234" / "v1" / "bagit.txt").exists()  # nothing touched
    with pytest.raises(ConfigError):
        from preserve.stores.base import ensure_ocfl_root
        ensure_ocfl_root(Repository(repo.root).locations["old"])


@settings(max_examples=int(os.environ.get("PRESERVE_EXAMPLES", "200")), deadline=None)
@given(st.text(min_size=1, max_size=150))
def test_the_layout_is_the_one_ocfl_py_computes(object_id):
    from ocfl.layout_0003_hash_and_id_n_tuple import Layout_0003_Hash_And_Id_N_Tuple

    theirs = Layout_0003_Hash_And_Id_N_Tuple()
    theirs.check_and_set_layout_params(ocfl.LAYOUT_CONFIG, require_extension_name=False)
    assert ocfl.object_root(object_id) == theirs.identifier_to_path(object_id) + "/"
    assert ocfl.id_of_root(ocfl.object_root(object_id)) in (object_id, None)


def test_sidecars_and_declarations_are_what_the_spec_says():
    digest = hashlib.sha512(b"{}").hexdigest()
    assert ocfl.sidecar(digest) == f"{digest}  inventory.json\n".encode()
    assert ocfl.declaration(ocfl.OBJECT_DECLARATION) == b"ocfl_object_1.1\n"
    assert ocfl.key_of("aa/bb/v3/", "data/x") == "aa/bb/v3/content/data/x"
    assert ocfl.key_of("aa/bb/v3/", "/inventory.json") == "aa/bb/inventory.json"
    assert ocfl.rel_in_version("content/data/x") == "data/x"
    assert ocfl.rel_in_version("junk") == "./junk" and ocfl.key_of("a/v1/", "./junk") == \
        "a/v1/junk"
    assert shutil.which("sha512sum")


def test_describe_refuses_what_it_cannot_record_with_exit_2(repo, collection):
    aip = ingest(repo, collection, Metadata("c")).aip_id
    nothing = run(repo.root, "describe", aip, check_code=2)
    assert "nothing to correct" in nothing.stderr
    blank = run(repo.root, "describe", aip, "--title", "T", "--note", "  ", check_code=2)
    assert "note is blank" in blank.stderr
    broken = run(repo.root, "describe", aip, "--title", "a\x07b", check_code=2)
    assert "control characters" in broken.stderr
    assert [v["version"] for v in repo.catalog.versions_of(aip)] == [1]  # nothing written
    done = json.loads(run(repo.root, "describe", aip, "--rights", "CC0", "--json").stdout)
    assert (done["version"], done["changed"], done["replicas"]) == (2, ["Rights"], ["local"])


def test_tidy_never_takes_the_files_of_a_version_another_run_is_writing(repo, collection):
    """Red-team case 55: a describe's tidy, run while another describe of the same AIP had
    recorded its new files but not yet the version, took those rows as a killed run's:
    the version was then published with the previous bag-info in its inventory."""
    from preserve.domain.model import FileRecord
    from preserve.storage.recovery import tidy

    aip = ingest(repo, collection, Metadata("Parish")).aip_id
    row = FileRecord("bag-info.txt", 3, {"sha256": "0" * 64, "sha512": "1" * 128})
    repo.catalog.add_files(aip, 2, [row])  # what add_version records before the version
    lock = repo.staging / f"{aip}.v2.lock"
    lock.write_text(f"{os.getpid()} now\n")  # this process: the run goes on
    tidy(repo)
    assert repo.catalog.orphan_versions() == [(aip, 2)]
    lock.write_text("999999999 then\n")  # no such process: a killed run's rows
    tidy(repo)
    assert repo.catalog.orphan_versions() == []
