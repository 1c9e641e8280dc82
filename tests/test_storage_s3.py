"""The S3 backend against a real S3-compatible server on loopback (moto's server mode).

moto accepts wrong client checksums, so what these tests exercise is preserve's own
verification after each upload: the store's checksum of what it holds, against ours.
"""

from __future__ import annotations

import hashlib
import os
import threading

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preserve.domain.ocfl import ROOT_DECLARATION
from preserve.errors import FixityMismatch, StorageUnreachable
from preserve.stores import s3_uploads
from preserve.stores.base import ensure_ocfl_root
from preserve.stores.s3 import S3Settings, S3Storage
from preserve.stores.s3_settings import settings_from_yaml
from tests.s3server import S3Server


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server()
    yield server.url
    server.stop()


@pytest.fixture
def bucket(s3_server, request):
    name = "b-" + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    raw = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    raw.create_bucket(Bucket=name)
    return raw, name


def _storage(s3_server, name, **kw) -> S3Storage:
    return S3Storage("cloud", S3Settings(bucket=name, prefix="archive", endpoint_url=s3_server,
                                         region="us-east-1", addressing_style="path", **kw))


def _file(tmp_path, size: int):
    path = tmp_path / f"f{size}"
    path.write_bytes(os.urandom(size))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_upload_is_verified_and_reads_back(s3_server, bucket, tmp_path):
    raw, name = bucket
    store = _storage(s3_server, name)
    path, digest = _file(tmp_path, 3000)
    store.put_file("aa/x/v1/data/f", path, digest, 3000)
    assert store.stat("aa/x/v1/data/f").size == 3000
    with store.open("aa/x/v1/data/f") as body:
        assert body.read() == path.read_bytes()
    assert [o.key for o in store.list("aa/x/")] == ["aa/x/v1/data/f"]
    head = raw.head_object(Bucket=name, Key="archive/aa/x/v1/data/f", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"]  # stored with the store's own checksum


def test_multipart_upload_checks_the_composite_checksum(s3_server, bucket, tmp_path,
                                                         monkeypatch):
    monkeypatch.setattr(s3_uploads, "PART_SIZE", 5 << 20)  # S3's smallest part
    _, name = bucket
    store = _storage(s3_server, name, multipart_threshold=5 << 20)
    path, digest = _file(tmp_path, (12 << 20) + 123)
    store.put_file("k/big", path, digest, path.stat().st_size)
    with store.open("k/big") as body:
        assert hashlib.sha256(body.read()).hexdigest() == digest


def test_bytes_changed_in_the_store_are_noticed(s3_server, bucket, tmp_path):
    raw, name = bucket
    store = _storage(s3_server, name)
    path, digest = _file(tmp_path, 2048)
    store.put_file("k/f", path, digest, 2048)
    raw.put_object(Bucket=name, Key="archive/k/f", Body=os.urandom(2048),
                   ChecksumAlgorithm="SHA256")  # a raw overwrite: same size, other bytes
    with pytest.raises(FixityMismatch, match="holds different bytes"):
        store.verify("k/f", digest, 2048)
    raw.put_object(Bucket=name, Key="archive/k/f", Body=b"short", ChecksumAlgorithm="SHA256")
    with pytest.raises(FixityMismatch, match="bytes for"):
        store.verify("k/f", digest, 2048)


def test_a_wrong_local_digest_is_never_accepted(s3_server, bucket, tmp_path):
    _, name = bucket
    store = _storage(s3_server, name)
    path, _ = _file(tmp_path, 100)
    with pytest.raises(FixityMismatch):
        store.put_file("k/f", path, "00" * 32, 100)


def test_publish_bag_writes_the_version_inventory_last(s3_server, bucket, tmp_path, monkeypatch):
    _, name = bucket
    store = _storage(s3_server, name)
    bag = tmp_path / "bag"
    (bag / "data").mkdir(parents=True)
    names = ("bagit.txt", "data/a.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt",
             "inventory.json", "inventory.json.sha512")
    for rel in names:
        (bag / rel).write_text(rel)
    order = []
    real = S3Storage.put_file
    monkeypatch.setattr(S3Storage, "put_file",
                        lambda self, key, *a: (order.append(key), real(self, key, *a)))
    store.publish_bag(bag, "ab/id/v1/")
    assert {k.rsplit("/", 1)[-1] for k in order[-2:]} == {"inventory.json",  # together,
                                                          "inventory.json.sha512"}  # last
    assert {o.key for o in store.list("ab/id/v1/")} == {"ab/id/v1/" + r for r in names}


def test_unreachable_store_is_unreachable_not_missing(tmp_path):
    store = S3Storage("gone", S3Settings(bucket="b", endpoint_url="http://127.0.0.1:9",
                                         region="us-east-1", max_attempts=2))
    with pytest.raises(StorageUnreachable, match="unreachable"):
        store.stat("x")


def test_a_missing_bucket_is_reported_as_unreachable(s3_server):
    store = _storage(s3_server, "no-such-bucket")
    with pytest.raises(StorageUnreachable, match="NoSuchBucket"):
        store.check_reachable()


def test_secrets_in_a_location_file_are_refused(tmp_path):
    from preserve.errors import ConfigError

    with pytest.raises(ConfigError, match="must not be written"):
        settings_from_yaml("x", {"bucket": "b", "aws_secret_access_key": "s"},
                           tmp_path / "x.yaml")


def _counted(store: S3Storage) -> dict:
    """Every request the store's clients send (its own and the reachability check's), by
    operation (botocore's own events)."""
    sent: dict = {}

    def count(model, **_):
        sent[model.name] = sent.get(model.name, 0) + 1

    store.client.meta.events.register("before-call.s3", count)
    store.probe.meta.events.register("before-call.s3", count)
    return sent


def test_whether_a_bucket_answers_and_holds_a_storage_root_is_one_request(s3_server, bucket):
    """Issue 29: the reachability check reads the storage root's declaration, so a writer
    then asks nothing more (a HeadBucket and a HeadObject, each a round trip across a WAN,
    before); a store that answered moments ago is not asked at all when that will do (the
    event log copied at a command's end). An empty bucket answers, and is made a root."""
    _, name = bucket
    first = _storage(s3_server, name)
    made = _counted(first)
    first.check_reachable()
    assert first.ocfl_root_known is False  # none there, seen: not asked again
    ensure_ocfl_root(first)
    assert "HeadObject" not in made and made["GetObject"] == 1
    assert first.stat(ROOT_DECLARATION) is not None
    first.verification()  # the probe's answer, before counting

    store = _storage(s3_server, name)  # the next command's
    sent = _counted(store)
    store.check_reachable()
    ensure_ocfl_root(store)
    assert sent == {"GetObject": 1}
    store.check_reachable(answered_within=60)
    assert sent == {"GetObject": 1}
    store.check_reachable()  # asked afresh where nothing else will do
    assert sent == {"GetObject": 2}


def test_one_request_per_object_and_the_verification_named(s3_server, bucket, tmp_path):
    """Issue 29: an upload is one request; moto does not check the SHA-256 sent with an
    upload (the probe finds that once), so its ETag is held against the MD5 of the bytes
    sent, and the SDK's SHA-256 of them against the record; nothing is read back."""
    _, name = bucket
    store = _storage(s3_server, name)
    assert store.verification() == s3_uploads.BY_ETAG
    sent = _counted(store)
    bag = tmp_path / "v1"
    (bag / "content" / "data").mkdir(parents=True)
    for n in range(40):
        (bag / "content" / "data" / f"f{n}").write_bytes(os.urandom(100 + n))
    store.publish_bag(bag, "aa/obj/v1/")
    assert sent == {"PutObject": 40}
    assert not [o for o in store.list("") if s3_uploads.PROBE_KEY in o.key]  # probe removed
    steps = dict((step, detail) for step, _ok, detail in store.round_trip())
    assert "does not check checksums" in steps["write"]


def test_a_local_copy_that_changed_is_refused_before_anything_is_sent(s3_server, bucket,
                                                                      tmp_path):
    _, name = bucket
    store = _storage(s3_server, name)
    store.verification()
    path, digest = _file(tmp_path, 5000)
    path.write_bytes(b"x" + path.read_bytes()[1:])  # changed since its digest was recorded
    sent = _counted(store)
    with pytest.raises(FixityMismatch, match="nothing was sent"):
        store.put_file("k/changed", path, digest, 5000)
    assert sent == {}
    # A file sent as a stream is refused after it was sent, and removed: moto keeps the
    # recorded SHA-256 sent with it, which its bytes do not have.
    big, big_digest = _file(tmp_path, (2 << 20) + 5)
    big.write_bytes(b"x" + big.read_bytes()[1:])
    with pytest.raises(FixityMismatch, match="does not hold the bytes recorded"):
        store.put_file("k/big", big, big_digest, (2 << 20) + 5)
    assert sent == {"PutObject": 1, "DeleteObject": 1}
    assert store.stat("k/big") is None


def test_concurrency_is_a_checked_location_setting(tmp_path):
    from preserve.errors import ConfigError

    base = {"kind": "s3", "bucket": "bucket-one"}
    assert settings_from_yaml("c", base, tmp_path / "c.yaml").concurrency == 16
    assert settings_from_yaml("c", {**base, "concurrency": 32}, tmp_path).concurrency == 32
    for wrong in (0, 1000, "many", True):
        with pytest.raises(ConfigError, match="concurrency"):
            settings_from_yaml("c", {**base, "concurrency": wrong}, tmp_path / "c.yaml")


def test_the_multipart_threshold_is_a_checked_size(tmp_path):
    from preserve.errors import ConfigError

    base = {"kind": "s3", "bucket": "bucket-one"}
    assert settings_from_yaml("c", base, tmp_path).multipart_threshold == 200 << 20
    for written, size in ((64 << 20, 64 << 20), ("64 MiB", 64 << 20), ("0.5GiB", 1 << 29),
                        ("100 MB", 10**8)):
        assert settings_from_yaml("c", {**base, "multipart_threshold": written},
                                  tmp_path).multipart_threshold == size
    # S3 takes parts of 5 MiB at least, and 5 GiB at most in one request
    for wrong in ("lots", 1 << 20, "6 GiB", True, "-8 MiB"):
        with pytest.raises(ConfigError, match="multipart_threshold must be a size"):
            settings_from_yaml("c", {**base, "multipart_threshold": wrong},
                               tmp_path / "c.yaml")


@pytest.fixture
def checking(monkeypatch):
    """moto made to do what AWS S3, MinIO and Ceph do with the SHA-256 sent with an upload
    (moto keeps it unchecked): bytes that do not have it are refused, BadDigest."""
    import base64

    from moto.s3.exceptions import S3ClientError
    from moto.s3.responses import S3Response

    keep = S3Response._get_checksum

    def checked(self, response_headers):
        sent = self.headers.get("x-amz-checksum-sha256")
        held = base64.b64encode(hashlib.sha256(self.body or b"").digest()).decode()
        if sent and sent != held:
            raise S3ClientError("BadDigest", "The SHA256 you specified did not match the "
                                "calculated checksum.")
        return keep(self, response_headers)

    monkeypatch.setattr(S3Response, "_get_checksum", checked)


def test_a_store_that_checks_is_sent_files_as_they_are(s3_server, bucket, tmp_path,
                                                       checking, monkeypatch):
    """Issue 29: where the store checks the SHA-256 sent with an upload, nothing of a file
    is hashed here (2 s of CPU a GiB for SHA-256 and MD5, on the machine the store shares
    with none); a file whose bytes are not the recorded ones is refused by the store and
    nothing of it is kept."""
    _, name = bucket
    store = _storage(s3_server, name)
    assert store.verification() == s3_uploads.BY_STORE
    assert not [o for o in store.list("") if s3_uploads.PROBE_KEY in o.key]  # refused

    class NotHashed(s3_uploads.HashingReader):
        def read(self, n=-1):
            raise AssertionError("hashed, where the store checks")

    monkeypatch.setattr(s3_uploads, "HashingReader", NotHashed)
    size = s3_uploads.IN_MEMORY + 5  # over IN_MEMORY: streamed from the file
    path, digest = _file(tmp_path, size)
    sent = _counted(store)
    store.put_file("k/whole", path, digest, size)
    assert sent == {"PutObject": 1}
    assert store.stored_checksum("k/whole").sha256 == s3_uploads._b64(digest)
    path.write_bytes(b"x" + path.read_bytes()[1:])  # changed since its digest was recorded
    with pytest.raises(FixityMismatch, match="do not have the SHA-256"):
        store.put_file("k/changed", path, digest, size)
    assert store.stat("k/changed") is None


def test_the_probe_goes_beside_the_first_writes(s3_server, bucket, tmp_path):
    """Across a WAN the checksum probe's two round trips (its upload, its removal) were
    the first writes' to wait on: the probe is begun with them, and asked only once a
    write's answer is back. Here each write is held until the probe has been sent (the
    storage root's files into an empty prefix), and the probe until the first content
    upload has (into a storage root made before): waiting on the probe would hang both."""
    import threading

    from preserve.domain import ocfl
    from preserve.stores.base import ensure_ocfl_root

    raw, name = bucket
    for key, data in ocfl.root_files().items():  # a storage root made by an earlier run
        raw.put_object(Bucket=name, Key=f"made/{key}", Body=data)
    for prefix, held in (("empty", "ocfl_layout.json"), ("made", "k/first")):
        store = S3Storage("cloud", S3Settings(bucket=name, prefix=prefix,
                                              endpoint_url=s3_server, region="us-east-1",
                                              addressing_style="path"))
        probed, written = threading.Event(), threading.Event()

        def hold(request, probed=probed, written=written, held=held, **_):
            if s3_uploads.PROBE_KEY in request.url:
                probed.set()
                if held == "k/first":
                    assert written.wait(10), "the first upload waited for the probe"
            elif request.url.split("?")[0].endswith(held):
                written.set()
                if held != "k/first":
                    assert probed.wait(10), "the storage root was written before the probe"

        store.client.meta.events.register("before-send.s3", hold)
        ensure_ocfl_root(store)
        path, digest = _file(tmp_path, s3_uploads.IN_MEMORY + 5)
        store.put_file("k/first", path, digest, path.stat().st_size)
        assert probed.is_set() and written.is_set()
        assert store.verification() == s3_uploads.BY_ETAG
        assert store.stat(ocfl.ROOT_DECLARATION) and store.stat("k/first")
        assert not [o for o in store.list("") if s3_uploads.PROBE_KEY in o.key]


def test_a_listing_can_start_after_a_key(s3_server, bucket):
    """The store starts the listing there (StartAfter), within the location's prefix."""
    _, name = bucket
    store = _storage(s3_server, name)
    for key in ("log/a", "log/b1", "log/b2", "log/c", "other/d"):
        store.put_bytes(key, b"x")
    sent = _counted(store)
    assert [o.key for o in store.list("log/", after="log/b")] == ["log/b1", "log/b2", "log/c"]
    assert [o.key for o in store.list("log/", after="log/b2")] == ["log/c"]
    assert sent == {"ListObjectsV2": 2}


SPLIT_KEYS = sorted({f"v1/content/data/{name}" for name in (
    "a", "a b", "a%20b", "b/c", "b/c/d", "b0", "z", "\u00e9t\u00e9", "\u4e2d\u6587", "\U0001f600",
    "CR\rLF\n", "-", "~", *(f"f{n:03}" for n in range(30)))} | {"v1/inventory.json", "v2/x"})


@pytest.fixture(scope="module")
def split_store(s3_server):
    raw = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    raw.create_bucket(Bucket="split-listing")
    store = S3Storage("cloud", S3Settings(bucket="split-listing", prefix="archive",
                                          endpoint_url=s3_server, region="us-east-1",
                                          addressing_style="path", concurrency=4))
    for key in SPLIT_KEYS:
        store.put_bytes(key, key.encode())
    return store


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(SPLIT_KEYS), st.text(max_size=12).map(
    lambda t: "v1/" + t)), max_size=8))
def test_a_listing_cut_anywhere_gives_every_object_once(split_store, bounds):
    """Issue 29: a big version's listing is cut at every 1,000th recorded file and its
    ranges listed at once. Whatever the cuts (keys of the store or not, repeated, in any
    order, names S3 sorts by their UTF-8 bytes), every object is listed exactly once."""
    bounds = [b for b in bounds if _safe_key(b)]
    whole = [(o.key, o.size) for o in split_store.list("v1/")]
    assert len(whole) == len([k for k in SPLIT_KEYS if k.startswith("v1/")])
    cut = [(o.key, o.size) for o in split_store.list_split("v1/", bounds)]
    assert sorted(cut) == sorted(whole)


def _safe_key(key: str) -> bool:
    from preserve.errors import ConfigError
    from preserve.stores.base import checked_key

    try:
        checked_key(key)
    except ConfigError:
        return False
    return True


def test_a_storage_root_made_by_another_process_meanwhile_is_taken_as_it_is(s3_server, bucket):
    """A location found empty by its reachability check, then made a storage root by
    another process (a worker beside this one) before this one writes: it is a storage
    root, not 'files that are not one'."""
    _, name = bucket
    late = _storage(s3_server, name)
    late.check_reachable()
    ensure_ocfl_root(_storage(s3_server, name))  # the other process
    ensure_ocfl_root(late)
    assert late.ocfl_root_known is True


def test_the_storage_root_s_own_files_are_read_at_once(s3_server, bucket, monkeypatch):
    """An audit ends by reading the storage root's three files (and whether the location
    holds anything): each a round trip across a WAN, all at once (the barrier breaks if
    they go in turn). A changed one is named, a missing one too."""
    from preserve.stores.base import root_file_problems

    raw, name = bucket
    store = _storage(s3_server, name)
    ensure_ocfl_root(store)
    raw.put_object(Bucket=name, Key="archive/ocfl_layout.json", Body=b"{}")
    raw.delete_object(Bucket=name, Key="archive/extensions/0003-hash-and-id-n-tuple-"
                                       "storage-layout/config.json")
    met, real = threading.Barrier(3, timeout=30), S3Storage.open

    def meeting(self, key, size=None):
        met.wait()
        return real(self, key, size)

    monkeypatch.setattr(S3Storage, "open", meeting)
    found = {key: missing for key, _why, missing in root_file_problems(store)}
    assert found == {"ocfl_layout.json": False,
                     "extensions/0003-hash-and-id-n-tuple-storage-layout/config.json": True}


def test_a_store_that_answers_a_bare_404_is_asked_whether_its_bucket_is_there(
        s3_server, bucket, monkeypatch):
    """A store may answer the declaration's GET with a 404 and no error document (no code
    to tell a missing object from a missing bucket): the bucket is then asked, as before."""
    from botocore.exceptions import ClientError

    _, name = bucket
    real = S3Storage._call

    def bare(self, what, fn, **kwargs):
        if what == "read the storage root's declaration":
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "GetObject")
        return real(self, what, fn, **kwargs)

    monkeypatch.setattr(S3Storage, "_call", bare)
    store = _storage(s3_server, name)
    store.check_reachable()
    assert store.ocfl_root_known is False
    with pytest.raises(StorageUnreachable, match="NoSuchBucket"):
        _storage(s3_server, "no-such-bucket-here").check_reachable()
