"""Media refresh (issue 25): `storage migrate FROM TO [--retire]` moves every AIP copy off a
location, verified at TO before anything at FROM is touched, and never leaves an AIP with
fewer verified copies than policy asks, even when killed at any moment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from preserve.data.describe import Description, describe
from preserve.domain import ocfl
from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from preserve.storage.audit import audit
from preserve.storage.history import publish
from tests.conftest import two_disk_repo
from tests.s3server import S3Server
from tests.test_cli import run


def _set_policy(root, locations: list[str], copies: int = 2) -> None:
    policy = root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"] = {"copies": copies, "locations": locations}
    policy.write_text(yaml.safe_dump(data))


def _add_disk(root, name: str, path, media: str = "hard disk") -> None:
    path.mkdir(exist_ok=True)
    (root / "locations" / f"{name}.yaml").write_text(yaml.safe_dump(
        {"name": name, "kind": "local", "path": str(path), "media": media}))


def _two_versions(tmp_path, collection, n: int = 3) -> tuple[Repository, list[str]]:
    """`n` AIPs at "local" and "disk2", each with a second version (a description)."""
    repo = two_disk_repo(tmp_path)
    disk2 = repo.root / "locations" / "disk2.yaml"
    disk2.write_text(yaml.safe_dump({**yaml.safe_load(disk2.read_text()), "media": "hard disk"}))
    aips = []
    for i in range(n):
        aip = ingest(repo, collection, Metadata(f"c{i % 2}", title=f"Box {i}")).aip_id
        describe(repo, aip, Description(title=f"Box {i}, described"))
        aips.append(aip)
    publish(repo)
    repo.close()
    return repo, aips


def _objects(folder) -> list:
    """The OCFL objects (their declarations) under a storage root."""
    return sorted(p.parent for p in folder.rglob("0=ocfl_object_1.1"))


def _verified_copies(root) -> dict[tuple[str, int], int]:
    """Per AIP version, the copies a full audit finds whole (what 'verified' means)."""
    repo = Repository(root)
    try:
        found = audit(repo, full=True)
        bad = {(p.aip, p.version, p.location) for p in found.problems if p.kind != "stale"}
        out: dict[tuple[str, int], int] = {}
        for aip, version, location, _key in repo.catalog.replicas():
            if (aip, version, location) not in bad and location in repo.locations:
                out[(aip, version)] = out.get((aip, version), 0) + 1
        for a in repo.catalog.list_aips():
            for v in range(1, a.version + 1):
                out.setdefault((a.id, v), 0)
        return out
    finally:
        repo.close()


def test_a_disk_is_emptied_onto_another_verified_first_then_retired(tmp_path, collection):
    repo, aips = _two_versions(tmp_path, collection)
    _add_disk(repo.root, "disk3", tmp_path / "disk3")
    # while the policy still sends copies to disk2, retiring it is refused, nothing moved
    refused = run(repo.root, "storage", "migrate", "disk2", "disk3", "--retire", check_code=2)
    assert "still copies every AIP to 'disk2'" in refused.stderr and "disk3" in refused.stderr
    assert _objects(tmp_path / "disk3") == []
    _set_policy(repo.root, ["local", "disk3"])

    planned = json.loads(run(repo.root, "storage", "migrate", "disk2", "disk3", "--plan",
                             "--json").stdout)
    assert (planned["aips"], planned["versions"], planned["plan"]) == (3, 6, True)
    assert planned["bytes_to_copy"] == planned["bytes"] > 0
    assert planned["read_rate"] > 0 and planned["estimate_seconds"] is not None
    assert _objects(tmp_path / "disk3") == []  # a plan writes nothing

    done = json.loads(run(repo.root, "storage", "migrate", "disk2", "disk3", "--retire",
                          "--json").stdout)
    assert (done["copied"], done["verified"], done["retired"]) == (6, 3, 3)
    assert done["location_retired"] and done["exit_code"] == 0
    assert _objects(tmp_path / "disk2") == [] and len(_objects(tmp_path / "disk3")) == 3
    kept = yaml.safe_load((repo.root / "locations" / "disk2.yaml").read_text())
    assert kept["retired"] and kept["retired_to"] == "disk3"

    repo = Repository(repo.root)
    assert "disk2" not in repo.locations and "disk2" in repo.retired
    for aip in aips:
        assert repo.catalog.replica_locations(aip, 1) == ["disk3", "local"]
        assert repo.catalog.replica_locations(aip, 2) == ["disk3", "local"]
        kinds = [(e.type, e.outcome) for e in repo.catalog.events(aip)]
        # the same medium ("hard disk" both): a refreshment; then the copy at disk2 deleted
        assert ("refreshment", "success") in kinds and ("deletion", "success") in kinds
        assert kinds.index(("refreshment", "success")) < kinds.index(("deletion", "success"))
    repo.close()
    assert set(_verified_copies(repo.root).values()) == {2}
    run(repo.root, "check")
    run(repo.root, "log", "verify")
    # the catalog rebuilt from storage alone is the same: the retirement is in the log
    rebuilt = json.loads(run(repo.root, "catalog", "rebuild", "--replace", "--json").stdout)
    assert json.loads(run(repo.root, "catalog", "diff", rebuilt["aside"], "--json").stdout)[
        "same"]
    # a retired location is named as such where people would name it again
    again = run(repo.root, "storage", "migrate", "disk2", "disk3", check_code=2)
    assert "retired on" in again.stderr
    listed = run(repo.root, "storage", "list").stdout
    assert "disk2" in listed and "retired" in listed


@pytest.mark.storage_left_damaged  # a file at the target rots on purpose
def test_a_copy_that_fails_its_audit_at_the_target_keeps_the_source(tmp_path, collection):
    repo, aips = _two_versions(tmp_path, collection, n=2)
    _add_disk(repo.root, "disk3", tmp_path / "disk3", media="ssd")
    _set_policy(repo.root, ["local", "disk3"])
    repo = Repository(repo.root)
    from preserve.storage.replicate import replicate

    assert replicate(repo, to="disk3").complete  # disk3 already holds copies...
    repo.close()
    victim = sorted((tmp_path / "disk3").rglob("*.txt"))[0]  # ... one of which then rots,
    victim.chmod(0o644)                                       # its size unchanged
    rotten = bytearray(victim.read_bytes())
    rotten[0] ^= 0x20
    victim.write_bytes(bytes(rotten))
    damaged = next(a for a in aips if ocfl.object_root(a).rstrip("/") in str(victim))

    done = json.loads(run(repo.root, "storage", "migrate", "disk2", "disk3", "--retire",
                          "--json", check_code=1).stdout)
    moves = {m["aip"]: m for m in done["moves"]}
    assert not moves[damaged]["verified"] and not moves[damaged]["retired"]
    assert "did not pass its audit" in moves[damaged]["problem"]
    other = next(a for a in aips if a != damaged)
    assert moves[other]["retired"]
    assert not done["location_retired"]
    assert len(_objects(tmp_path / "disk2")) == 1  # the damaged AIP's copy stays at disk2
    assert "disk2" in Repository(repo.root).catalog.replica_locations(damaged, 2)
    shown = run(repo.root, "storage", "migrate", "disk2", "disk3", "--retire",
                check_code=1).stdout
    assert f"kept AIP {damaged}" in shown and "not retired" in shown


def test_refusals_name_what_to_do(tmp_path, collection):
    repo, _ = _two_versions(tmp_path, collection, n=1)
    for args, said in ((["disk2", "disk2"], "both 'disk2'"), (["disk2", "nowhere"],
                       "no location 'nowhere'"), (["gone", "disk2"], "no location 'gone'")):
        refused = run(repo.root, "storage", "migrate", *args, check_code=2)
        assert said in refused.stderr and "Traceback" not in refused.stderr


def test_a_disk_is_emptied_onto_an_object_store(tmp_path, collection):
    server = S3Server()
    try:
        repo, aips = _two_versions(tmp_path, collection, n=2)
        server.client().create_bucket(Bucket="refresh")
        (repo.root / "locations" / "cloud.yaml").write_text(yaml.safe_dump({
            "name": "cloud", "kind": "s3", "bucket": "refresh", "prefix": "p",
            "endpoint_url": server.url, "region": "us-east-1", "addressing_style": "path",
            "max_attempts": 2}))
        _set_policy(repo.root, ["local", "cloud"])
        done = json.loads(run(repo.root, "storage", "migrate", "disk2", "cloud", "--retire",
                              "--json").stdout)
        assert (done["copied"], done["retired"], done["location_retired"]) == (4, 2, True)
        assert _objects(tmp_path / "disk2") == []
        repo = Repository(repo.root)
        for aip in aips:
            assert repo.catalog.replica_locations(aip, 2) == ["cloud", "local"]
            assert ("replication", "success") in [(e.type, e.outcome)
                                                   for e in repo.catalog.events(aip)]
        repo.close()
        assert set(_verified_copies(repo.root).values()) == {2}
    finally:
        server.stop()


# -- killed at any moment: never fewer verified copies than policy asks ------------------------

KILL_POINTS = [("preserve.storage.replicate:copy_version", n) for n in (1, 2, 4)] + [
    ("preserve.stores.local:LocalStorage.publish_bag", 3),
    ("preserve.storage.media_migration:_verify", 1),
    ("preserve.storage.audit:audit", 1),
    ("preserve.storage.media_migration:_retire_copy", 2),
    ("preserve.stores.local:LocalStorage.delete_prefix", 1),
    ("preserve.stores.local:LocalStorage.remove_empty_folders", 2),
    ("preserve.catalog:Catalog.remove_replicas", 1),
    ("preserve.catalog:Catalog.remove_replicas", 3),
    ("preserve.storage.object_log:write_document", 2),
    ("preserve.storage.media_migration:_retire_location", 1)]


@pytest.mark.slow
@pytest.mark.parametrize("target,nth", KILL_POINTS,
                         ids=[f"{t.rsplit(':', 1)[-1]}-{n}" for t, n in KILL_POINTS])
def test_a_migration_killed_at_any_moment_keeps_policy_copies_and_finishes_when_run_again(
        tmp_path, collection, target, nth):
    repo, aips = _two_versions(tmp_path, collection, n=3)
    _add_disk(repo.root, "disk3", tmp_path / "disk3")
    _set_policy(repo.root, ["local", "disk3"])
    env = dict(os.environ, PRESERVE_REPO=str(repo.root), PRESERVE_NO_PROGRESS="1")
    killed = subprocess.run([sys.executable, "-m", "tests.killer", target, str(nth), "storage",
                             "migrate", "disk2", "disk3", "--retire"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode in (-9, 0), killed.stderr
    # every AIP version still has the two verified copies policy asks for
    assert min(_verified_copies(repo.root).values()) >= 2
    done = json.loads(run(repo.root, "storage", "migrate", "disk2", "disk3", "--retire",
                          "--json").stdout)
    assert done["exit_code"] == 0 and done["location_retired"]
    assert _objects(tmp_path / "disk2") == []
    assert set(_verified_copies(repo.root).values()) == {2}
    run(repo.root, "check")
    run(repo.root, "log", "verify")
    repo = Repository(repo.root)
    for aip in aips:
        assert [e.type for e in repo.catalog.events(aip)].count("deletion") >= 1
    repo.close()


def test_an_event_recorded_but_its_document_not_yet_written_is_written_by_the_next_run(
        tmp_path, collection):
    """A kill between the catalog and the store (any event: here an audit's) left an event
    whose logs/ document was missing for good; its intent in staging now completes it."""
    repo, _ = _two_versions(tmp_path, collection, n=1)
    env = dict(os.environ, PRESERVE_REPO=str(repo.root), PRESERVE_NO_PROGRESS="1")
    killed = subprocess.run([sys.executable, "-m", "tests.killer",
                             "preserve.storage.object_log:write_document", "1", "audit"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    found = json.loads(run(repo.root, "check", "--json", check_code=1).stdout)["findings"]
    assert [f["kind"] for f in found] == ["unwritten-record"]
    fixed = json.loads(run(repo.root, "check", "--fix", "--json", check_code=None).stdout)
    assert [f["fixed"] for f in fixed["findings"]] == [True]
    run(repo.root, "check")
    run(repo.root, "log", "verify")
    assert not list((repo.root / "staging").glob("logdoc-*"))


def test_a_queued_migration_moves_each_aip_as_a_job_and_the_last_retires_the_location(
        tmp_path, collection, fresh_database):
    repo = two_disk_repo(tmp_path, fresh_database)
    aips = [ingest(repo, collection, Metadata("c", title=f"Box {n}")).aip_id for n in range(2)]
    repo.close()
    _add_disk(repo.root, "disk3", tmp_path / "disk3")
    _set_policy(repo.root, ["local", "disk3"])
    queued = json.loads(run(repo.root, "storage", "migrate", "disk2", "disk3", "--retire",
                            "--queue", "--json").stdout)
    assert queued["task"] == "storage-migrate" and len(queued["jobs"]) == 2
    assert _objects(tmp_path / "disk3") == []  # nothing done before a worker takes them
    run(repo.root, "worker", "--once")
    jobs = [j for j in json.loads(run(repo.root, "jobs", "--json").stdout)
            if j["task"] == "storage-migrate"]
    assert sorted(j["status"] for j in jobs) == ["succeeded", "succeeded"], jobs
    assert _objects(tmp_path / "disk2") == [] and len(_objects(tmp_path / "disk3")) == 2
    assert yaml.safe_load((repo.root / "locations" / "disk2.yaml").read_text())["retired"]
    repo = Repository(repo.root)
    for aip in aips:
        assert repo.catalog.replica_locations(aip, 1) == ["disk3", "local"]
    repo.close()
