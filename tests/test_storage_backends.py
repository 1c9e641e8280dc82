"""One storage test suite, run against the local backend and a real S3-compatible server."""

from __future__ import annotations

import hashlib

import pytest

from preserve.errors import FixityMismatch
from preserve.stores.local import LocalStorage
from preserve.stores.s3 import S3Settings, S3Storage
from tests.s3server import S3Server

NAMES = ["bagit.txt", "data/a b.txt", "data/100%.txt", "data/line\nfeed.txt", "data/é/deep.bin",
         "manifest-sha256.txt", "tagmanifest-sha256.txt", "inventory.json"]


@pytest.fixture(scope="module")
def server():
    s = S3Server()
    yield s
    s.stop()


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        root = tmp_path / "store"
        root.mkdir()
        return LocalStorage("disk", root)
    server = request.getfixturevalue("server")
    bucket = "suite-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    server.client().create_bucket(Bucket=bucket)
    return S3Storage("cloud", S3Settings(bucket=bucket, prefix="p", endpoint_url=server.url,
                                         region="us-east-1", addressing_style="path"))


@pytest.fixture
def bag(tmp_path):
    root = tmp_path / "bag"
    for i, name in enumerate(NAMES):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"content {i} of {name}".encode())
    return root


def digests(bag):
    return {n: hashlib.sha256((bag / n).read_bytes()).hexdigest() for n in NAMES}


def test_publish_list_stat_open_round_trip(storage, bag):
    storage.publish_bag(bag, "ab/id/v1/", digests(bag).get)
    assert sorted(o.key for o in storage.list("ab/id/")) == sorted("ab/id/v1/" + n for n in NAMES)
    for name in NAMES:
        assert storage.stat("ab/id/v1/" + name).size == (bag / name).stat().st_size
        with storage.open("ab/id/v1/" + name) as f:
            assert f.read() == (bag / name).read_bytes()
    assert storage.stat("ab/id/v1/nothing") is None
    with pytest.raises(FileNotFoundError):
        storage.open("ab/id/v1/nothing")


def test_a_source_that_does_not_match_its_digests_is_not_stored(storage, bag):
    wrong = digests(bag)
    wrong["data/a b.txt"] = "0" * 64
    with pytest.raises(FixityMismatch):
        storage.publish_bag(bag, "ab/id/v1/", wrong.get)
    # nothing that looks like a finished version: no inventory at the prefix
    assert storage.stat("ab/id/v1/inventory.json") is None


def test_delete_prefix_clears_only_that_prefix(storage, bag):
    storage.publish_bag(bag, "ab/one/v1/", digests(bag).get)
    storage.publish_bag(bag, "ab/two/v1/", digests(bag).get)
    storage.delete_prefix("ab/one/v1/")
    assert list(storage.list("ab/one/")) == []
    assert len(list(storage.list("ab/two/"))) == len(NAMES)


def test_keys_that_could_escape_are_refused(storage):
    from preserve.errors import ConfigError

    for key in ("../x", "/etc/passwd", "a/../../b"):
        with pytest.raises(ConfigError):
            storage.stat(key)


def test_round_trip_check_reports_each_step(storage):
    steps = storage.round_trip()
    assert [s for s, _, _ in steps] == ["write", "read", "delete"]
    assert all(ok for _, ok, _ in steps)


def test_object_lock_retention_is_set_and_nothing_is_deleted(server, bag):
    client = server.client()
    client.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    store = S3Storage("vault", S3Settings(bucket="locked", endpoint_url=server.url,
                                          region="us-east-1", addressing_style="path",
                                          object_lock_mode="COMPLIANCE", object_lock_days=30))
    store.publish_bag(bag, "ab/id/v1/", digests(bag).get)
    head = client.head_object(Bucket="locked", Key="ab/id/v1/bagit.txt")
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"]
    store.delete_prefix("ab/id/v1/")  # never attempted on a locked location
    assert len(list(store.list("ab/id/v1/"))) == len(NAMES)


def test_listing_past_one_page_of_keys_returns_every_object(server):
    """S3 lists 1,000 keys a page; preserve follows the pages one at a time."""
    client = server.client()
    client.create_bucket(Bucket="paged")
    for i in range(1003):
        client.put_object(Bucket="paged", Key=f"p/aa/x/v1/data/{i:04}.txt", Body=b"")
    storage = S3Storage("cloud", S3Settings(bucket="paged", prefix="p", endpoint_url=server.url,
                                            region="us-east-1", addressing_style="path"))
    keys = [o.key for o in storage.list("aa/x/v1/")]
    assert len(keys) == 1003 and keys[0] == "aa/x/v1/data/0000.txt"
    assert keys[-1] == "aa/x/v1/data/1002.txt"
