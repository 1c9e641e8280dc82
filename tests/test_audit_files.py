"""Audits file by file: sampling inside a replica, resuming inside a replica, damage that
stays due until repaired, and catalogs of the previous schema."""

from __future__ import annotations

import sqlite3

import pytest

from preserve.catalog import Catalog
from preserve.catalog.database import RECHECK
from preserve.errors import ConfigError
from preserve.ingest.ingest import Metadata, ingest
from preserve.storage.audit import audit
from preserve.storage.repair import repair
from tests.conftest import content_key
from tests.test_cli import run


@pytest.fixture
def many(repo, tmp_path):
    """One AIP of 600 small files: three hashing batches of 256 files at most."""
    src = tmp_path / "many"
    for d in range(6):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(100):
            (src / f"d{d}" / f"f{i:03}.txt").write_text(f"file {d}/{i}\n")
    aip = ingest(repo, src, Metadata("many")).aip_id
    bag = repo.primary_location().bag_path(f"{content_key(aip)}")
    return repo, aip, bag


def _checks(repo) -> dict[str, str]:
    return dict(repo.catalog.execute("SELECT path, checked FROM file_checks").fetchall())


def test_sampling_verifies_a_share_of_files_per_run_least_recent_first(many):
    repo, aip, _ = many
    # 600 payload files and the 8 tag files of the bag: every content file is sampled
    paths = {p for (p,) in repo.catalog.execute("SELECT path FROM files")}
    assert len(paths) == 608
    runs = []
    for _ in range(4):
        before = set(_checks(repo))
        result = audit(repo, sample=0.25, workers=1)
        assert result.status == "ok" and result.selected_files == 152
        runs.append(set(_checks(repo)) - before)
    assert [len(r) for r in runs] == [152] * 4
    assert set.union(*runs) == paths
    # then a whole audit folds the per-file rows back into the replica's record
    assert audit(repo, workers=1).status == "ok"
    assert _checks(repo) == {}
    event = repo.catalog.events(aip)[-1]
    assert event.type == "fixity check" and "every file" in event.detail


class _CtrlCAfter:
    """A progress display whose user presses Ctrl-C once `files` files are done."""

    def __init__(self, files: int):
        self.left = files

    def start(self, phase, files, nbytes):
        pass

    def advance(self, files, nbytes):
        self.left -= files
        if self.left <= 0:
            raise KeyboardInterrupt


@pytest.mark.storage_left_damaged
def test_an_interrupted_audit_resumes_inside_the_replica(many):
    repo, aip, bag = many
    (bag / "data" / "d0" / "f000.txt").write_text("file 0/9\n")  # same size, other bytes
    with pytest.raises(KeyboardInterrupt):
        audit(repo, full=True, workers=1, progress=_CtrlCAfter(256))
    verified = {p for p, when in _checks(repo).items() if when != RECHECK}
    assert len(verified) > 200  # what was verified before Ctrl-C is kept (with tag files)
    status = repo.catalog.execute("SELECT status FROM audit_runs").fetchall()
    assert status == [("interrupted",)]
    resumed = audit(repo, full=True, workers=1)
    assert resumed.resumed_from is not None
    assert resumed.selected_files == 608 - len(verified)  # only what was left (8 tag files)
    assert [(p.kind, p.path) for p in resumed.problems] == [("corrupt", "data/d0/f000.txt")]
    assert resumed.exit_code == 1
    fresh = audit(repo, full=True, workers=1)  # the resumed run finished: start afresh
    assert fresh.resumed_from is None and fresh.selected_files == 608


def test_a_resumed_audit_does_not_report_what_was_repaired_meanwhile(many):
    repo, aip, bag = many
    target = bag / "data" / "d0" / "f010.txt"  # big files go first: in the first batch
    good = target.read_bytes()
    target.write_bytes(b"file 0/19\n")
    with pytest.raises(KeyboardInterrupt):
        audit(repo, full=True, workers=1, progress=_CtrlCAfter(256))
    assert _checks(repo)["data/d0/f010.txt"] == RECHECK  # found before the interruption
    target.write_bytes(good)  # repaired by hand before the run goes on
    resumed = audit(repo, full=True, workers=1)
    assert resumed.resumed_from is not None
    assert resumed.problems == [] and resumed.exit_code == 0


def test_an_audit_killed_mid_replica_is_resumed(many):
    repo, aip, _ = many
    with pytest.raises(KeyboardInterrupt):
        audit(repo, workers=1, progress=_CtrlCAfter(300))
    # a kill -9 leaves the run as it was while running: what was committed, status "running"
    repo.catalog.execute("UPDATE audit_runs SET status = 'running', finished = NULL")
    resumed = audit(repo, workers=1)
    assert resumed.resumed_from is not None and resumed.selected_files < 600


def test_a_budget_spent_inside_a_replica_is_continued_by_the_next_run(many):
    repo, aip, _ = many
    first = audit(repo, full=True, workers=1, budget_bytes=1)
    assert first.stopped == "budget" and 0 < first.files < 600
    second = audit(repo, full=True, workers=1)
    assert second.resumed_from == first.started
    assert first.files + second.files >= 600
    assert second.stopped is None and second.status == "ok"


def test_damage_stays_due_every_run_until_repaired(many):
    repo, aip, bag = many
    (bag / "data" / "d0" / "f000.txt").write_text("rot\n")
    assert audit(repo, due=True).replicas == 0  # nothing due yet
    assert audit(repo, full=True).exit_code == 1
    assert _checks(repo)["data/d0/f000.txt"] == RECHECK
    again = audit(repo, due=True)  # a nightly run finds it again, and only it
    assert again.selected_files == 1 and again.exit_code == 1
    assert [r.outcome for r in repair(repo).repairs] == ["no good copy"]  # one replica only
    (bag / "data" / "d0" / "f000.txt").write_text("file 0/0\n")  # restored by hand
    assert audit(repo, due=True).exit_code == 0
    assert audit(repo, due=True).replicas == 0  # verified good: no longer due


def test_an_unexpected_file_keeps_the_replica_due(many):
    repo, aip, bag = many
    (bag / "data" / "stray.tmp").write_text("?")
    assert audit(repo).exit_code == 1
    assert audit(repo, due=True).exit_code == 1  # reported again at the next nightly run
    (bag / "data" / "stray.tmp").unlink()
    assert audit(repo, due=True).exit_code == 0
    assert audit(repo, due=True).replicas == 0


def test_a_second_audit_at_the_same_time_is_refused(many):
    import fcntl

    from preserve.errors import Busy

    repo, _, _ = many
    with open(repo.root / "audit.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(Busy):
            audit(repo)


@pytest.mark.sqlite_catalog  # reads the SQLite file itself
def test_a_catalog_of_the_layout_before_ocfl_is_named_not_opened(many):
    """Repositories of the layout before OCFL need no conversion (nothing was released),
    but opening one gives a clear message, never a traceback (issue 9)."""
    repo, aip, _ = many
    path = repo.catalog.path
    repo.catalog.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="one full bag per AIP version") as e:
        Catalog(path)
    assert "preserve init" in e.value.hint
    out = run(repo.root, "list", check_code=2)
    assert "OCFL" in out.stderr and "preserve init" in out.stderr
