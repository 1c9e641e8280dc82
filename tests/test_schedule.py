"""Audits by policy: what is due, sampled, within budget, resumed; stale; cron and systemd."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preserve.admin.schedule import due_table, parse_budget
from preserve.errors import ConfigError
from preserve.ingest.ingest import Metadata, ingest
from preserve.storage.audit import audit
from tests.conftest import content_key


def _age(repo, days: float, *, audited: bool) -> None:
    """Pretend every replica was stored (and perhaps audited) `days` ago."""
    import datetime as dt

    then = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with repo.catalog.transaction() as db:
        db.execute("UPDATE replicas SET stored = ?, last_audit = ?", (then,
                                                                        then if audited else None))


@pytest.fixture
def three_aips(repo, tmp_path):
    ids = []
    for i in range(3):
        src = tmp_path / f"src{i}"
        src.mkdir()
        (src / "f.bin").write_bytes(os.urandom(1000 * (i + 1)))
        ids.append(ingest(repo, src, Metadata("c")).aip_id)
    return repo, ids


def test_nothing_is_due_right_after_ingest(three_aips):
    repo, _ = three_aips
    result = audit(repo, due=True)
    assert result.replicas == 0 and result.status == "ok"
    assert not any(r["due_now"] for r in due_table(repo))


def test_due_replicas_are_audited_with_the_policy_kind_then_not_due(three_aips):
    repo, ids = three_aips
    _age(repo, 100, audited=True)  # policy: every 90 days
    result = audit(repo, due=True)
    assert result.replicas == 3 and result.status == "ok"
    assert result.bytes_read > 0  # the default policy audits local disks in full
    assert audit(repo, due=True).replicas == 0


def test_due_sampling_adds_the_least_recently_verified_files_until_all_are_covered(three_aips):
    repo, ids = three_aips
    _age(repo, 10, audited=True)  # nothing is due yet: the share alone decides
    seen = []
    for _ in range(4):
        # a third of the 27 content files (each AIP: 1 payload and 8 tag files): one AIP's
        result = audit(repo, due=True, sample=0.33)
        assert result.replicas == 1 and result.selected_files == 9
        seen.append(_verified_last(repo))
    assert sorted(seen[:3]) == sorted(ids)  # three runs covered all three, none twice
    assert seen[3] == seen[0]  # then the least recently verified comes round again


def test_due_files_are_all_audited_whatever_the_share(three_aips):
    repo, _ = three_aips
    _age(repo, 100, audited=True)
    assert audit(repo, due=True, sample=0.01).replicas == 3
    assert audit(repo, due=True).replicas == 0


def _verified_last(repo) -> str:
    """The AIP whose replica was audited most recently (by its fixity check event)."""
    row = repo.catalog.execute("SELECT aip_id FROM events WHERE type = 'fixity check' "
                               "ORDER BY datetime DESC, seq DESC LIMIT 1").fetchone()
    return row[0]


def test_a_byte_budget_stops_the_run_and_the_next_run_resumes(three_aips):
    repo, _ = three_aips
    _age(repo, 100, audited=True)
    first = audit(repo, due=True, budget_bytes=1)
    assert first.replicas == 1  # stopped once the budget was spent
    second = audit(repo, due=True)
    assert second.replicas == 2  # continues with what was left
    assert audit(repo, due=True).replicas == 0


def test_a_nightly_run_never_repeats_findings_repaired_since(three_aips):
    repo, ids = three_aips
    _age(repo, 100, audited=True)
    files = [repo.primary_location().bag_path(f"{content_key(a)}") / "data" / "f.bin"
             for a in ids]
    originals = [f.read_bytes() for f in files]
    for f, data in zip(files, originals, strict=True):
        f.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    first = audit(repo, due=True, budget_bytes=1)  # stops after one replica
    assert first.stopped == "budget" and [p.kind for p in first.problems] == ["corrupt"]
    for f, data in zip(files, originals, strict=True):
        f.write_bytes(data)  # repaired before the next night
    second = audit(repo, due=True)
    assert second.resumed_from is None and second.exit_code == 0
    assert second.replicas == 3  # the two left over, and the one found damaged


def test_long_overdue_replicas_left_out_are_reported_stale(three_aips):
    repo, _ = three_aips
    _age(repo, 400, audited=True)  # more than twice the interval
    result = audit(repo, due=True, budget_bytes=1)
    assert [p.kind for p in result.problems] == ["stale", "stale"]
    assert result.status == "stale" and result.exit_code == 1


@given(st.integers(min_value=1, max_value=10**6),
       st.sampled_from(["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"]))
def test_byte_budgets_parse(n, unit):
    nbytes, seconds = parse_budget(f"{n}{unit}")
    assert seconds is None and nbytes >= n


def test_time_budgets_parse_and_nonsense_is_refused():
    assert parse_budget("2h") == (None, 7200)
    assert parse_budget("30m") == (None, 1800)
    with pytest.raises(ConfigError):
        parse_budget("soon")


def test_cron_and_systemd_lines_run_the_due_audit(repo):
    env = dict(os.environ, PRESERVE_REPO=str(repo.root))
    run = [sys.executable, "-m", "preserve", "schedule"]
    cron = subprocess.run(run + ["--cron"], env=env, capture_output=True, text=True).stdout
    assert cron.startswith("17 2 * * * ") and f"--repo {repo.root}" in cron
    assert "audit --due" in cron
    units = subprocess.run(run + ["--systemd"], env=env, capture_output=True, text=True).stdout
    assert "[Timer]" in units and "OnCalendar=" in units and "audit --due" in units
    # the daily rights review (issue 28), in both, and its cron line runs as it is
    assert "preserve-rights-review.timer" in units and "rights review" in units
    review = next(line for line in cron.splitlines() if line.startswith("5 0 * * * "))
    done = subprocess.run(review[len("5 0 * * * "):], shell=True, env=env, timeout=120)
    assert done.returncode == 0
    assert json.loads((repo.root / "last-rights-review.json").read_text()) == {"changed": []}


def test_schedule_leads_with_a_summary_of_aip_copies(three_aips):
    """Issue 22: one row per version and location (111 rows for 30 AIPs), no summary."""
    repo, _ = three_aips
    env = dict(os.environ, PRESERVE_REPO=str(repo.root), PRESERVE_NO_PROGRESS="1")
    said = subprocess.run([sys.executable, "-m", "preserve", "schedule"], env=env,
                          capture_output=True, text=True, timeout=60).stdout
    first = said.splitlines()[0]
    assert first.startswith("3 AIP cop(ies) (3 AIP(s) at 1 location(s)): 0 due now"), first
