"""Configuration that silently did the wrong thing, and places where no repository can be:
each is now refused with the file, the line and what to do (red-team cases 65, 68, 69,
70, 87, 88, 90), on a real repository and a real S3-compatible server."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from preserve.repository import Repository
from tests.s3server import S3Server
from tests.test_cli import run


@pytest.fixture
def server():
    s = S3Server()
    s.client().create_bucket(Bucket="arch")
    yield s
    s.stop()


@pytest.mark.parametrize("place", ["/etc/hostname/sub", "/proc/self"])
def test_init_where_no_repository_can_be_is_exit_2(place, tmp_path):
    """Case 65: NotADirectoryError / FileNotFoundError as internal errors."""
    result = run(tmp_path / "unused", "--repo", place, "init", check_code=2)
    assert f"cannot create a repository at {place}" in result.stderr


@pytest.mark.parametrize("edit,key,nearest", [
    (lambda d: d["fixity"].update(manifest_algoritms=d["fixity"].pop("manifest_algorithms")),
     "fixity.manifest_algoritms", "fixity.manifest_algorithms"),
    (lambda d: d["fixity"]["audit"].update(interval_day=1), "fixity.audit.interval_day",
     "fixity.audit.interval_days"),
    (lambda d: d["fixity"]["audit"]["overrides"][0].update(knd="full"),
     "fixity.audit.overrides[0].knd", "fixity.audit.overrides[0].kind"),
    (lambda d: d["ingest"].update(link="follow-inside"), "ingest.link", "ingest.links"),
    (lambda d: d["ingest"].update(special_file="skip"), "ingest.special_file",
     "ingest.special_files"),
    (lambda d: d["replication"].update(copys=5), "replication.copys", "replication.copies"),
])
def test_a_misspelled_policy_key_is_refused_with_its_line_and_the_nearest_key(
        tmp_path, edit, key, nearest):
    """Case 68: such keys were ignored and their defaults used, exit 0."""
    repo, _ = Repository.init(tmp_path / "repo")
    policy = repo.root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    edit(data)
    policy.write_text(yaml.safe_dump(data, sort_keys=False))
    line = next(n for n, text in enumerate(policy.read_text().splitlines(), start=1)
                if text.strip().lstrip("- ").startswith(key.rsplit(".", 1)[-1] + ":"))
    for command in (["schedule"], ["audit"], ["list"]):
        result = run(repo.root, *command, check_code=2)
        assert f"default.yaml:{line}: unknown key '{key}'" in result.stderr
        assert f"did you mean '{nearest}'" in result.stderr


@pytest.mark.parametrize("extra,nearest", [({"bogus_key": 1}, None), ({"kindd": "local"}, "kind"),
                                           ({"endpont_url": "http://x"}, "endpoint_url")])
def test_an_unknown_key_in_a_location_file_is_refused(tmp_path, server, extra, nearest):
    """Case 69: accepted silently; an 'endpont_url' typo sent the location to AWS."""
    repo, _ = Repository.init(tmp_path / "repo")
    run(repo.root, "storage", "add", "offsite", "s3://arch/pfx", "--endpoint-url", server.url,
        "--region", "us-east-1")
    file = repo.root / "locations" / "offsite.yaml"
    file.write_text(file.read_text() + yaml.safe_dump(extra))
    result = run(repo.root, "storage", "list", check_code=2)
    assert "offsite.yaml:" in result.stderr and f"unknown key '{next(iter(extra))}'" in \
        result.stderr
    if nearest:
        assert f"did you mean '{nearest}'" in result.stderr


def test_a_location_named_off_is_told_to_quote_its_name(tmp_path):
    """YAML reads `name: off` as false: the message named 'False', and not why."""
    repo, _ = Repository.init(tmp_path / "repo")
    (tmp_path / "d").mkdir()
    (repo.root / "locations" / "off.yaml").write_text(
        f"name: off\nkind: local\npath: {tmp_path / 'd'}\n")
    result = run(repo.root, "storage", "list", check_code=2)
    assert "off.yaml: name 'False' must match the file name 'off'" in result.stderr
    assert "name: 'off'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("url,options,words", [
    ("s3://arch/ad", ["--addressing-style", "weird"], "addressing_style"),
    ("s3://Bad_Bucket!!/x", [], "not a valid bucket name"),
    ("s3://arch/lk", ["--lock-mode", "GOVERNANCE", "--lock-days", "-5"], "object_lock"),
])
def test_storage_add_refuses_values_the_store_would_refuse_later(tmp_path, server, url, options,
                                                                  words):
    """Case 70: accepted, then 'storage list' failed for every location."""
    repo, _ = Repository.init(tmp_path / "repo")
    result = run(repo.root, "storage", "add", "bad", url, "--endpoint-url", server.url,
                 *options, check_code=2)
    assert words in result.stderr
    assert not (repo.root / "locations" / "bad.yaml").exists()
    run(repo.root, "storage", "list")


def test_credentials_in_an_endpoint_url_are_refused_and_never_written(tmp_path):
    """Case 90: written to locations/*.yaml and printed by 'storage list --json'."""
    repo, _ = Repository.init(tmp_path / "repo")
    secret = "SUPERSECRET-CANARY-9f8e7d"
    for scheme in ("http", "ftp"):  # not echoed even where the URL is wrong in other ways
        result = run(repo.root, "storage", "add", "cred", "s3://arch/x", "--endpoint-url",
                     f"{scheme}://AKIACANARYKEYID00001:{secret}@127.0.0.1:1", check_code=2)
        assert "must not carry credentials" in result.stderr and secret not in result.stderr
    for path in repo.root.rglob("*"):
        assert not path.is_file() or secret.encode() not in path.read_bytes()


def test_https_against_a_plain_http_server_is_unreachable_not_a_crash(tmp_path, server):
    """Case 88: SSLError as an internal error, and 'storage list' failed for all."""
    repo, _ = Repository.init(tmp_path / "repo")
    https = server.url.replace("http://", "https://")
    run(repo.root, "storage", "add", "tls", "s3://arch/x", "--endpoint-url", https, "--region",
        "us-east-1")
    (repo.root / "locations" / "tls.yaml").write_text(
        (repo.root / "locations" / "tls.yaml").read_text() + "max_attempts: 1\n")
    listing = json.loads(run(repo.root, "storage", "list", "--json", check_code=3).stdout)
    status = {loc["name"]: loc for loc in listing}
    assert status["local"]["reachable"] and not status["tls"]["reachable"]
    assert "unreachable" in status["tls"]["problem"]
    result = run(repo.root, "storage", "check", "tls", check_code=3)
    assert "internal error" not in result.stderr + result.stdout


def test_object_lock_on_a_bucket_without_it_is_a_failed_step_not_a_crash(tmp_path, server):
    """Case 87: InvalidRequest (no ObjectLockConfiguration) as an internal error."""
    repo, _ = Repository.init(tmp_path / "repo")
    run(repo.root, "storage", "add", "lk", "s3://arch/lk", "--endpoint-url", server.url,
        "--region", "us-east-1", "--lock-mode", "GOVERNANCE", "--lock-days", "1")
    result = run(repo.root, "storage", "check", "lk", "--json", check_code=3)
    report = json.loads(result.stdout)
    assert not report["ok"] and report["steps"][0]["step"] == "write"
    assert "refused" in report["steps"][0]["detail"]
    assert os.environ.get("PRESERVE_DEBUG") is None


def test_storage_add_makes_a_missing_folder_and_refuses_what_cannot_hold_copies(tmp_path):
    """Issue 22: `storage add` neither made a missing folder nor said it must exist; a
    file, or a folder of other files, was accepted and failed at the first copy."""
    from tests.test_cli import run

    repo, _ = Repository.init(tmp_path / "repo")
    run(repo.root, "storage", "add", "new", tmp_path / "disks" / "new")
    assert (tmp_path / "disks" / "new").is_dir()
    (tmp_path / "file").write_text("x\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine\n")
    for name, path, said in (("f", tmp_path / "file", "is a file, not a folder"),
                             ("g", tmp_path / "full", "holds files but is not an OCFL"),
                             ("h", "/proc/no-such-folder", "cannot be made")):
        done = run(repo.root, "storage", "add", name, path, check_code=2)
        assert said in done.stderr
        assert not (repo.root / "locations" / f"{name}.yaml").exists()
