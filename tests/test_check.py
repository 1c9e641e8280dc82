"""`preserve check`: each kind of inconsistency between catalog and storage is found, named
and, where it is provably debris, removed by --fix (issue 14)."""

from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest
import yaml

from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from preserve.storage.check import check
from preserve.storage.history import publish
from tests.conftest import content_key, many_small_files, object_key, stored_bag
from tests.test_cli import run


def _kinds(result) -> list[tuple[str, str]]:
    return sorted((f.kind, f.where) for f in result.findings)


def test_a_fresh_repository_and_one_with_an_aip_are_consistent(repo, tmp_path):
    assert check(repo).status == "consistent"
    ingest(repo, many_small_files(tmp_path / "s", 10), Metadata("c"))
    result = check(repo)
    assert result.status == "consistent" and result.replicas == 1 and result.exit_code == 0


@pytest.mark.storage_left_damaged
def test_a_recorded_copy_that_is_not_whole_is_named(repo, tmp_path):
    aip = ingest(repo, many_small_files(tmp_path / "s", 10), Metadata("c")).aip_id
    bag = stored_bag(repo, aip)
    next((bag / "data").rglob("*.txt")).unlink()
    result = check(repo)
    assert _kinds(result) == [("replica-absent", "local")]
    assert "missing" in result.findings[0].detail and result.exit_code == 1
    (bag / "tagmanifest-sha512.txt").write_text("tampered\n")
    assert "tagmanifest-sha512.txt: 9 bytes" in check(repo).findings[0].detail
    (bag.parents[1] / "inventory.json").unlink()  # the object root's: its version vanishes
    assert "/inventory.json: missing" in check(repo).findings[0].detail


def test_copies_nothing_records_and_copies_policy_lacks_are_named(repo, tmp_path):
    ingest(repo, many_small_files(tmp_path / "s", 10), Metadata("c"))
    disk2 = tmp_path / "disk2"
    shutil.copytree(repo.primary_location().root, disk2)  # an OCFL root, its object whole
    run(repo.root, "storage", "add", "disk2", disk2)
    policy = repo.root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"] = {"copies": 2, "locations": ["local", "disk2"]}
    policy.write_text(yaml.safe_dump(data))
    repo = Repository(repo.root)
    assert _kinds(check(repo)) == [("missing-copy", "disk2"), ("unrecorded", "disk2")]
    assert run(repo.root, "replicate").returncode == 0
    assert check(Repository(repo.root)).status == "consistent"


def test_debris_of_ended_runs_is_found_and_only_debris_is_fixed(repo, tmp_path):
    ingest(repo, many_small_files(tmp_path / "s", 10), Metadata("c"))
    dead = str(uuid.uuid4())
    (repo.staging / dead).mkdir()
    (repo.staging / f"{dead}.lock").write_text("999999 then\n")
    (repo.staging / "repair-999999-0f0f").mkdir()
    live = repo.staging / f"repair-{os.getpid()}-0f0f"  # this process runs: not debris
    live.mkdir()
    location = repo.locations["local"]
    (location.staging_dir() / "v1.999999").mkdir(parents=True)
    empty_object = location.root / object_key(str(uuid.uuid4()))
    empty_object.mkdir(parents=True)
    result = run(repo.root, "check", "--json", check_code=1)
    found = json.loads(result.stdout)["findings"]
    assert sorted(f["kind"] for f in found) == ["leftover"] * 4 + ["stale-lock"]
    fixed = json.loads(run(repo.root, "check", "--fix", "--json").stdout)
    assert fixed["status"] == "consistent" and all(f["fixed"] for f in fixed["findings"])
    assert live.is_dir() and not empty_object.parents[2].exists()
    assert sorted(p.name for p in repo.staging.iterdir()) == [live.name]


@pytest.mark.storage_left_damaged
def test_check_fix_removes_only_what_preserve_names_as_its_own_debris(repo, tmp_path):
    """Red team 2026-12 cases 19, 20, 31: --fix deleted whole objects and a user's export."""
    a = ingest(repo, many_small_files(tmp_path / "a", 3), Metadata("c")).aip_id
    location = repo.locations["local"]
    # a person's things in staging/, named like nothing preserve writes there
    export = repo.staging / "my-export"
    (export / "data").mkdir(parents=True)
    (export / "data" / "letter.txt").write_text("mine\n")
    (repo.staging / "notes.lock").write_text("999999 x\n")
    (repo.staging / "notes").mkdir()
    # another tool's complete OCFL object with zero-padded version folders (OCFL allows it)
    foreign = location.root / object_key(str(uuid.uuid4()))
    (foreign / "v001" / "content").mkdir(parents=True)
    (foreign / "v001" / "content" / "minutes.txt").write_text("the only copy\n")
    (foreign / "0=ocfl_object_1.1").write_text("ocfl_object_1.1\n")
    (foreign / "inventory.json").write_text("{}\n")
    # an AIP the catalog knows, its v1 renamed by a person investigating
    renamed = location.root / object_key(a)
    (renamed / "v1").rename(renamed / "v1.bak")
    publish(repo)  # the ingest's events signed, as its command would have
    before = sorted(str(p) for p in repo.root.rglob("*"))
    result = json.loads(run(repo.root, "check", "--fix", "--json", check_code=1).stdout)
    assert sorted(str(p) for p in repo.root.rglob("*")) == before  # nothing removed
    named = {f["what"]: f for f in result["findings"]}
    assert not any(f["fixed"] for f in result["findings"])
    for path in (export, repo.staging / "notes.lock", repo.staging / "notes"):
        assert named[str(path)]["kind"] == "foreign"
    key = object_key(str(foreign.name))
    assert named[key]["kind"] == "unrecorded" and "inventory.json" in named[key]["detail"]
    assert named[key + "v001/"]["kind"] == "foreign"
    assert named[object_key(a) + "v1.bak/"]["kind"] == "foreign"


@pytest.mark.storage_left_damaged
def test_stray_entries_in_storage_and_object_roots_are_findings(repo, tmp_path):
    """Cases 04, 11, 22: OCFL allows nothing else there; a missing root declaration is
    written again by --fix, everything else is left for a person."""
    a = ingest(repo, many_small_files(tmp_path / "a", 3), Metadata("c")).aip_id
    root = repo.locations["local"].root
    obj = root / object_key(a)
    (obj / "README.txt").write_text("planted\n")
    (obj / "extra").mkdir()
    (obj / "extra" / "x").write_text("x\n")
    (root / "notes.txt").write_text("n\n")
    (root / "restored-2026" / "data").mkdir(parents=True)
    (root / "abc" / "def" / "012" / "not-an-object").mkdir(parents=True)
    (root / "0=ocfl_1.1").unlink()
    found = {f.what: f for f in check(repo).findings}
    assert {k: f.kind for k, f in found.items()} == {
        object_key(a) + "README.txt": "foreign", object_key(a) + "extra/": "foreign",
        "notes.txt": "foreign", "restored-2026/": "foreign",
        "abc/def/012/not-an-object/": "foreign", "0=ocfl_1.1": "root-file"}
    fixed = check(repo, fix=True)
    assert [f.what for f in fixed.findings if f.fixed] == ["0=ocfl_1.1"]
    assert (root / "0=ocfl_1.1").read_text() == "ocfl_1.1\n" and (obj / "README.txt").exists()
    assert check(repo).status == "inconsistent"


def test_open_multipart_uploads_on_s3_are_found_and_aborted(tmp_path):
    from tests.s3server import S3Server
    from tests.test_replication import _two_copy_repo

    server = S3Server()
    try:
        # a bucket of its own: moto keeps every bucket of the test session in one process
        repo = _two_copy_repo(tmp_path, server, bucket="check-uploads")
        aip = ingest(repo, many_small_files(tmp_path / "s", 5), Metadata("m")).aip_id
        server.client().create_multipart_upload(
            Bucket="check-uploads", Key=f"preserve/{content_key(aip)}data/extra.bin")
        result = check(repo)
        assert _kinds(result) == [("leftover", "cloud")]
        assert check(repo, fix=True).findings[0].fixed
        assert check(repo).status == "consistent"
    finally:
        server.stop()


@pytest.mark.storage_left_damaged
def test_a_stray_file_with_a_non_utf8_name_does_not_stop_check_or_replicate(repo, tmp_path):
    """The listing that audits filter (cases 81, 82) is the one check and replicate use."""
    aip = ingest(repo, many_small_files(tmp_path / "s", 5), Metadata("c")).aip_id
    stray = os.path.join(os.fsencode(stored_bag(repo, aip) / "data"), b"bad\xffname")
    with open(stray, "wb") as f:
        f.write(b"x")
    assert check(repo).status == "consistent"  # what it lacks, not what else is there
