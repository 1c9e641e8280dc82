"""Two writers at once on one repository, and a writer beside an audit: they wait for each
other or one refuses with a message; nothing is ever corrupted (issue 14). Real processes,
a real repository; the replicate pair on S3 is in test_replication.py (case 56)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from preserve.repository import Repository
from tests.conftest import content_key, many_small_files


def _start(repo_root: Path, *args) -> subprocess.Popen:
    env = dict(os.environ, PRESERVE_REPO=str(repo_root), PRESERVE_NO_PROGRESS="1")
    return subprocess.Popen([sys.executable, "-m", "preserve", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _both(repo_root: Path, first: list, second: list) -> tuple:
    a, b = _start(repo_root, *first), _start(repo_root, *second)
    return (a.wait(120), a.communicate()), (b.wait(120), b.communicate())


def _consistent(repo_root: Path) -> None:
    for args in (["check", "--json"], ["audit", "--full", "--json"]):
        done = subprocess.run([sys.executable, "-m", "preserve", *args], capture_output=True,
                              text=True, env=dict(os.environ, PRESERVE_REPO=str(repo_root)))
        assert done.returncode == 0, done.stdout + done.stderr


def _two_disks(tmp_path: Path, copies: int) -> Repository:
    repo, _ = Repository.init(tmp_path / "repo")
    (tmp_path / "disk2").mkdir(exist_ok=True)
    (repo.root / "locations" / "disk2.yaml").write_text(yaml.safe_dump(
        {"name": "disk2", "kind": "local", "path": str(tmp_path / "disk2")}))
    policy = repo.root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"] = {"copies": copies, "locations": ["local", "disk2"]}
    policy.write_text(yaml.safe_dump(data))
    return Repository(repo.root)


def test_two_ingests_and_two_replicates_at_once(tmp_path):
    repo = _two_disks(tmp_path, copies=1)
    a, b = many_small_files(tmp_path / "a", 200), many_small_files(tmp_path / "b", 200)
    (ra, _), (rb, _) = _both(repo.root, ["ingest", a, "-c", "x"], ["ingest", b, "-c", "y"])
    assert (ra, rb) == (0, 0)
    _two_disks(tmp_path, copies=2)
    (ra, (out_a, ea)), (rb, (out_b, eb)) = _both(repo.root, ["replicate", "--json"],
                                               ["replicate", "--json"])
    assert (ra, rb) == (0, 0), out_a + ea + out_b + eb
    copied = [json.loads(out_a)["copied"], json.loads(out_b)["copied"]]
    assert sum(len(c) for c in copied) == 2  # each AIP copied once, by one of them
    _consistent(repo.root)


def test_two_repairs_at_once_and_a_replicate_beside_an_audit(tmp_path):
    repo = _two_disks(tmp_path, copies=2)
    done = subprocess.run([sys.executable, "-m", "preserve", "ingest",
                           many_small_files(tmp_path / "s", 300), "-c", "r", "--json"],
                          capture_output=True, text=True,
                          env=dict(os.environ, PRESERVE_REPO=str(repo.root)))
    aip = json.loads(done.stdout)["id"]
    bag = repo.locations["local"].bag_path(f"{content_key(aip)}")
    for path in sorted((bag / "data").rglob("*.txt"))[:20]:
        path.write_text("rot")
    (ra, (_, err_a)), (rb, (_, err_b)) = _both(repo.root, ["repair"], ["repair"])
    # one repairs; the other finishes first or meets the running audit and says so
    assert sorted((ra, rb)) in ([0, 0], [0, 3]), err_a + err_b
    if 3 in (ra, rb):
        assert "another audit" in err_a + err_b
    many_small_files(tmp_path / "t", 100)
    (ra, _), (rb, (_, err)) = _both(repo.root, ["audit", "--full"],
                                    ["ingest", tmp_path / "t", "-c", "t"])
    assert (ra, rb) == (0, 0), err  # the audit sees only copies recorded whole
    _consistent(repo.root)


def test_two_exports_to_one_destination_at_once(tmp_path):
    repo, _ = Repository.init(tmp_path / "repo")
    done = subprocess.run([sys.executable, "-m", "preserve", "ingest",
                           many_small_files(tmp_path / "s", 300), "-c", "e", "--json"],
                          capture_output=True, text=True,
                          env=dict(os.environ, PRESERVE_REPO=str(repo.root)))
    aip = json.loads(done.stdout)["id"]
    out = tmp_path / "out"
    (ra, (_, err_a)), (rb, (_, err_b)) = _both(repo.root, ["export", aip, out],
                                               ["export", aip, out])
    # one writes DEST; the other finds it taken and says so (exit 2), nothing else left
    assert sorted((ra, rb)) == [0, 2], err_a + err_b
    assert ("already exists" in err_a + err_b or "was filled while this export ran" in
            err_a + err_b) and "internal error" not in err_a + err_b
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == ["out"]


def test_an_export_whose_destination_is_filled_meanwhile_keeps_nothing(repo, tmp_path,
                                                                      monkeypatch):
    """The race of the test above, made certain: the other export wins while this one
    copies."""
    import pytest

    from preserve.access import export as export_module
    from preserve.errors import ConfigError
    from preserve.ingest.ingest import Metadata, ingest

    aip = ingest(repo, many_small_files(tmp_path / "s", 5), Metadata("e")).aip_id
    out = tmp_path / "out"
    copy = export_module._copy_verified

    def copy_then_lose_the_race(*args):
        done = copy(*args)
        out.mkdir()
        (out / "theirs.txt").write_text("the other export")
        return done

    monkeypatch.setattr(export_module, "_copy_verified", copy_then_lose_the_race)
    with pytest.raises(ConfigError) as lost:
        export_module.export(repo, aip, out)
    assert "filled while this export ran" in lost.value.message
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == ["out"]
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
