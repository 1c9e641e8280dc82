"""Repair restores damaged replica files from a verified good copy, or says loudly it can't."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from preserve.storage.audit import audit
from preserve.storage.repair import repair
from tests.conftest import content_key, memory_probe, two_disk_repo
from tests.s3server import S3Server


def _second_disk_repo(tmp_path) -> Repository:
    return two_disk_repo(tmp_path)


@pytest.fixture
def two_disks(tmp_path, collection):
    repo = _second_disk_repo(tmp_path)
    aip = ingest(repo, collection, Metadata("r")).aip_id
    key = f"{content_key(aip)}"
    return repo, aip, repo.locations["local"].bag_path(key), repo.locations["disk2"].bag_path(key)


def test_damage_is_repaired_from_the_other_replica_with_events(two_disks):
    repo, aip, bag1, bag2 = two_disks
    good = (bag1 / "data" / "images" / "photo.png").read_bytes()
    (bag1 / "data" / "images" / "photo.png").write_bytes(good[:-1] + b"\x00")   # corrupt
    (bag2 / "data" / "docs" / "notes.txt").unlink()                              # missing
    with open(bag2 / "tagmanifest-sha512.txt", "a") as f:                        # tampered
        f.write("\n")
    result = repair(repo)
    assert sorted((r.location, r.path, r.outcome) for r in result.repairs) == [
        ("disk2", "data/docs/notes.txt", "repaired"),
        ("disk2", "tagmanifest-sha512.txt", "repaired"),
        ("local", "data/images/photo.png", "repaired")]
    assert result.exit_code == 0
    assert (bag1 / "data" / "images" / "photo.png").read_bytes() == good
    # repaired files (payload and tag files alike: each is a content file of the OCFL
    # version, with its own record) are verified on the way back, so no longer due
    assert {s.location: s.oldest == "" for s in repo.catalog.replica_audit_states()} == {
        "local": False, "disk2": False}
    assert audit(repo, due=True).status == "ok"
    assert audit(repo, full=True).status == "ok"
    types = [(e.type, e.outcome) for e in repo.catalog.events(aip)]
    assert ("fixity check", "failure") in types and ("replication", "success") in types
    assert types[-1] == ("fixity check", "success")


@pytest.mark.storage_left_damaged
def test_no_good_copy_is_said_loudly_and_nothing_changes(two_disks):
    repo, aip, bag1, bag2 = two_disks
    for bag in (bag1, bag2):
        (bag / "data" / "docs" / "table.csv").write_text("a,b\n9,9\n")
    before = [(b / "data" / "docs" / "table.csv").read_bytes() for b in (bag1, bag2)]
    result = repair(repo)
    assert {r.outcome for r in result.repairs} == {"no good copy"}
    assert result.exit_code == 1
    assert [(b / "data" / "docs" / "table.csv").read_bytes() for b in (bag1, bag2)] == before


@pytest.mark.storage_left_damaged
def test_unexpected_files_are_reported_not_deleted(two_disks):
    repo, aip, bag1, _ = two_disks
    (bag1 / "data" / "stray.txt").write_text("who put this here?")
    result = repair(repo)
    assert result.repairs == [] and [p.kind for p in result.untouched] == ["unexpected"]
    assert (bag1 / "data" / "stray.txt").exists() and result.exit_code == 1


def test_an_s3_replica_is_repaired_from_the_local_disk(tmp_path, collection):
    server = S3Server()
    try:
        repo, _ = Repository.init(tmp_path / "repo")
        server.client().create_bucket(Bucket="repairs")
        (repo.root / "locations" / "cloud.yaml").write_text(yaml.safe_dump({
            "name": "cloud", "kind": "s3", "bucket": "repairs", "endpoint_url": server.url,
            "region": "us-east-1", "addressing_style": "path"}))
        policy = repo.root / "policies" / "default.yaml"
        data = yaml.safe_load(policy.read_text())
        data["replication"] = {"copies": 2, "locations": ["local", "cloud"]}
        policy.write_text(yaml.safe_dump(data))
        repo = Repository(repo.root)
        aip = ingest(repo, collection, Metadata("r")).aip_id
        key = f"{content_key(aip)}data/docs/report.pdf"
        server.client().put_object(Bucket="repairs", Key=key, Body=b"%PDF-garbage",
                                   ChecksumAlgorithm="SHA256")
        env = dict(os.environ, PRESERVE_REPO=str(repo.root), PRESERVE_NO_PROGRESS="1")
        proc = subprocess.run([sys.executable, "-m", "preserve", "audit", "--repair", "--json"],
                              env=env, capture_output=True, text=True)
        report = json.loads(proc.stdout)
        assert proc.returncode == 0, proc.stderr
        assert [(r["location"], r["path"], r["outcome"]) for r in report["repairs"]] == [
            ("cloud", "data/docs/report.pdf", "repaired")]
        assert audit(repo, full=True).status == "ok"
    finally:
        server.stop()


@pytest.mark.slow
def test_replication_and_export_memory_does_not_grow_with_the_number_of_files(tmp_path):
    """Digests are asked of the catalog file by file and bag files stream from the folder:
    5x the files must not mean more Python memory (the digest map alone took ~660 B a
    file, export's listing and 'seen' set as much again). Measured in a fresh interpreter
    (tests/memory_probe.py says why)."""
    result = memory_probe("replicate-export", tmp_path)
    assert result["exported"] == [1_000, 5_000]
    assert result["replicas"] == [["disk2", "local"]] * 2
    for name in ("replicate", "export"):
        small, big = result[name]
        assert big - small < 1 << 20, (name, result)


@pytest.mark.storage_left_damaged
def test_repair_with_an_unreachable_location_exits_3(two_disks, tmp_path):
    """Red-team case 86: 'NOT REPAIRED unreachable' and exit 0, while audit said 3."""
    from tests.test_cli import run

    repo, aip, bag1, bag2 = two_disks
    (tmp_path / "disk2").rename(tmp_path / "disk2-unplugged")
    assert repair(repo).status == "unreachable"
    for args in (["repair"], ["audit", "--repair"]):
        result = run(repo.root, *args, "--json", check_code=3)
        assert json.loads(result.stdout)["status"] == "unreachable"
    (bag1 / "data" / "docs" / "notes.txt").write_text("damaged")  # damage outranks it
    assert repair(repo).exit_code == 1


def test_stored_files_are_read_only_after_ingest_copies_and_repair(two_disks):
    """Issue 22: stored files stayed writable. Every file of every object (each version's
    content, inventories, sidecars, the storage root's own files) is r--r--r-- on both
    disks, and so is a file repair puts back; folders stay writable by their owner."""
    repo, aip, bag1, bag2 = two_disks
    target = bag1 / "data" / "images" / "photo.png"
    good = target.read_bytes()
    target.write_bytes(good[:-1] + b"\x00")  # root writes whatever the mode says
    assert [r.outcome for r in repair(repo).repairs] == ["repaired"]
    for name in ("local", "disk2"):
        root = repo.locations[name].root
        stored = [os.path.join(d, f) for d, _, fs in os.walk(root)
                  if "preserve-staging" not in d for f in fs]
        assert len(stored) > 10
        assert {oct(os.stat(p).st_mode & 0o777) for p in stored} == {oct(0o444)}, name
        assert os.stat(bag1).st_mode & 0o200  # the owner may still rename and remove
    assert target.read_bytes() == good


def test_a_repair_waits_for_a_writer_of_one_aip_holding_no_other_lock(tmp_path, collection,
                                                                      monkeypatch):
    """Files are restored several at once under their (location, AIP) writer locks, taken
    without waiting; one that another run holds is waited for only once everything in
    flight is done and its locks let go (two runs each holding one lock and waiting for
    the other's would wait for ever). Both AIPs are repaired."""
    import threading

    from preserve.storage import repair as repairing
    from preserve.system.locks import writer_lock

    repo = _second_disk_repo(tmp_path)
    first, second = (ingest(repo, collection, Metadata("r")).aip_id for _ in range(2))
    for aip in (first, second):
        (repo.locations["disk2"].bag_path(content_key(aip)) / "data" / "docs" /
         "notes.txt").unlink()
    order = sorted([first, second])  # the audit's order: the one held comes second
    asked, held_by_other = threading.Event(), threading.Event()
    real = repairing.writer_lock

    def watched(root, location, aip, *, wait=True, catalog=None):
        if wait:  # the fall-back: nothing else may be held by then
            assert not [p for p in repo.staging.iterdir() if p.name.startswith("repair-")]
            asked.set()
        return real(root, location, aip, wait=wait, catalog=catalog)

    def other_run():
        with writer_lock(repo.root, "disk2", order[1]):
            held_by_other.set()
            asked.wait(60)

    holder = threading.Thread(target=other_run)
    holder.start()
    held_by_other.wait(60)
    monkeypatch.setattr(repairing, "writer_lock", watched)
    result = repair(repo)
    holder.join()
    assert asked.is_set()
    assert [(r.aip, r.outcome) for r in result.repairs] == [(order[0], "repaired"),
                                                            (order[1], "repaired")]
    assert audit(repo, full=True).status == "ok"
