"""Audits name the damage: the right kind, on the right replica, at the right path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from preserve.storage.audit import audit
from tests.conftest import content_key, object_key
from tests.s3server import S3Server


@pytest.fixture
def stored(repo, collection):
    result = ingest(repo, collection, Metadata("audit"))
    bag = repo.primary_location().bag_path(f"{content_key(result.aip_id)}")
    return repo, result.aip_id, bag


def kinds(result):
    return sorted((p.kind, p.path) for p in result.problems)


def test_a_healthy_repository_audits_clean_and_is_recorded(stored):
    repo, aip, _ = stored
    for full in (False, True):
        result = audit(repo, full=full)
        assert result.status == "ok" and result.exit_code == 0
        assert result.replicas == 1 and result.files > 10
    assert [e.type for e in repo.catalog.events(aip)].count("fixity check") == 2
    logs = repo.primary_location().root / object_key(aip) / "logs"
    assert len(list(logs.glob("*.xml"))) == 2  # in the object's logs/, no version added
    assert audit(repo).status == "ok"  # event records are not "unexpected" files


@pytest.mark.storage_left_damaged
def test_flipped_bit_is_corrupt_and_found_by_both_audit_kinds(stored):
    repo, aip, bag = stored
    target = bag / "data" / "images" / "photo.png"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    for full in (False, True):
        result = audit(repo, full=full)
        assert kinds(result) == [("corrupt", "data/images/photo.png")]
        assert result.exit_code == 1 and result.problems[0].location == "local"


@pytest.mark.storage_left_damaged
def test_truncated_missing_and_unexpected(stored):
    repo, aip, bag = stored
    with open(bag / "data" / "docs" / "report.pdf", "r+b") as f:
        f.truncate(10)
    (bag / "data" / "docs" / "notes.txt").unlink()
    (bag / "data" / "intruder.exe").write_bytes(b"MZ")
    result = audit(repo)
    assert kinds(result) == [("missing", "data/docs/notes.txt"),
                             ("truncated", "data/docs/report.pdf"),
                             ("unexpected", "data/intruder.exe")]


@pytest.mark.storage_left_damaged
def test_what_ocfl_forbids_at_an_object_root_is_unexpected(stored):
    """Red team 2026-12 cases 04 and 64: stray files and folders at an object's root
    (a README, a folder, a renamed version folder) audited OK."""
    repo, aip, bag = stored
    obj = bag.parents[1]
    (obj / "README.txt").write_text("planted\n")
    (obj / "extra").mkdir()
    (obj / "extra" / "payload.bin").write_bytes(b"x")
    (obj / "v2.old" / "content").mkdir(parents=True)
    for full in (False, True):
        assert kinds(audit(repo, full=full)) == [
            ("unexpected", "/README.txt"), ("unexpected", "/extra/"),
            ("unexpected", "/v2.old/")]


@pytest.mark.storage_left_damaged
@pytest.mark.parametrize("make", ["file", "link"])
def test_a_logs_entry_that_is_no_folder_is_named_and_every_other_aip_audited(
        repo, collection, tmp_path, make):
    """Case 12: logs/ a regular file stopped every audit with an internal error; a link
    out of storage dropped the event record silently (nothing may be written through it)."""
    first = ingest(repo, collection, Metadata("a")).aip_id
    second = ingest(repo, collection, Metadata("b")).aip_id
    logs = repo.primary_location().root / object_key(first) / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    if make == "file":
        logs.write_text("junk\n")
    else:
        logs.symlink_to(outside)
    result = audit(repo)
    assert [(p.aip, p.kind, p.path) for p in result.problems] == [(first, "unexpected", "/logs")]
    assert result.replicas == 2 and result.exit_code == 1 and not list(outside.iterdir())
    kept = repo.primary_location().root / object_key(second) / "logs"
    assert len(list(kept.glob("*.xml"))) == 1  # the other AIP's event is kept as ever


@pytest.mark.storage_left_damaged
def test_tampered_manifest_and_tag_manifest(stored):
    repo, aip, bag = stored
    manifest = bag / "manifest-sha256.txt"
    manifest.write_text(manifest.read_text().replace("data/docs/table.csv", "data/docs/TABLE.csv"))
    result = audit(repo, full=True)
    assert ("corrupt", "manifest-sha256.txt") in kinds(result)
    tagmanifest = bag / "tagmanifest-sha512.txt"
    lines = tagmanifest.read_text().splitlines()
    tagmanifest.write_text("\n".join(lines[:-1]) + "\n")  # drop a line: package digest breaks
    result = audit(repo)
    assert ("truncated", "tagmanifest-sha512.txt") in kinds(result)  # a size other than recorded


@pytest.mark.storage_left_damaged
def test_a_bag_replaced_wholesale_is_caught_by_the_package_digest(stored, tmp_path):
    repo, aip, bag = stored
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("an impostor")
    impostor = ingest(repo, other, Metadata("x"))
    impostor_bag = repo.primary_location().bag_path(
        f"{content_key(impostor.aip_id)}")
    shutil.rmtree(bag)
    shutil.copytree(impostor_bag, bag)  # self-consistent bag, wrong content
    result = audit(repo, aips=[aip], full=True)
    assert any(path == "tagmanifest-sha512.txt" for _, path in kinds(result))
    assert any(k == "missing" for k, _ in kinds(result))


def _cloud_repo(tmp_path, server) -> Repository:
    repo, _ = Repository.init(tmp_path / "repo")
    server.client().create_bucket(Bucket="audit")
    (repo.root / "locations" / "cloud.yaml").write_text(yaml.safe_dump({
        "name": "cloud", "kind": "s3", "bucket": "audit", "endpoint_url": server.url,
        "region": "us-east-1", "addressing_style": "path", "max_attempts": 2}))
    policy = repo.root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"] = {"copies": 2, "locations": ["local", "cloud"]}
    policy.write_text(yaml.safe_dump(data))
    return Repository(repo.root)


def test_damage_on_an_s3_replica_is_named_on_that_replica(tmp_path, collection):
    server = S3Server()
    try:
        repo = _cloud_repo(tmp_path, server)
        aip = ingest(repo, collection, Metadata("c")).aip_id
        key = f"{content_key(aip)}"
        client = server.client()
        client.put_object(Bucket="audit", Key=key + "data/docs/notes.txt",
                          Body=b"Field notes, 1924.\n", ChecksumAlgorithm="SHA256")
        client.delete_object(Bucket="audit", Key=key + "data/images/photo.png")
        client.put_object(Bucket="audit", Key=key + "data/extra.bin", Body=b"x")
        for full in (False, True):
            result = audit(repo, full=full)
            found = sorted((p.location, p.kind, p.path) for p in result.problems)
            assert found == [("cloud", "corrupt", "data/docs/notes.txt"),
                             ("cloud", "missing", "data/images/photo.png"),
                             ("cloud", "unexpected", "data/extra.bin")], full
        server.stop()
        result = audit(repo)
        assert result.status == "unreachable" and result.exit_code == 3
        assert [(p.location, p.kind) for p in result.problems] == [("cloud", "unreachable")]
    finally:
        server.stop()


@pytest.mark.storage_left_damaged
def test_cli_json_contract_and_exit_codes(stored):
    repo, aip, bag = stored
    env = dict(os.environ, PRESERVE_REPO=str(repo.root), PRESERVE_NO_PROGRESS="1")
    cmd = [sys.executable, "-m", "preserve", "audit", "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "ok"
    (bag / "data" / "docs" / "table.csv").write_text("a,b\n1,3\n")
    proc = subprocess.run(cmd + ["--full"], env=env, capture_output=True, text=True)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["status"] == "damaged"
    assert report["problems"] == [{"aip": aip, "version": 1, "location": "local",
                                   "path": "data/docs/table.csv", "kind": "corrupt",
                                   "detail": report["problems"][0]["detail"]}]


def test_a_link_planted_in_storage_is_reported_and_never_followed(stored, tmp_path):
    repo, aip, bag = stored
    target = bag / "data" / "docs" / "notes.txt"
    outside = tmp_path / "outside.txt"
    outside.write_bytes(target.read_bytes())  # same bytes: only not following tells them apart
    target.unlink()
    target.symlink_to(outside)
    result = audit(repo, full=True)
    assert [(p.kind, p.path) for p in result.problems] in (
        [("truncated", "data/docs/notes.txt")], [("read-error", "data/docs/notes.txt")])


@pytest.mark.storage_left_damaged
def test_a_stray_file_with_a_non_utf8_name_is_reported_not_fatal(repo, tmp_path):
    """Case 81: one such name in a stored AIP crashed the whole audit (exit 3, no report)."""
    import os

    from preserve.ingest.ingest import Metadata, ingest
    from preserve.storage.audit import audit
    from tests.conftest import stored_bag

    src = tmp_path / "s"
    src.mkdir()
    (src / "a.txt").write_text("a")
    aip = ingest(repo, src, Metadata("c")).aip_id
    stray = os.path.join(os.fsencode(stored_bag(repo, aip) / "data"), b"bad\xffname")
    with open(stray, "wb") as f:
        f.write(b"x")
    for full in (False, True):
        found = audit(repo, full=full)
        assert [(p.path, p.kind) for p in found.problems] == [("data/bad\\udcffname",
                                                               "unexpected")]
        assert found.exit_code == 1
