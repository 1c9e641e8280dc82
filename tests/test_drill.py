"""Restore drills (issue 25): version copies exported at random, validated, recorded."""

from __future__ import annotations

import json
import os

import pytest

from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from tests.conftest import content_key, object_key, two_disk_repo
from tests.test_cli import run


def _drills(repo) -> list:
    return [e for e in repo.catalog.events(repo.catalog.list_aips()[0].id)
            if e.type == "validation" and e.detail.startswith("restore drill")]


@pytest.mark.storage_left_damaged  # the second part damages a copy on purpose
def test_a_drill_restores_each_copy_and_records_it(tmp_path, collection, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    (scratch / "preserve-drill-999999-abc123").mkdir()  # a killed drill's (no such pid)
    (scratch / "someone-elses").mkdir()
    repo = two_disk_repo(tmp_path)
    aip = ingest(repo, collection, Metadata("Parish")).aip_id
    repo.close()

    done = json.loads(run(repo.root, "drill", "--sample", "10", "--json").stdout)
    assert (done["copies"], done["drilled"], done["failed"]) == (2, 2, 0)
    assert sorted(d["location"] for d in done["drills"]) == ["disk2", "local"]
    assert all(d["restored"] and d["files"] > 5 for d in done["drills"])
    assert sorted(os.listdir(scratch)) == ["someone-elses"]  # its own, and the dead one's
    repo = Repository(repo.root)
    assert [e.outcome for e in _drills(repo)] == ["success", "success"]
    for name in ("local", "disk2"):
        logs = repo.locations[name].root / object_key(aip) / "logs"
        assert [p.name for p in logs.iterdir() if f"-drill-{name}-v1-" in p.name]

    # a damaged copy is not restorable: said, recorded, exit 1, nothing left behind
    stored = repo.locations["disk2"].bag_path(content_key(aip)) / "data" / "docs" / "notes.txt"
    stored.write_bytes(stored.read_bytes() + b"!")
    said = run(repo.root, "drill", "--location", "disk2", "--json", check_code=1)
    [failed] = json.loads(said.stdout)["drills"]
    assert not failed["restored"] and failed["location"] == "disk2"
    assert stored.name in failed["problem"]
    assert [e.outcome for e in _drills(repo)][-1] == "failure"
    assert "NOT RESTORABLE" in run(repo.root, "drill", "--location", "disk2",
                                   check_code=1).stdout
    assert sorted(os.listdir(scratch)) == ["someone-elses"]
    repo.close()

    assert "no location 'nowhere'" in run(repo.root, "drill", "--location", "nowhere",
                                          check_code=2).stderr
    run(repo.root, "drill", "--sample", "0", check_code=2)
