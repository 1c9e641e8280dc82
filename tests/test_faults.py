"""Kills at exact moments and full disks: what each writer leaves is removed by the next
run, every restoration keeps its PREMIS event, and a full disk is named (red-team cases
47, 50, 51, 52, 57, 58, 59). Kills are real SIGKILLs (tests/killer.py); full disks are a
real 20 MB tmpfs where this machine lets the tests mount one, else ENOSPC injected at the
write call."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from preserve.access.export import export
from preserve.errors import NoSpace
from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from preserve.storage.audit import audit
from preserve.storage.replicate import replicate
from tests.conftest import assert_ocfl_valid, content_key, many_small_files, object_key
from tests.test_cli import run


def _killed(repo_root: Path, target: str, nth: int, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PRESERVE_REPO=str(repo_root), PRESERVE_NO_PROGRESS="1")
    done = subprocess.run([sys.executable, "-m", "tests.killer", target, str(nth),
                           *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -9, done.stderr  # it was killed, not finished
    return done


def _two_disks(tmp_path) -> Repository:
    repo, _ = Repository.init(tmp_path / "repo")
    (tmp_path / "disk2").mkdir(exist_ok=True)
    run(repo.root, "storage", "add", "disk2", tmp_path / "disk2")
    policy = repo.root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"] = {"copies": 2, "locations": ["local", "disk2"]}
    policy.write_text(yaml.safe_dump(data))
    return Repository(repo.root)


def test_a_kill_between_the_aip_folder_and_its_rename_leaves_no_empty_folder(tmp_path):
    """Case 47: a kill during publish left an empty object folder for good."""
    repo, _ = Repository.init(tmp_path / "repo")
    src = many_small_files(tmp_path / "src", 20)
    _killed(repo.root, "preserve.stores.local:sync_filesystem", 1,
            "ingest", src, "-c", "k")
    aips = repo.root / "aips"
    assert any(p.is_dir() for p in aips.rglob("*"))  # the empty folder the kill left
    run(repo.root, "ingest", src, "-c", "k")  # the next run tidies, then ingests
    [aip] = json.loads(run(repo.root, "list", "--json").stdout)
    objects = [p for p in aips.glob("*/*/*/*") if p.parts[-4] != "extensions"]
    assert [p.relative_to(aips).as_posix() + "/" for p in objects] == [object_key(aip["id"])]
    assert len([p for p in aips.iterdir() if p.is_dir()]) == 2  # extensions/ and the object's
    assert_ocfl_valid(aips)


def _replications(repo: Repository, aip: str) -> dict[str, list]:
    """The repair events of each file (from their detail), every one a success."""
    out: dict[str, list] = {}
    for e in repo.catalog.events(aip):
        if e.type == "replication" and e.detail.startswith("repair of "):
            assert e.outcome == "success", e
            out.setdefault(e.detail.split()[2], []).append(e)
    return out


def _killed_repair(tmp_path, damaged: int, target: str, nth: int
                   ) -> tuple[Repository, str, set[str]]:
    """A repair of `damaged` rotten files killed at the `nth` call of `target`: the
    repository reopened, the AIP, and the files it had restored by then."""
    repo = _two_disks(tmp_path)
    aip = ingest(repo, many_small_files(tmp_path / "src", 30), Metadata("r")).aip_id
    bag = repo.locations["local"].bag_path(f"{content_key(aip)}")
    rotten = sorted((bag / "data").rglob("*.txt"))[:damaged]
    for path in rotten:
        path.write_text("rot")
    _killed(repo.root, target, nth, "repair")
    return Repository(repo.root), aip, {f"data/{p.relative_to(bag / 'data').as_posix()}"
                                        for p in rotten if p.read_text() != "rot"}


def test_a_killed_repair_keeps_the_events_of_what_it_restored_and_its_leftovers_go(tmp_path):
    """Case 51: staging/repair-* folders stayed for good, and the files restored before the
    kill had no PREMIS event. Files are restored several at once: those written before the
    kill have their events once the next run has tidied (restorations.py), never two."""
    # the 4th repair is killed as it writes its good copy, the others in flight with it
    repo, aip, restored = _killed_repair(
        tmp_path, 6, "preserve.stores.local:LocalStorage.replace_file", 4)
    assert len(restored) < 6  # at most the three before, whichever had ended
    assert set(_replications(repo, aip)) <= restored
    assert [p.name for p in repo.staging.iterdir() if p.name.startswith("repair-")]
    result = run(repo.root, "repair", "--json")
    assert json.loads(result.stdout)["status"] == "ok"
    assert not [p for p in repo.staging.iterdir() if p.name.startswith("repair-")]
    events = _replications(repo, aip)
    assert len(events) == 6 and all(len(each) == 1 for each in events.values())
    assert audit(repo, full=True).status == "ok"


def test_a_restoration_whose_events_a_kill_prevented_gets_them_from_the_next_run(tmp_path):
    """Killed between writing a good copy and recording its events: the next run that
    tidies (here a replication) finds the intent, reads the file back and records the
    repair, saying it was interrupted; files the kill left damaged get nothing."""
    repo, aip, restored = _killed_repair(
        tmp_path, 3, "preserve.storage.repair:record_restoration", 1)
    assert restored and not _replications(repo, aip)
    run(repo.root, "replicate")
    events = _replications(repo, aip)
    assert set(events) == restored and all(len(each) == 1 for each in events.values())
    assert all("interrupted" in each[0].outcome_detail for each in events.values())
    assert not [p for p in repo.staging.iterdir() if p.name.startswith("repair-")]
    assert json.loads(run(repo.root, "repair", "--json").stdout)["status"] == "ok"
    events = _replications(repo, aip)  # the rest now, each restoration once
    assert len(events) == 3 and all(len(each) == 1 for each in events.values())
    assert audit(repo, full=True).status == "ok"


def test_a_killed_export_leaves_nothing_the_next_export_keeps(tmp_path):
    """Case 52: DEST.partial-<pid> stayed, even after a successful export to DEST."""
    repo, _ = Repository.init(tmp_path / "repo")
    aip = ingest(repo, many_small_files(tmp_path / "src", 40), Metadata("e")).aip_id
    dest = tmp_path / "out"
    _killed(repo.root, "preserve.access.export:hash_stream", 10, "export", aip, dest)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out.partial-")]
    run(repo.root, "export", aip, dest)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == ["out"]


def test_a_killed_local_replication_leaves_nothing_the_next_run_keeps(tmp_path):
    """Case 59's sibling: .staging/v1.<pid> in the target location after a kill."""
    repo = _two_disks(tmp_path)
    policy = repo.root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"]["copies"] = 1
    policy.write_text(yaml.safe_dump(data))
    ingest(Repository(repo.root), many_small_files(tmp_path / "src", 40), Metadata("l"))
    data["replication"]["copies"] = 2
    policy.write_text(yaml.safe_dump(data))
    _killed(repo.root, "preserve.stores.local:hash_stream", 10, "replicate")
    staging = Repository(repo.root).locations["disk2"].staging_dir()
    assert any(staging.iterdir())
    run(repo.root, "replicate")
    assert not any(staging.iterdir())
    assert audit(Repository(repo.root), full=True).status == "ok"


def test_multipart_uploads_a_killed_run_left_are_aborted(tmp_path):
    """Case 50: open multipart uploads were never aborted (the store keeps their parts)."""
    from tests.s3server import S3Server
    from tests.test_replication import _two_copy_repo

    server = S3Server()
    try:
        repo = _two_copy_repo(tmp_path, server, copies=1)
        aip = ingest(repo, many_small_files(tmp_path / "src", 5), Metadata("m")).aip_id
        client = server.client()
        for name in ("data/big.bin", "tagmanifest-sha512.txt"):
            client.create_multipart_upload(Bucket="archive",
                                           Key=f"preserve/{content_key(aip)}{name}")
        assert len(client.list_multipart_uploads(Bucket="archive").get("Uploads", [])) == 2
        policy = repo.root / "policies" / "default.yaml"
        data = yaml.safe_load(policy.read_text())
        data["replication"]["copies"] = 2
        policy.write_text(yaml.safe_dump(data))
        assert replicate(Repository(repo.root)).complete
        assert client.list_multipart_uploads(Bucket="archive").get("Uploads", []) == []
    finally:
        server.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A real 20 MB filesystem (tmpfs), or None where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _random_files(root: Path, count: int, size: int) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        (root / f"f{i:03d}.bin").write_bytes(os.urandom(size))
    return root


def test_a_full_disk_is_named_and_nothing_is_kept(tmp_path, small_disk):
    """Cases 57-59: 'internal error ... this is a bug' (exit 3); replicate left a 20 MB
    .staging/v1.<pid> for good, one more at each retry."""
    if small_disk is None:
        pytest.skip("no tmpfs can be mounted here; test_enospc_met_while_writing covers it")
    big = _random_files(tmp_path / "big", 60, 500_000)  # 30 MB: more than the disk
    repo_root = small_disk / "repo"
    run(repo_root, "init")
    result = run(repo_root, "ingest", big, "-c", "full", check_code=3)
    assert "no space left on the repository's disk" in result.stderr
    assert "internal error" not in result.stderr
    assert list((repo_root / "staging").iterdir()) == []

    home, _ = Repository.init(tmp_path / "home")
    aip = ingest(home, big, Metadata("x")).aip_id
    out = small_disk / "out"
    result = run(home.root, "export", aip, out, check_code=3)
    assert "no space left on the disk of" in result.stderr and not out.exists()
    assert [p for p in small_disk.iterdir() if p.name.startswith("out")] == []

    (small_disk / "second").mkdir()
    run(home.root, "storage", "add", "second", small_disk / "second")
    result = run(home.root, "replicate", "--to", "second", check_code=3)
    assert "no space left on location 'second'" in result.stdout + result.stderr
    staging = small_disk / "second" / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_enospc_met_while_writing_is_named_and_nothing_is_kept(tmp_path, monkeypatch):
    """The same, where the disk fills while a copy is under way (another process wrote):
    ENOSPC injected at the write call."""
    from preserve.domain import fixity
    from preserve.stores import local

    home, _ = Repository.init(tmp_path / "home")
    aip = ingest(home, _random_files(tmp_path / "src", 10, 200_000), Metadata("x")).aip_id
    (tmp_path / "second").mkdir()
    run(home.root, "storage", "add", "second", tmp_path / "second")
    home = Repository(home.root)
    real = fixity.write_all
    budget = {"left": 600_000}

    def filling(write):
        sink = real(write)

        def limited(chunk):
            budget["left"] -= len(chunk)
            if budget["left"] < 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            sink(chunk)
        return limited

    from preserve.access import export as export_module
    from preserve.pipeline import copying

    for module in (fixity, local, export_module, copying):
        monkeypatch.setattr(module, "write_all", filling, raising=False)
    with pytest.raises(NoSpace) as full:  # 10 files: copied in this process, patched
        ingest(home, tmp_path / "src", Metadata("again"))
    assert "no space left on the repository's disk" in full.value.message
    assert list(home.staging.iterdir()) == [] and len(home.catalog.list_aips()) == 1
    budget["left"] = 600_000
    with pytest.raises(NoSpace) as full:
        export(home, aip, tmp_path / "out")
    assert "nothing was kept" in full.value.message
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == []
    budget["left"] = 600_000
    result = replicate(home, to="second")
    assert result.full == ["second"] and "no space left on location 'second'" in \
        result.failed[0][3]
    assert list(home.locations["second"].staging_dir().iterdir()) == []


def test_an_ingest_refused_before_copying_leaves_no_worker_running(tmp_path, monkeypatch):
    """The copy and siegfried workers boot as soon as the source is scanned, while the
    space check and the staging folder are prepared (issue 11): a refusal in between must
    not leave them running (or loading siegfried's 100 MB) after ingest returns."""
    import multiprocessing

    from preserve.ingest import ingest as ingest_module
    from preserve.parallel import default_workers

    repo, _ = Repository.init(tmp_path / "repo")
    started = []

    def full(where, needed, what):
        started.extend(multiprocessing.active_children())
        raise NoSpace(f"no space left on {what}")

    monkeypatch.setattr(ingest_module, "require_space", full)
    with pytest.raises(NoSpace):
        ingest(repo, many_small_files(tmp_path / "src", 120), Metadata("x"))
    assert len(started) == default_workers() + 1  # the copiers and siegfried were booting
    assert multiprocessing.active_children() == []
    assert list(repo.staging.iterdir()) == [] and repo.catalog.list_aips() == []


def test_a_read_only_destination_is_named_read_only(tmp_path, small_disk):
    """Case 32: a read-only destination was reported as a full disk."""
    if small_disk is None:
        pytest.skip("no tmpfs can be mounted here")
    home, _ = Repository.init(tmp_path / "home")
    src = _random_files(tmp_path / "src", 2, 1000)
    aip = ingest(home, src, Metadata("x")).aip_id
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = run(home.root, "export", aip, small_disk / "out", check_code=3)
    assert "is read-only" in result.stderr and "no space" not in result.stderr
