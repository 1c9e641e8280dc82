"""Replicas on an S3-compatible store: written at ingest and by `replicate`, each verified;
an outage leaves nothing half-registered, and a re-run completes the job."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from preserve.access.export import export
from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from preserve.storage.replicate import replicate
from preserve.stores.s3 import S3Storage
from tests.conftest import assert_bagit_python_valid, content_key
from tests.s3server import S3Server


@pytest.fixture
def server():
    s = S3Server()
    yield s
    s.stop()


def _two_copy_repo(tmp_path, server: S3Server, bucket="archive", copies=2,
                   catalog: str | None = None, **settings) -> Repository:
    repo, _ = Repository.init(tmp_path / "repo", catalog)
    repo.close()
    server.client().create_bucket(Bucket=bucket)
    (repo.root / "locations" / "cloud.yaml").write_text(yaml.safe_dump({
        "name": "cloud", "kind": "s3", "bucket": bucket, "prefix": "preserve",
        "endpoint_url": server.url, "region": "us-east-1", "addressing_style": "path",
        "max_attempts": 2, **settings}))
    policy = repo.root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"] = {"copies": copies, "locations": ["local", "cloud"]}
    policy.write_text(yaml.safe_dump(data))
    return Repository(repo.root)


def _keys(server, bucket="archive"):
    return sorted(o["Key"] for o in server.client().list_objects(Bucket=bucket).get("Contents", []))


def test_ingest_writes_every_replica_and_each_is_verified(tmp_path, server, collection):
    repo = _two_copy_repo(tmp_path, server)
    result = ingest(repo, collection, Metadata("c"))
    assert result.replicas == ["local", "cloud"] and result.replication_problems == []
    assert repo.catalog.replica_locations(result.aip_id, 1) == ["cloud", "local"]
    keys = _keys(server)
    prefix = f"preserve/{content_key(result.aip_id)}"
    assert f"{prefix}tagmanifest-sha512.txt" in keys
    assert f"{prefix}data/images/photo.png" in keys
    # the cloud copy exports as a valid bag, verified byte for byte
    dest = tmp_path / "from-cloud"
    export(repo, result.aip_id, dest, location="cloud")
    assert_bagit_python_valid(dest)


def test_an_outage_mid_replication_registers_nothing_and_replicate_finishes(
        tmp_path, collection, monkeypatch):
    first = S3Server()
    repo = _two_copy_repo(tmp_path, first)
    uploads = []
    real_put = S3Storage.put_file

    def flaky_put(self, key, *args):
        uploads.append(key)
        if len(uploads) == 4:
            first.stop()  # the store goes away in the middle of the bag
        return real_put(self, key, *args)

    monkeypatch.setattr(S3Storage, "put_file", flaky_put)
    result = ingest(repo, collection, Metadata("c"))
    monkeypatch.undo()
    assert result.replicas == ["local"]
    assert result.replication_problems and "cloud" in result.replication_problems[0]
    assert repo.catalog.replica_locations(result.aip_id, 1) == ["local"]  # nothing half-done

    second = S3Server(port=first.port)  # the store is back (empty, as after a restore)
    try:
        second.client().create_bucket(Bucket="archive")
        done = replicate(repo)
        assert done.complete and [c[2] for c in done.copied] == ["cloud"]
        assert repo.catalog.replica_locations(result.aip_id, 1) == ["cloud", "local"]
        assert replicate(repo).copied == []  # nothing left to do: resumable, idempotent
    finally:
        second.stop()


def test_replicate_clears_a_partial_upload_before_copying(tmp_path, server, collection):
    repo = _two_copy_repo(tmp_path, server, copies=1)  # "cloud" defined, not yet in use
    result = ingest(repo, collection, Metadata("c"))
    prefix = f"preserve/{content_key(result.aip_id)}"
    server.client().put_object(Bucket="archive", Key=prefix + "data/stray-partial", Body=b"x")
    done = replicate(repo, to="cloud")
    assert done.complete
    assert prefix + "data/stray-partial" not in _keys(server)


@pytest.mark.storage_left_damaged
def test_a_corrupt_local_source_is_not_replicated(tmp_path, server, collection):
    repo = _two_copy_repo(tmp_path, server, copies=1)  # "cloud" defined, not yet in use
    result = ingest(repo, collection, Metadata("c"))
    bag = repo.primary_location().bag_path(f"{content_key(result.aip_id)}")
    (bag / "data" / "docs" / "notes.txt").write_text("Field notes, 1924.\n")  # bit rot
    done = replicate(repo, to="cloud")
    assert not done.complete and "notes.txt" in done.failed[0][3]
    assert repo.catalog.replica_locations(result.aip_id, 1) == ["local"]


def test_unreachable_location_is_exit_3_and_named(tmp_path, collection):
    server = S3Server()
    repo = _two_copy_repo(tmp_path, server)
    server.stop()
    env = dict(os.environ, PRESERVE_REPO=str(repo.root), PRESERVE_NO_PROGRESS="1")
    run = [sys.executable, "-m", "preserve"]
    proc = subprocess.run(run + ["ingest", str(collection), "-c", "c"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 3 and "preserve replicate" in proc.stderr
    assert "Traceback" not in proc.stderr
    listed = json.loads(subprocess.run(run + ["list", "--json"], env=env, capture_output=True,
                                       text=True).stdout)
    assert listed[0]["locations"] == ["local"]
    proc = subprocess.run(run + ["storage", "list", "--json"], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 3
    statuses = {s["name"]: s for s in json.loads(proc.stdout)}
    assert statuses["cloud"]["reachable"] is False and statuses["local"]["reachable"] is True
    assert "testing" not in proc.stdout + proc.stderr  # no credential ever printed


def test_storage_add_and_check_round_trip(tmp_path, server):
    repo, _ = Repository.init(tmp_path / "repo")
    server.client().create_bucket(Bucket="probe")
    env = dict(os.environ, PRESERVE_REPO=str(repo.root), PRESERVE_NO_PROGRESS="1")
    run = [sys.executable, "-m", "preserve"]
    proc = subprocess.run(run + ["storage", "add", "offsite", "s3://probe/archive",
                                 "--endpoint-url", server.url, "--region", "us-east-1",
                                 "--addressing-style", "path"], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    written = (repo.root / "locations" / "offsite.yaml").read_text()
    assert "bucket: probe" in written and "secret" not in written.replace(
        "credentials are never written", "")
    proc = subprocess.run(run + ["storage", "check", "offsite", "--json"], env=env,
                          capture_output=True, text=True)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"]
    assert [s["step"] for s in report["steps"]] == ["write", "read", "delete"]
    assert _keys(server, "probe") == []
    proc = subprocess.run(run + ["storage", "add", "offsite", "/tmp/x"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "already exists" in proc.stderr


def _spawn(repo_root, *args) -> subprocess.Popen:
    env = dict(os.environ, PRESERVE_REPO=str(repo_root), PRESERVE_NO_PROGRESS="1")
    return subprocess.Popen([sys.executable, "-m", "preserve", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0.3, 0.8, 1.5])
def test_two_replicates_at_once_one_killed_never_leave_a_partial_replica_recorded(
        tmp_path, server, kill_after):
    """Case 56: the survivor said 'copied (verified)' and exited 0 with 158 of 311 objects
    gone: the other run's clean-up had deleted them. Writers now take the (AIP, location)
    lock, and what is there at the end is checked before the replica is recorded."""
    import time

    from tests.conftest import many_small_files

    repo = _two_copy_repo(tmp_path, server, copies=1)
    source = many_small_files(tmp_path / "src", 300)
    aip = ingest(repo, source, Metadata("c")).aip_id
    policy = repo.root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"]["copies"] = 2
    policy.write_text(yaml.safe_dump(data))
    first = _spawn(repo.root, "replicate")
    time.sleep(kill_after / 2)
    second = _spawn(repo.root, "replicate")
    time.sleep(kill_after)
    second.kill()
    second.wait()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    audit = subprocess.run([sys.executable, "-m", "preserve", "audit", "--full", "--location",
                            "cloud", "--json"], capture_output=True, text=True,
                           env=dict(os.environ, PRESERVE_REPO=str(repo.root)))
    report = json.loads(audit.stdout)
    assert audit.returncode == 0 and report["problems"] == [], report["problems"][:3]
    assert Repository(repo.root).catalog.replica_locations(aip, 1) == ["cloud", "local"]


@pytest.mark.parametrize("url", ["s3://archive/preserve", "s3://archive/preserve/", "s3://archive",
                                 "s3://archive/preserve/inner"])
def test_a_second_location_on_the_same_bucket_and_prefix_is_refused(tmp_path, server, url):
    """Case 84: it counted as a third copy where two existed."""
    from tests.test_cli import run

    repo = _two_copy_repo(tmp_path, server)
    result = run(repo.root, "storage", "add", "cloud2", url, "--endpoint-url", server.url,
                 "--region", "us-east-1", check_code=2)
    assert "one copy would count as two" in result.stderr
    assert not (repo.root / "locations" / "cloud2.yaml").exists()
    run(repo.root, "storage", "add", "cloud3", "s3://archive/elsewhere", "--endpoint-url",
        server.url, "--region", "us-east-1")


def test_a_second_local_location_on_the_same_or_an_inner_folder_is_refused(tmp_path):
    from tests.test_cli import run

    repo, _ = Repository.init(tmp_path / "repo")
    disk = tmp_path / "disk2"
    disk.mkdir()
    (tmp_path / "alias").symlink_to(disk)
    run(repo.root, "storage", "add", "disk2", disk)
    for i, path in enumerate([tmp_path / "alias", disk / "inner", repo.root / "aips" / "x"]):
        result = run(repo.root, "storage", "add", f"again{i}", path, check_code=2)
        assert "one copy would count as two" in result.stderr


def _replace_by_multipart(server, key: str, body: bytes, bucket="archive") -> None:
    client = server.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")
    part = client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                              Body=body, ChecksumAlgorithm="SHA256")
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"],
                                    "ChecksumSHA256": part["ChecksumSHA256"]}]})


@pytest.mark.parametrize("threshold", ["8 MiB", None])
def test_the_quick_audit_catches_an_object_replaced_by_a_same_size_upload(tmp_path, server,
                                                                          threshold):
    """Case 83: a same-size multipart upload over an object preserve wrote passed the quick
    S3 audit (any composite checksum was taken as good). With a threshold of 8 MiB the big
    file goes in parts (its composite recorded); under the default, in one request."""
    import random

    source = tmp_path / "src"
    source.mkdir()
    (source / "small.txt").write_bytes(b"0123456789")
    big = random.Random(5).randbytes(9 << 20)
    (source / "big.bin").write_bytes(big)
    repo = _two_copy_repo(tmp_path, server, **(
        {"multipart_threshold": threshold} if threshold else {}))
    aip = ingest(repo, source, Metadata("c")).aip_id
    composites = repo.catalog.execute("SELECT path FROM composite_checksums").fetchall()
    assert [tuple(row) for row in composites] == ([("data/big.bin",)] if threshold else [])
    quick = __import__("preserve.storage.audit", fromlist=["audit"]).audit
    assert quick(repo, location="cloud").problems == []  # the recorded composite matches
    prefix = f"preserve/{content_key(aip)}data/"
    _replace_by_multipart(server, prefix + "small.txt", b"X" * 10)
    _replace_by_multipart(server, prefix + "big.bin", big[:-1] + b"\0")
    found = quick(repo, location="cloud")
    assert sorted((p.path, p.kind) for p in found.problems) == [
        ("data/big.bin", "corrupt"), ("data/small.txt", "corrupt")]
    assert found.exit_code == 1
    if threshold is None:  # a replica from before composites were recorded: a composite
        with repo.catalog.transaction() as db:  # over 8 MiB was preserve's own then
            db.execute("UPDATE replicas SET stored = '2026-11-20T00:00:00Z'")
        assert [(p.path, p.kind) for p in quick(repo, location="cloud").problems] == [
            ("data/small.txt", "corrupt")]


def test_a_foreign_key_escaping_bytes_that_are_not_utf8_is_reported_not_fatal(tmp_path, server):
    """Case 82: an object '.../v1/data/evil%FF.txt' written by something else crashed audit
    and repair for every AIP."""
    from preserve.storage.audit import audit
    from preserve.storage.repair import repair

    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a")
    repo = _two_copy_repo(tmp_path, server)
    aip = ingest(repo, source, Metadata("c")).aip_id
    server.client().put_object(Bucket="archive", Body=b"x",
                               Key=f"preserve/{content_key(aip)}data/evil%FF.txt")
    for found in (audit(repo, location="cloud"), audit(repo, location="cloud", full=True)):
        assert [(p.path, p.kind) for p in found.problems] == [("data/evil\\udcff.txt",
                                                               "unexpected")]
    assert repair(repo).exit_code == 1  # reported, not repaired, nothing crashed


@pytest.mark.storage_left_damaged
def test_the_quick_audit_reads_inventories_the_store_cannot_check(tmp_path, server, collection):
    """Red team 2026-12 case 63: inventories and sidecars are recorded by sha512 only, and
    the quick S3 audit passed them unread; a rewritten root inventory and its recomputed
    sidecar, put with the store's own SHA-256, went unseen."""
    import hashlib

    from preserve.storage.audit import audit

    repo = _two_copy_repo(tmp_path, server)
    aip = ingest(repo, collection, Metadata("c")).aip_id
    assert audit(repo, location="cloud").problems == []
    client, root = server.client(), f"preserve/{content_key(aip).split('v1/')[0]}"
    data = client.get_object(Bucket="archive", Key=root + "inventory.json")["Body"].read()
    forged = data.replace(b'"data/', b'"data/forged-', 1)
    assert forged != data
    for key, body in ((root + "inventory.json", forged), (root + "inventory.json.sha512",
                      hashlib.sha512(forged).hexdigest().encode() + b"  inventory.json\n")):
        client.put_object(Bucket="archive", Key=key, Body=body, ChecksumAlgorithm="SHA256")
    found = audit(repo, location="cloud")
    assert sorted(p.path for p in found.problems) == ["/inventory.json", "/inventory.json.sha512"]
    assert found.exit_code == 1
    assert audit(repo, location="cloud", due=True).exit_code == 1


def _without_credentials() -> dict:
    """The environment of a cron job that was given no AWS credentials at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return dict(env, AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
                AWS_EC2_METADATA_DISABLED="true", PRESERVE_NO_PROGRESS="1")


def test_no_credentials_make_that_location_unreachable_and_the_others_are_served(
        tmp_path, server, collection):
    """Issue 22: without AWS variables every command stopped with 'internal error:
    NoCredentialsError', the local audit lost with it, an ingest's id never printed."""
    repo = _two_copy_repo(tmp_path, server)
    aip = ingest(repo, collection, Metadata("c")).aip_id
    env = dict(_without_credentials(), PRESERVE_REPO=str(repo.root))

    def preserve(*args):
        done = subprocess.run([sys.executable, "-m", "preserve", *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr
        return done

    done = preserve("audit", "--json")
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "unreachable" and report["replicas"] >= 1
    assert "no usable credentials" in done.stdout + done.stderr
    assert "AWS_ACCESS_KEY_ID" in done.stdout + done.stderr
    for args in (["storage", "list"], ["check"], ["replicate"]):
        done = preserve(*args)
        assert done.returncode == 3, (args, done.stdout, done.stderr)
    assert preserve("export", aip, tmp_path / "out", "--location", "local").returncode == 0
    second = tmp_path / "second"
    second.mkdir()
    (second / "b.txt").write_text("b\n")
    done = preserve("ingest", second, "-c", "c", "--json")
    assert done.returncode == 3 and json.loads(done.stdout)["id"]


@pytest.mark.slow
def test_a_stalled_endpoint_is_called_unreachable_in_seconds(tmp_path, server, collection):
    """Issue 22: a store that accepts connections and never answers kept audit running
    for 8 minutes with no output, storage check 2.5 minutes. Timeouts are per location;
    the first failure marks the location unreachable for the rest of the run."""
    import socket
    import time

    repo = _two_copy_repo(tmp_path, server)
    ingest(repo, collection, Metadata("c"))
    ingest(repo, collection, Metadata("d"))
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(64)  # connections complete in the kernel; nothing ever answers
    try:
        location = repo.root / "locations" / "cloud.yaml"
        data = yaml.safe_load(location.read_text())
        data.update(endpoint_url=f"http://127.0.0.1:{stalled.getsockname()[1]}",
                    connect_timeout=1, read_timeout=2, max_attempts=1)
        location.write_text(yaml.safe_dump(data))
        env = dict(os.environ, PRESERVE_REPO=str(repo.root), PRESERVE_NO_PROGRESS="1")
        said = {}
        for args, code in ((["audit", "--json"], 3), (["check"], 3), (["storage", "list"], 3)):
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "preserve", *args], env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == code, (args, done.stdout, done.stderr)
            assert time.monotonic() - started < 60, args
            assert "internal error" not in done.stderr
            said[args[0]] = done.stdout
        report = json.loads(said["audit"])
        assert {p["location"] for p in report["problems"]} == {"cloud"}
        assert all(p["kind"] == "unreachable" for p in report["problems"])
    finally:
        stalled.close()


def test_a_store_that_lost_everything_is_repaired_with_its_storage_root(
        tmp_path, server, collection):
    """Issue 22: after a bucket was emptied and re-created, repair restored every object
    file but not the storage root's own files; audit and check said nothing, and every
    later copy to that location failed."""
    from preserve.storage.audit import audit
    from preserve.storage.check import check
    from preserve.storage.repair import repair

    repo = _two_copy_repo(tmp_path, server, bucket="lost")
    ingest(repo, collection, Metadata("c"))
    client = server.client()
    for key in _keys(server, "lost"):
        client.delete_object(Bucket="lost", Key=key)
    client.delete_bucket(Bucket="lost")
    client.create_bucket(Bucket="lost")
    assert audit(repo, location="cloud").exit_code == 1
    done = repair(repo)
    assert done.exit_code == 0, done.to_dict()
    restored = {r.path for r in done.repairs if r.kind == "storage-root"}
    assert restored == {"0=ocfl_1.1", "ocfl_layout.json",
                        "extensions/0003-hash-and-id-n-tuple-storage-layout/config.json"}
    assert audit(repo, location="cloud").exit_code == 0
    assert check(repo).status == "consistent"
    # the storage root's declaration alone gone: audit names it, repair writes it
    client.delete_object(Bucket="lost", Key="preserve/0=ocfl_1.1")
    found = audit(repo, location="cloud")
    assert [(p.kind, p.path) for p in found.problems] == [("storage-root", "0=ocfl_1.1")]
    assert repair(repo).exit_code == 0 and audit(repo, location="cloud").exit_code == 0
    second = ingest(repo, collection, Metadata("d"))
    assert second.replicas == ["local", "cloud"] and second.replication_problems == []
