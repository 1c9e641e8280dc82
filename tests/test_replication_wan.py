"""Replication and audits of an S3 copy at network speed (issue 29), against moto's server:
what the stores answered is kept, so a quick audit asks nothing per object; large files
go in many parts at once within a memory budget; no request waits on `100-continue`."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import threading

import pytest

from preserve.errors import FixityMismatch
from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from preserve.storage.audit import audit
from preserve.storage.repair import repair
from preserve.storage.replicate import replicate
from preserve.stores import s3_uploads
from preserve.stores.s3 import S3Storage
from preserve.stores.s3_settings import S3Settings
from tests.conftest import content_key
from tests.test_replication import _two_copy_repo


@pytest.fixture
def server():
    from tests.s3server import S3Server

    s = S3Server()
    yield s
    s.stop()


def _sent(store: S3Storage, aip: str) -> dict[str, int]:
    """Requests the location's client makes from now on for the AIP's objects (not its
    logs/, where an audit puts its record), by operation; a listing counts as many."""
    sent: dict[str, int] = {}
    lock = threading.Lock()

    def count(model, params, **_):
        key = params.get("Key", params.get("Prefix", ""))
        if aip in key and "/logs/" not in key:
            with lock:
                sent[model.name] = sent.get(model.name, 0) + 1

    store.client.meta.events.register("before-parameter-build.s3", count)
    return sent


def _many_files(tmp_path, n: int = 60):
    source = tmp_path / "many"
    (source / "sub").mkdir(parents=True)
    for i in range(n):
        (source / ("sub" if i % 2 else "") / f"f{i:03}.bin").write_bytes(os.urandom(50 + i))
    return source


@pytest.mark.parametrize("catalog", ["sqlite", "postgresql"])
def test_a_quick_audit_after_replication_asks_nothing_per_object(tmp_path, server, catalog,
                                                                  request):
    """The copy's ETags were kept as each upload was verified: the quick audit is the
    listing, every object compared, none asked for (60 files: no HeadObject, no GetObject);
    on either catalog."""
    url = request.getfixturevalue("fresh_database") if catalog == "postgresql" else None
    repo = _two_copy_repo(tmp_path, server, catalog=url)
    assert repo.catalog.describe().startswith("postgresql") == (catalog == "postgresql")
    aip = ingest(repo, _many_files(tmp_path), Metadata("c")).aip_id
    kept = repo.catalog.execute("SELECT COUNT(*) FROM stored_etags WHERE aip_id = ? AND "
                                "location = 'cloud'", (aip,)).fetchone()[0]
    assert kept >= 60 + 2 + 3  # the files, the version's inventory and sidecar, root files
    sent = _sent(repo.locations["cloud"], aip)
    found = audit(repo, location="cloud")
    assert found.problems == [] and found.files >= 60
    assert set(sent) == {"ListObjectsV2"}, sent


def test_objects_not_verified_here_are_asked_once_then_known(tmp_path, server):
    """A catalog without the ETags (rebuilt from storage, or copies made before them): the
    quick audit asks each object's checksum once, records the ETag, and the next asks
    nothing. An object written again since (its ETag changed) is asked again, and a
    changed one is found."""
    repo = _two_copy_repo(tmp_path, server)
    aip = ingest(repo, _many_files(tmp_path, 20), Metadata("c")).aip_id
    with repo.catalog.transaction() as db:
        db.execute("DELETE FROM stored_etags")
    store = repo.locations["cloud"]
    sent = _sent(store, aip)
    assert audit(repo, location="cloud").problems == []
    assert sent.get("HeadObject", 0) >= 20
    sent.clear()
    assert audit(repo, location="cloud").problems == []
    assert set(sent) == {"ListObjectsV2"}, sent
    key = f"preserve/{content_key(aip)}data/f004.bin"
    client = server.client()
    body = client.get_object(Bucket="archive", Key=key)["Body"].read()
    client.put_object(Bucket="archive", Key=key, Body=bytes(len(body)),  # same size, zeros,
                      ChecksumAlgorithm="SHA256")                      # its own checksum
    sent.clear()
    found = audit(repo, location="cloud")
    assert [(p.path, p.kind) for p in found.problems] == [("data/f004.bin", "corrupt")]
    assert sent.get("HeadObject") == 1  # that object alone


def test_a_repaired_object_is_known_by_its_new_etag(tmp_path, server):
    repo = _two_copy_repo(tmp_path, server)
    aip = ingest(repo, _many_files(tmp_path, 10), Metadata("c")).aip_id
    key = f"preserve/{content_key(aip)}data/f002.bin"
    server.client().put_object(Bucket="archive", Key=key, Body=b"damaged")
    assert audit(repo, location="cloud").exit_code == 1
    assert repair(repo).exit_code == 0
    sent = _sent(repo.locations["cloud"], aip)
    assert audit(repo, location="cloud").problems == []
    assert set(sent) == {"ListObjectsV2"}, sent


def test_a_disk_restored_from_an_object_store_fetches_copies_at_once(tmp_path, server,
                                                                    monkeypatch):
    """Repair finds good copies several at once, ahead of the one being written: a disk
    restored from a store across a WAN waited a round trip per file, one after another.
    The first two fetches meet at a barrier: one at a time, it breaks (and so does repair)."""
    from preserve.storage import repair as repairing
    from tests.conftest import stored_bag

    repo = _two_copy_repo(tmp_path, server)
    aip = ingest(repo, _many_files(tmp_path, 20), Metadata("c")).aip_id
    bag = stored_bag(repo, aip)
    lost = sorted(p for p in (bag / "data").rglob("*.bin"))[:12]
    for path in lost:
        path.chmod(0o644)
        path.unlink()
    met, calls = threading.Barrier(2, timeout=30), itertools.count()
    real = repairing._fetch

    def fetch(*args):
        if next(calls) < 2:
            met.wait()
        return real(*args)

    monkeypatch.setattr(repairing, "_fetch", fetch)
    result = repair(repo)
    assert result.exit_code == 0, result.to_dict()
    assert sorted(r.path for r in result.repairs) == sorted(
        str(p.relative_to(bag)) for p in lost)
    assert {(r.outcome, r.source) for r in result.repairs} == {("repaired", "cloud")}
    assert all(path.exists() for path in lost)
    assert audit(repo).problems == []
    assert not [p for p in repo.staging.iterdir() if p.name.startswith("repair-")]


def test_objects_lost_from_a_store_are_written_back_several_at_once(tmp_path, server,
                                                                   monkeypatch):
    """Repair writes good copies several at once (300 objects lost from a store 40 ms away
    took 58 s one after another, 9 s now): the first two uploads meet at a barrier, which
    breaks if they go one at a time. Each restored object has its two events, once."""
    repo = _two_copy_repo(tmp_path, server)
    aip = ingest(repo, _many_files(tmp_path, 20), Metadata("c")).aip_id
    prefix = f"preserve/{content_key(aip)}data/"
    keys = [o["Key"] for o in server.client().list_objects_v2(
        Bucket="archive", Prefix=prefix)["Contents"]][:10]
    server.client().delete_objects(Bucket="archive",
                                   Delete={"Objects": [{"Key": k} for k in keys]})
    met, calls = threading.Barrier(2, timeout=30), itertools.count()
    real = S3Storage.replace_file

    def replace(self, key, good):
        if next(calls) < 2:
            met.wait()
        return real(self, key, good)

    monkeypatch.setattr(S3Storage, "replace_file", replace)
    result = repair(repo)
    assert result.exit_code == 0, result.to_dict()
    assert sorted(r.path for r in result.repairs) == sorted(k[len(prefix) - 5:] for k in keys)
    assert {(r.outcome, r.source, r.location) for r in result.repairs} == {
        ("repaired", "local", "cloud")}
    events = [e for e in repo.catalog.events(aip) if e.detail.startswith("repair of ")]
    assert sorted(e.detail.split()[2] for e in events) == sorted(r.path for r in result.repairs)
    assert audit(repo, full=True).problems == []
    assert not [p for p in repo.staging.iterdir() if p.name.startswith("repair-")]


def test_a_restoration_left_unrecorded_waits_for_its_store_to_be_read(tmp_path, server,
                                                                    monkeypatch):
    """A repair that wrote an object back and ended before recording it leaves its intent;
    while the store cannot be read, the next run keeps it (dropping it would leave the
    restoration without its event for good); once the store answers, the repair is
    recorded, saying it was interrupted, and the folder goes."""
    import shutil

    from preserve.storage import repair as repairing
    from preserve.storage.recovery import tidy

    repo = _two_copy_repo(tmp_path, server)
    aip = ingest(repo, _many_files(tmp_path, 4), Metadata("c")).aip_id
    key = f"preserve/{content_key(aip)}data/f000.bin"
    server.client().delete_object(Bucket="archive", Key=key)

    def ended(*args, **kwargs):
        raise KeyboardInterrupt  # the run ends before it records the restoration

    monkeypatch.setattr(repairing, "record_restoration", ended)
    with pytest.raises(KeyboardInterrupt):
        repair(repo)
    monkeypatch.undo()
    left = [p for p in repo.staging.iterdir() if p.name.startswith("repair-")]
    assert len(left) == 1 and (left[0] / "restoring.json").exists()
    gone = left[0].with_name(f"repair-999999999-{left[0].name.split('-', 2)[2]}")
    shutil.move(left[0], gone)  # as its process has ended
    assert server.client().head_object(Bucket="archive", Key=key)  # it was written back
    cloud = repo.root / "locations" / "cloud.yaml"
    reachable = cloud.read_text()
    cloud.write_text(reachable.replace(server.url, "http://127.0.0.1:9"))
    repo = Repository(repo.root)
    assert any("cannot be read now" in line for line in tidy(repo)) and gone.exists()
    cloud.write_text(reachable)
    repo = Repository(repo.root)
    assert any("which an interrupted repair had written" in line for line in tidy(repo))
    assert not gone.exists()
    events = [e for e in repo.catalog.events(aip) if e.detail.startswith("repair of ")]
    assert [e.detail.split()[2] for e in events] == ["data/f000.bin"]
    assert "interrupted" in events[0].outcome_detail


def test_an_object_written_again_during_the_copy_is_not_recorded(tmp_path, server,
                                                                 monkeypatch):
    """Each upload was verified, and the listing after the copy shows every object with
    the ETag its upload was answered with; one written again meanwhile (same size, other
    bytes) fails the copy, which is not recorded."""
    repo = _two_copy_repo(tmp_path, server, copies=1)
    aip = ingest(repo, _many_files(tmp_path, 10), Metadata("c")).aip_id
    key = f"preserve/{content_key(aip)}data/sub/f003.bin"
    real = S3Storage.replace_file

    def meanwhile(self, target_key, good):
        if target_key.endswith("/inventory.json") and "/v1/" not in target_key:
            server.client().put_object(Bucket="archive", Key=key, Body=bytes(53))
        return real(self, target_key, good)

    monkeypatch.setattr(S3Storage, "replace_file", meanwhile)
    result = replicate(repo, to="cloud")
    assert len(result.failed) == 1 and "written again since its upload" in result.failed[0][3]
    assert "cloud" not in repo.catalog.replica_locations(aip, 1)


def test_large_files_go_in_parts_at_once_within_the_memory_budget(tmp_path, server,
                                                                   monkeypatch):
    """Parts of every large upload share one budget: at most PART_MEMORY of them read and
    not yet sent, so more than one part is in flight, never more than the budget holds.
    Where the store does not check checksums (moto), each part's ETag is held against
    the MD5 of the bytes sent, and the whole's against the MD5 of theirs: no HeadObject."""
    monkeypatch.setattr(s3_uploads, "PART_MEMORY", 2 * s3_uploads.PART_SIZE)
    server.client().create_bucket(Bucket="parts")
    store = S3Storage("parts", S3Settings(bucket="parts", endpoint_url=server.url,
                                          region="us-east-1", addressing_style="path",
                                          multipart_threshold=s3_uploads.PART_SIZE))
    flight, most, lock = [0], [0], threading.Lock()

    def start(**_):
        with lock:
            flight[0] += 1
            most[0] = max(most[0], flight[0])

    def end(**_):
        with lock:
            flight[0] -= 1

    store.client.meta.events.register("before-call.s3.UploadPart", start)
    store.client.meta.events.register("after-call.s3.UploadPart", end)
    heads = []
    store.client.meta.events.register("before-call.s3.HeadObject", lambda **_: heads.append(1))
    big = tmp_path / "big.bin"
    data = os.urandom(4 * s3_uploads.PART_SIZE + 123)
    big.write_bytes(data)
    answer = store.put_file("k/big.bin", big, hashlib.sha256(data).hexdigest(), len(data))
    assert answer.composite and answer.etag and answer.etag.endswith("-5")
    assert most[0] == 2
    assert heads == []  # moto checks no checksum: each part's ETag was its MD5, nothing read
    with store.open("k/big.bin") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()


def test_a_streamed_upload_does_not_wait_for_100_continue(tmp_path, server):
    """A file between 1 MiB and one part goes as a stream; the SDK would ask the store to
    accept it first (Expect: 100-continue), a round trip more per object across a WAN, and
    over plain http hash every byte once more to sign the body."""
    server.client().create_bucket(Bucket="stream")
    store = S3Storage("stream", S3Settings(bucket="stream", endpoint_url=server.url,
                                           region="us-east-1", addressing_style="path"))
    headers = []
    store.client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: headers.append(dict(request.headers)))
    path = tmp_path / "two.bin"
    data = os.urandom((2 << 20) + 7)
    path.write_bytes(data)
    answer = store.put_file("k/two.bin", path, hashlib.sha256(data).hexdigest(), len(data))
    assert answer.etag == hashlib.md5(data).hexdigest()  # moto: the MD5 of what it took
    assert headers and all("Expect" not in h for h in headers), headers
    # its SHA-256 goes in a signed header: the body is not hashed again for the signature
    assert all(h["X-Amz-Content-SHA256"] == b"UNSIGNED-PAYLOAD" for h in headers), headers


def test_a_file_under_the_threshold_goes_in_one_request_read_once(tmp_path, server,
                                                                  monkeypatch):
    """Up to the location's multipart_threshold a file goes in one request, streamed,
    with the recorded SHA-256 in its header: the store holds the file's own SHA-256 (an
    upload in parts leaves only a checksum of the parts'), and the file is read once (the
    SDK would read it all first to compute a checksum not given)."""
    server.client().create_bucket(Bucket="whole")
    store = S3Storage("whole", S3Settings(bucket="whole", endpoint_url=server.url,
                                          region="us-east-1", addressing_style="path",
                                          multipart_threshold=3 * s3_uploads.PART_SIZE))
    read = [0]

    class Counting(s3_uploads.HashingReader):
        def read(self, n=-1):
            data = super().read(n)
            read[0] += len(data)
            return data

    monkeypatch.setattr(s3_uploads, "HashingReader", Counting)
    assert store.verification() == s3_uploads.BY_ETAG  # the probe, before counting
    calls = []
    store.client.meta.events.register("before-call.s3", lambda model, **_: calls.append(
        model.name))
    path = tmp_path / "big.bin"
    data = os.urandom(2 * s3_uploads.PART_SIZE + 5)
    path.write_bytes(data)
    digest = hashlib.sha256(data)
    answer = store.put_file("k/big.bin", path, digest.hexdigest(), len(data))
    assert calls == ["PutObject"] and read[0] == len(data)
    assert answer.composite is None and answer.etag == hashlib.md5(data).hexdigest()
    stored = store.stored_checksum("k/big.bin")
    assert not stored.composite
    assert stored.sha256 == base64.b64encode(digest.digest()).decode()


def test_replication_reports_files_and_bytes(tmp_path, server):
    repo = _two_copy_repo(tmp_path, server, copies=1)
    source = _many_files(tmp_path, 12)
    aip = ingest(repo, source, Metadata("c")).aip_id
    info = repo.catalog.version_info(aip, 1)
    seen = {"start": None, "files": 0, "bytes": 0, "steps": 0}

    class Recording:
        def start(self, phase, files, nbytes):
            seen["start"] = (phase, files, nbytes)

        def advance(self, files, nbytes):
            seen["files"] += files
            seen["bytes"] += nbytes
            seen["steps"] += 1

    result = replicate(repo, to="cloud", progress=Recording())
    assert result.complete and result.copied == [(aip, 1, "cloud")]
    assert seen["start"] == ("replicate", info["files"], info["bytes"])
    assert (seen["files"], seen["bytes"]) == (info["files"], info["bytes"])
    assert seen["steps"] > 1  # advanced as the files landed, not once at the end


def test_a_large_local_file_that_changed_is_never_completed_at_the_store(tmp_path, server):
    """A file sent in parts is hashed whole as it is read: one whose bytes are not the
    recorded ones is abandoned before the store assembles it (each part's own checksum
    would have passed: they are of the bytes read)."""
    server.client().create_bucket(Bucket="changed")
    store = S3Storage("changed", S3Settings(bucket="changed", endpoint_url=server.url,
                                            region="us-east-1", addressing_style="path",
                                            multipart_threshold=s3_uploads.PART_SIZE))
    big = tmp_path / "big.bin"
    data = os.urandom(s3_uploads.PART_SIZE + 1000)
    big.write_bytes(data)
    recorded = hashlib.sha256(data).hexdigest()
    big.write_bytes(b"x" + data[1:])  # changed on disk since it was recorded
    with pytest.raises(FixityMismatch, match="does not hold the bytes recorded"):
        store.put_file("k/big.bin", big, recorded, len(data))
    assert store.stat("k/big.bin") is None and store.open_uploads() == []


def test_several_aips_are_copied_at_once_within_the_location_concurrency(tmp_path, server,
                                                                         monkeypatch):
    """Each copy waits a few round trips in turn; several AIPs go at once (each thread
    with its own catalog connection), and the location's `concurrency` bounds the
    uploads of all of them together."""
    import yaml

    from preserve.storage import replicate as replication

    repo = _two_copy_repo(tmp_path, server, copies=1)
    location = repo.root / "locations" / "cloud.yaml"
    location.write_text(yaml.safe_dump({**yaml.safe_load(location.read_text()),
                                        "concurrency": 2}))
    aips = []
    for n in range(6):
        source = tmp_path / f"src{n}"
        source.mkdir()
        for i in range(5):
            (source / f"f{i}.txt").write_bytes(os.urandom(300 + i))
        aips.append(ingest(repo, source, Metadata("c")).aip_id)
    repo.close()
    repo = type(repo)(repo.root)
    lock = threading.Lock()
    now = {"copies": 0, "requests": 0}
    most = {"copies": 0, "requests": 0}

    def counted(kind, fn):
        def run(*args, **kwargs):
            with lock:
                now[kind] += 1
                most[kind] = max(most[kind], now[kind])
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:
                    now[kind] -= 1
        return run

    real_copy, real_call = replication.copy_version, S3Storage._call
    monkeypatch.setattr(replication, "copy_version", counted("copies", real_copy))
    monkeypatch.setattr(S3Storage, "_call", lambda self, what, fn, **kw: real_call(
        self, what, counted("requests", fn), **kw))
    result = replicate(repo, to="cloud")
    assert result.complete and sorted(a for a, _, _ in result.copied) == sorted(aips)
    assert most["copies"] > 1
    assert most["requests"] == 2  # in flight: the location's concurrency, for all copies
    sent = _sent(repo.locations["cloud"], aips[0])
    assert audit(repo, location="cloud").problems == []
    assert set(sent) == {"ListObjectsV2"}, sent


def test_a_big_version_is_listed_in_ranges_at_once(tmp_path, server, monkeypatch):
    """Issue 29: a version of more files than a page is listed a page-sized range at a
    time, several at once (cut at every PAGE-th file the catalog records), when its copy
    is proven complete and when it is audited; whatever is in the store between the cuts
    is seen: a missing file and a stray are each named. (PAGE is 7 here, for 60 files.)"""
    from preserve.storage import expected

    monkeypatch.setattr(expected, "PAGE", 7)
    repo = _two_copy_repo(tmp_path, server)
    store = repo.locations["cloud"]
    starts: list = []
    lock = threading.Lock()

    def listed(model, params, **_):
        if model.name == "ListObjectsV2" and "/v1/" in params.get("Prefix", ""):
            with lock:
                starts.append(params.get("StartAfter"))

    store.client.meta.events.register("before-parameter-build.s3", listed)
    aip = ingest(repo, _many_files(tmp_path), Metadata("c")).aip_id
    cuts = len(repo.catalog.every_nth_path(aip, 1, 7))
    assert cuts >= 60 // 7 and len(starts) == cuts + 1 and starts.count(None) == 1, starts
    assert all(aip in s for s in starts if s)
    starts.clear()
    assert audit(repo, location="cloud").problems == []
    assert len(starts) == cuts + 1
    client, version = server.client(), f"preserve/{content_key(aip)}"
    client.delete_object(Bucket="archive", Key=version + "data/f030.bin")
    client.put_object(Bucket="archive", Key=version + "data/f030a.bin", Body=b"stray")
    found = audit(repo, location="cloud")
    assert sorted((p.path, p.kind) for p in found.problems) == [
        ("data/f030.bin", "missing"), ("data/f030a.bin", "unexpected")]


def _small_aips(tmp_path, repo, count: int) -> list[str]:
    """`count` AIPs of two small files each, copied to the repository's locations."""
    aips = []
    for n in range(count):
        source = tmp_path / f"item{n}"
        source.mkdir()
        for i in range(2):
            (source / f"page{i}.txt").write_bytes(os.urandom(300 + n))
        aips.append(ingest(repo, source, Metadata("c")).aip_id)
    return aips


def test_replicas_at_an_object_store_are_audited_several_at_once(tmp_path, server,
                                                                  monkeypatch):
    """Each replica's audit waits a few round trips in turn (its listing, its history, its
    event's document): replicas at an object store are audited several at once, and what
    each finds is its own. Two replicas must be under way together (else the barrier
    breaks), one of them damaged."""
    from preserve.storage import audit as audit_module

    repo = _two_copy_repo(tmp_path, server)
    aips = _small_aips(tmp_path, repo, 6)
    lost = content_key(aips[3]) + "data/page0.txt"
    server.client().delete_object(Bucket="archive", Key="preserve/" + lost)
    together = threading.Barrier(2, timeout=60)
    real = audit_module.audit_replica

    def meeting(repo_, storage, visit, *args):
        if visit.state.aip in aips[:2]:
            together.wait()  # the first two AIPs' audits meet, each in its own lane
        return real(repo_, storage, visit, *args)

    monkeypatch.setattr(audit_module, "audit_replica", meeting)
    found = audit(repo, location="cloud")
    assert [(p.aip, p.path, p.kind) for p in found.problems] == [
        (aips[3], "data/page0.txt", "missing")]
    assert found.replicas == 6 and found.files > 6 * 2
    events = [e for a in aips for e in repo.catalog.events(a)
              if e.type == "fixity check" and "location 'cloud'" in e.detail]
    assert len(events) == 6 and [e.outcome for e in events].count("failure") == 1
    # the same as one replica after another
    monkeypatch.setattr(audit_module, "audit_replica", real)
    monkeypatch.setattr("preserve.storage.lanes.READS_AT_ONCE", 1)
    alone = audit(repo, location="cloud")
    assert (alone.replicas, alone.files) == (found.replicas, found.files)
    assert [(p.aip, p.path, p.kind) for p in alone.problems] == [
        (p.aip, p.path, p.kind) for p in found.problems]


def test_an_audit_in_lanes_interrupted_keeps_what_it_verified_and_resumes(tmp_path, server,
                                                                         monkeypatch):
    """Ctrl-C while replicas are audited at once: the run is recorded interrupted, no
    replica it did not finish gets an event, and the next run continues it to the end."""
    from preserve.storage import audit as audit_module

    repo = _two_copy_repo(tmp_path, server)
    aips = _small_aips(tmp_path, repo, 5)
    real = audit_module.audit_replica

    def interrupted(repo_, storage, visit, *args):
        if visit.state.aip == aips[2]:
            raise KeyboardInterrupt
        return real(repo_, storage, visit, *args)

    monkeypatch.setattr(audit_module, "audit_replica", interrupted)
    with pytest.raises(KeyboardInterrupt):
        audit(repo, location="cloud")
    status = repo.catalog.execute("SELECT status FROM audit_runs").fetchall()
    assert [s for (s,) in status] == ["interrupted"]
    monkeypatch.setattr(audit_module, "audit_replica", real)
    resumed = audit(repo, location="cloud")
    assert resumed.resumed_from is not None and resumed.problems == []
    assert resumed.stopped is None and resumed.status == "ok"


def test_a_check_lists_an_object_store_s_folders_and_replicas_several_at_once(
        tmp_path, server, monkeypatch):
    """`check` walks the storage layout a level at a time and lists every recorded
    replica: at an object store each a round trip across a WAN (100 AIPs 40 ms away took
    26 s in turn). The folders of a level, and the replicas, are asked several at once
    (each barrier breaks if they go in turn), and what is found is the same, in order."""
    from preserve.storage import check as check_module
    from preserve.storage.check import check

    repo = _two_copy_repo(tmp_path, server, bucket="checked")  # moto's buckets outlive
    aips = _small_aips(tmp_path, repo, 6)                       # a test: this one alone
    lost = content_key(aips[4]) + "data/page1.txt"
    server.client().delete_object(Bucket="checked", Key="preserve/" + lost)
    folders, replicas = threading.Barrier(2, timeout=60), threading.Barrier(2, timeout=60)
    walked, listed = itertools.count(), itertools.count()
    real_entries, real_gaps = S3Storage.entries, check_module.replica_gaps

    def entries(self, prefix):
        if len(prefix) == 4 and next(walked) < 2:  # the layout's first level: "abc/"
            folders.wait()
        return real_entries(self, prefix)

    def gaps(*args):
        if next(listed) < 2:
            replicas.wait()
        return real_gaps(*args)

    monkeypatch.setattr(S3Storage, "entries", entries)
    monkeypatch.setattr(check_module, "replica_gaps", gaps)
    found = check(repo)
    absent = [(f.kind, f.where, f.what) for f in found.findings]
    assert absent == [("replica-absent", "cloud", content_key(aips[4])[:-len("content/")])]
    assert "data/page1.txt" in found.findings[0].detail
    monkeypatch.setattr("preserve.storage.lanes.READS_AT_ONCE", 1)  # one after another
    monkeypatch.setattr(S3Storage, "entries", real_entries)
    monkeypatch.setattr(check_module, "replica_gaps", real_gaps)
    alone = check(repo)
    assert [(f.kind, f.where, f.what, f.detail) for f in alone.findings] == [
        (f.kind, f.where, f.what, f.detail) for f in found.findings]
