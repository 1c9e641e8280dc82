"""Crash safety: a kill or Ctrl-C at any moment leaves nothing that looks like an AIP,
and running the command again finishes the job."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preserve.domain import ocfl
from preserve.ingest.ingest import Metadata, ingest
from preserve.ingest.validation import validate_bag
from preserve.repository import Repository
from preserve.storage.recovery import recover
from tests.conftest import as_at_a_terminal, assert_ocfl_valid, processes_of, stored_bag


@pytest.fixture
def big_source(tmp_path) -> Path:
    """Enough data that an ingest takes a noticeable moment (about 200 MB, 600 files)."""
    src = tmp_path / "big"
    rng = random.Random(7)
    block = os.urandom(1 << 20)
    for i in range(600):
        d = src / f"box{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        size = rng.randint(1, 512) * 1024 if i % 100 else 24 << 20
        with open(d / f"item{i}.bin", "wb") as f:
            for off in range(0, size, len(block)):
                f.write(block[: min(len(block), size - off)])
            f.write(i.to_bytes(4, "big"))
    return src


def _start(repo_root: Path, src: Path) -> subprocess.Popen:
    env = dict(os.environ, PRESERVE_REPO=str(repo_root), PRESERVE_NO_PROGRESS="1")
    return subprocess.Popen([sys.executable, "-m", "preserve", "ingest", str(src), "-c", "crash",
                             "--workers", "2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=as_at_a_terminal)


def _wait_for_staging(repo: Repository, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if any(repo.staging.glob("*.lock")):
            return
        time.sleep(0.01)


def _stored_bags(repo: Repository) -> list[Path]:
    """The bag of v1 (its content/ folder) of every object on the primary disk."""
    return sorted(repo.primary_location().root.glob("*/*/*/*/v1/content"))


def _aip_of(bag: Path) -> str:
    return ocfl.id_of_root(bag.parent.parent.relative_to(bag.parents[5]).as_posix())


def _assert_consistent(repo: Repository) -> None:
    """Every bag in storage is complete; every catalogued AIP is in storage."""
    for bag in _stored_bags(repo):
        assert validate_bag(bag, check_fixity=False).valid, bag
    stored = {_aip_of(b) for b in _stored_bags(repo)}
    assert {a.id for a in repo.catalog.list_aips()} <= stored


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.4, 0.8, 1.5])
def test_kill_9_at_any_moment_then_rerun(repo, big_source, delay):
    proc = _start(repo.root, big_source)
    _wait_for_staging(repo, proc)
    time.sleep(delay)
    proc.kill()
    proc.wait()
    _assert_consistent(repo)
    assert repo.catalog.list_aips() == [] or len(repo.catalog.list_aips()) == 1

    actions = recover(repo)  # what the next command does first
    _assert_consistent(repo)
    assert list(repo.staging.iterdir()) == []
    assert repo.catalog.pending() == []
    # every bag that reached storage is now catalogued, nothing else is
    assert {a.id for a in repo.catalog.list_aips()} == {_aip_of(b) for b in _stored_bags(repo)}
    assert isinstance(actions, list)
    assert_ocfl_valid(repo.primary_location().root)

    result = ingest(repo, big_source, Metadata("crash"), workers=2)
    assert validate_bag(stored_bag(repo, result.aip_id), check_fixity=False).valid
    assert_ocfl_valid(repo.primary_location().root)
    assert list(repo.staging.iterdir()) == []


def test_ctrl_c_stops_cleanly_with_exit_130(repo, big_source):
    proc = _start(repo.root, big_source)
    _wait_for_staging(repo, proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the ingest finished before the signal arrived")
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(repo.staging.iterdir()) == []
    assert _stored_bags(repo) == []
    assert repo.catalog.list_aips() == [] and repo.catalog.pending() == []


def test_a_crash_after_publishing_is_completed_by_recovery(repo, tmp_path, monkeypatch):
    src = tmp_path / "s"
    src.mkdir()
    (src / "a.txt").write_text("a")
    from preserve.catalog import Catalog

    def crash(*args, **kwargs):
        raise SystemExit("power cut")  # after the rename, before the catalog says "stored"

    monkeypatch.setattr(Catalog, "mark_stored", crash)
    monkeypatch.setattr("preserve.ingest.ingest._Job.abandon", lambda self: None)
    with pytest.raises(SystemExit):
        ingest(repo, src, Metadata("c"))
    monkeypatch.undo()
    assert repo.catalog.list_aips() == [] and len(repo.catalog.pending()) == 1
    (repo.staging / f"{repo.catalog.pending()[0]}.lock").unlink(missing_ok=True)
    actions = recover(repo)
    assert any("completed the catalog record" in a for a in actions)
    assert len(repo.catalog.list_aips()) == 1


@pytest.mark.parametrize("delay", [0.15, 0.2, 0.25, 0.3, 0.4])
def test_no_worker_outlives_a_killed_ingest(tmp_path, delay):
    """Case 46: kills at about 0.2-0.28 s (workers starting) left 2 workers and the
    resource tracker alive for good, writing 200 files into staging after the kill."""
    from tests.conftest import many_small_files

    src = many_small_files(tmp_path / "src", 400)
    repo, _ = Repository.init(tmp_path / "repo")
    proc = _start(repo.root, src)
    time.sleep(delay)
    proc.kill()
    proc.wait()
    killed = time.time()
    deadline = time.monotonic() + 10
    while processes_of(repo.root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(repo.root) == []
    late = [p for p in repo.staging.rglob("*") if p.is_file() and p.stat().st_mtime > killed + 0.5]
    assert late == []
