"""Many workers on one queue (issue 13): real PostgreSQL, real worker processes, a real
SIGKILL. Each worker process stands in for a machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from tests.conftest import content_key, many_small_files

AIPS = 24
DAMAGED = 7


def _preserve(root: Path, *args: str, killer: tuple[str, int] | None = None,
              **popen) -> subprocess.Popen:
    env = dict(os.environ, PRESERVE_REPO=str(root), PRESERVE_NO_PROGRESS="1")
    command = [sys.executable, "-m", "preserve"]
    if killer:
        command = [sys.executable, "-m", "tests.killer", killer[0], str(killer[1])]
    return subprocess.Popen([*command, *args], env=env, text=True, **popen)


def _run(root: Path, *args: str, code: int = 0) -> str:
    proc = _preserve(root, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, out + err
    assert "Traceback" not in err
    return out


def _jobs(root: Path) -> list[dict]:
    """`preserve jobs --json` (exit 1 once a job has failed: not expected here)."""
    return json.loads(_run(root, "jobs", "--json"))


def _wait_for(predicate, timeout: float, what: str, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def _full_audits(root: Path) -> list[dict]:
    """The audit jobs --queue made (the periodic scheduler may add due audits, of the
    damaged copy: due until it is repaired)."""
    jobs = [j for j in _jobs(root) if j["task"] == "audit"]
    assert all(j["status"] != "failed" for j in jobs), jobs
    return [j for j in jobs if j["args"]["mode"] == "full"]


@pytest.fixture
def shared(tmp_path, fresh_database) -> tuple[Path, list[str]]:
    """A repository on PostgreSQL with AIPS small AIPs, one file of one of them silently
    corrupted on disk."""
    repo, _ = Repository.init(tmp_path / "repo", fresh_database)
    aips = []
    for n in range(AIPS):
        source = tmp_path / "sips" / f"sip{n:02d}"
        (source / "letters").mkdir(parents=True)
        for i in range(5):
            (source / "letters" / f"letter{i}.txt").write_text(f"AIP {n}, letter {i}\n" * 50)
        aips.append(ingest(repo, source, Metadata("Letters"), workers=1).aip_id)
    bag = repo.primary_location().bag_path(content_key(aips[DAMAGED]))
    target = bag / "data" / "letters" / "letter3.txt"
    target.write_text("bit rot!" * (target.stat().st_size // 8))  # same size: silent
    repo.close()
    return repo.root, aips


@pytest.mark.storage_left_damaged
def test_three_workers_one_killed_audit_everything_once(shared):
    """Three worker processes share the audits of AIPS AIP copies; one is killed with
    SIGKILL while it holds a job (in the middle of its first audit). The job is found
    through the missing heartbeats and retried by a survivor; every AIP is audited as one
    machine would have done it, the corrupt file is reported once, and SIGTERM stops the
    survivors cleanly."""
    root, aips = shared
    out = json.loads(_run(root, "audit", "--queue", "--full", "--json"))
    assert out["task"] == "audit" and len(out["jobs"]) == AIPS
    again = json.loads(_run(root, "audit", "--queue", "--full", "--json"))
    assert again["jobs"] == []  # one waiting job per AIP copy

    worker = ("worker", "--heartbeat", "1")
    doomed = _preserve(root, *worker, killer=("preserve.catalog:Catalog."
                                              "record_checks", 1),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # the doomed worker takes the first job before the others start
    _wait_for(lambda: any(j["status"] != "queued" for j in _jobs(root)), 30, "a first job")
    survivors = [_preserve(root, *worker, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(2)]
    try:
        assert doomed.wait(timeout=30) == -signal.SIGKILL
        audits = _wait_for(lambda: (lambda js: js if all(
            j["status"] == "succeeded" for j in js) else None)(_full_audits(root)),
            90, "every audit")
    finally:
        for proc in survivors:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc in survivors]
        doomed.kill()
    assert codes == [0, 0], [p.stderr.read() for p in survivors]

    assert sorted(j["aip"] for j in audits) == sorted(aips)
    retried = [j for j in audits if j["attempts"] > 1]
    assert len(retried) == 1 and retried[0]["attempts"] == 2
    assert len({j["worker"] for j in audits}) >= 2  # the work was shared
    problems = [p for j in audits for p in j["result"]["problems"]]
    assert [(p["kind"], p["aip"], p["path"]) for p in problems] == [
        ("corrupt", aips[DAMAGED], "data/letters/letter3.txt")]
    assert all(j["result"]["status"] == ("damaged" if j["aip"] == aips[DAMAGED] else "ok")
               for j in audits)

    # as one machine: one fixity check event per audit run of each AIP copy (the killed
    # run's was continued by its retry, not doubled), failed only for the damaged one
    runs = Counter(j["aip"] for j in _jobs(root) if j["task"] == "audit")
    assert set(runs) == set(aips) and all(n == 1 for a, n in runs.items() if a != aips[DAMAGED])
    repo = Repository(root)
    try:
        for aip in aips:
            checks = [e for e in repo.catalog.events(aip) if e.type == "fixity check"]
            assert [e.outcome for e in checks] == [
                "failure" if aip == aips[DAMAGED] else "success"] * runs[aip], aip
        unfinished = repo.catalog.execute(
            "SELECT COUNT(*) FROM audit_runs WHERE status IN ('running', 'interrupted')").scalar()
        assert unfinished == 0
    finally:
        repo.close()
    assert _jobs(root)[0]["status"] in ("succeeded", "queued")  # none left running


def test_queued_ingest_replication_repair_and_a_second_delivery(tmp_path, fresh_database,
                                                                 collection):
    """Ingest and replication as jobs, on a repository of two disks; `worker --once` runs
    them; a job delivered again after it finished (at-least-once delivery) does nothing
    twice; a worker on another disk's queue leaves the jobs alone; --queue on a SQLite
    repository says why not."""
    repo, created = Repository.init(tmp_path / "repo", fresh_database)
    assert any(c.startswith("job queue tables") for c in created)
    assert "0 job(s)" in _run(repo.root, "jobs")
    (tmp_path / "disk2").mkdir()
    (repo.root / "locations" / "disk2.yaml").write_text(yaml.safe_dump(
        {"name": "disk2", "kind": "local", "path": str(tmp_path / "disk2")}))
    root = repo.root
    repo.close()

    queued = json.loads(_run(root, "ingest", str(collection), "-c", "Letters", "--title", "T",
                             "--queue", "--json"))
    assert queued["task"] == "ingest" and len(queued["jobs"]) == 1
    # a worker serving only another disk's queue takes nothing
    _run(root, "worker", "--once", "--queues", "at-disk2")
    assert [j["status"] for j in _jobs(root) if j["task"] == "ingest"] == ["queued"]
    _run(root, "worker", "--once", "--queues", "at-local")
    [job] = [j for j in _jobs(root) if j["task"] == "ingest"]
    assert job["status"] == "succeeded" and job["result"]["id"] == queued["aip"]

    policy = root / "policies" / "default.yaml"
    data = yaml.safe_load(policy.read_text())
    data["replication"] = {"copies": 2, "locations": ["local", "disk2"]}
    policy.write_text(yaml.safe_dump(data))
    replicate = json.loads(_run(root, "replicate", "--queue", "--json"))
    assert len(replicate["jobs"]) == 1
    _run(root, "worker", "--once")
    repo = Repository(root)
    try:
        assert repo.catalog.list_aips()[0].locations == ["disk2", "local"]
        # deliver the finished ingest job again, as a worker that died before marking it
        # done would: it finds its result and makes no second AIP
        repo.catalog.execute("UPDATE procrastinate_jobs SET status = 'todo' WHERE id = ?",
                             (job["id"],))
    finally:
        repo.close()
    _run(root, "worker", "--once")
    assert len(json.loads(_run(root, "list", "--json"))) == 1
    again = [j for j in _jobs(root) if j["id"] == job["id"]][0]
    assert again["status"] == "succeeded" and again["attempts"] == 2

    repair = json.loads(_run(root, "repair", "--queue", "--json"))
    _run(root, "worker", "--once")
    [done] = [j for j in _jobs(root) if j["id"] in repair["jobs"]]
    assert done["status"] == "succeeded" and done["result"]["status"] == "ok"
    assert "succeeded" in _run(root, "jobs")


def test_the_queue_needs_postgresql(tmp_path, collection):
    repo, _ = Repository.init(tmp_path / "repo")
    repo.close()
    for args in (("audit", "--queue"), ("worker", "--once"), ("jobs",)):
        proc = _preserve(tmp_path / "repo", *args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        assert "PostgreSQL" in err and "Traceback" not in err


@pytest.mark.storage_left_damaged
def test_a_large_copy_is_audited_by_a_chain_of_chunks(tmp_path, fresh_database):
    """An AIP copy bigger than a job's share is audited by successive jobs, each
    continuing the same run (audits read in batches of 256 files: with a share of one
    byte, each job reads one batch); the last reports the whole run, the damage found by
    the first included, and the chain ends."""
    from preserve.admin import tasks

    repo, _ = Repository.init(tmp_path / "repo", fresh_database)
    try:
        aip = ingest(repo, many_small_files(tmp_path / "big", 600), Metadata("Big"),
                     workers=1).aip_id
        damaged = repo.primary_location().bag_path(content_key(aip)) / "data/d00/f00000.txt"
        damaged.write_text("file X\n")
        app = tasks._app(repo).open()
        try:
            first = tasks._defer(app, "audit", queue_name="at-local",
                                 lock=f"aip:{aip}", queueing_lock=None, aip=aip,
                                 location="local", mode="full", chunk_bytes=1)
        finally:
            app.close()
    finally:
        repo.close()
    _run(repo.root, "worker", "--once")
    chain = sorted((j for j in _jobs(repo.root) if j["task"] == "audit"),
                   key=lambda j: j["id"])
    assert chain[0]["id"] == first and len(chain) == 3  # 600 files + tag files: 3 batches
    assert all(j["status"] == "succeeded" for j in chain)
    assert [j["result"].get("continued_in") for j in chain] == [j["id"] for j in chain[1:]] + [None]
    last = chain[-1]["result"]
    assert last["complete"] and last["resumed_from"] == chain[0]["result"]["started"]
    assert [(p["kind"], p["path"]) for p in last["problems"]] == [
        ("corrupt", "data/d00/f00000.txt")]
    assert [j["result"]["files"] for j in chain] == [256, 256, 101]  # each file once


def test_a_queued_migration_adds_a_proven_version(tmp_path, fresh_database):
    """migrate --apply --queue: one job per AIP with files due; the worker converts,
    proves and adds the version; nothing is due after."""
    from tests import media

    repo, _ = Repository.init(tmp_path / "repo", fresh_database)
    src = tmp_path / "src"
    src.mkdir()
    media.bmp(src / "scan.bmp")
    aip = ingest(repo, src, Metadata("Scans"), workers=1).aip_id
    repo.close()
    root = tmp_path / "repo"
    _run(root, "migrate", "--queue", code=2)  # --queue goes with --apply
    queued = json.loads(_run(root, "migrate", "--apply", "--queue", "--puid", "fmt/116",
                             "--json"))
    assert len(queued["jobs"]) == 1
    _run(root, "worker", "--once")
    [job] = [j for j in _jobs(root) if j["task"] == "migrate"]
    assert job["status"] == "succeeded" and job["aip"] == aip and job["args"]["puid"] == "fmt/116"
    assert [m["derivative"] for m in job["result"]["migrated"]] == ["data/scan.png"]
    assert json.loads(_run(root, "show", aip, "--json"))["version"] == 2
    assert json.loads(_run(root, "migrate", "--apply", "--queue", "--json"))["jobs"] == []


@pytest.mark.storage_left_damaged
def test_due_audits_are_enqueued_once_each_within_the_cap(tmp_path, fresh_database):
    """The periodic scheduler's work: a copy found damaged is due (until repaired), a
    copy audited clean is not; one waiting job per copy; the cap holds the rest back."""
    from preserve.admin.tasks import _app, enqueue_due_audits
    from preserve.storage.audit import audit

    repo, _ = Repository.init(tmp_path / "repo", fresh_database)
    aips = []
    for n in range(3):
        src = tmp_path / f"s{n}"
        src.mkdir()
        (src / "a.txt").write_text(f"{n}\n" * 100)
        aips.append(ingest(repo, src, Metadata("c"), workers=1).aip_id)
    for n in (0, 1):
        bag = repo.primary_location().bag_path(content_key(aips[n]))
        (bag / "data" / "a.txt").write_text("X\n" * 100)
    assert audit(repo, full=True).exit_code == 1  # two copies now due, the third not
    _app(repo)  # the queue's tables
    assert enqueue_due_audits(repo, cap=1)["queued"] == 1
    assert enqueue_due_audits(repo, cap=1)["queued"] == 0  # one waiting: the cap
    second = enqueue_due_audits(repo)
    assert second["due"] == 1 and second["queued"] == 1  # the other one only
    assert enqueue_due_audits(repo)["queued"] == 0
    jobs = repo.catalog.execute("SELECT args->>'aip', args->>'mode' FROM procrastinate_jobs "
                                "ORDER BY id").fetchall()
    assert sorted(a for a, _mode in jobs) == sorted(aips[:2])
    assert {mode for _a, mode in jobs} == {"due"}
    repo.close()


def test_sigterm_lets_the_running_job_finish(tmp_path, fresh_database):
    """SIGTERM while a job runs: the worker takes no other, finishes that one (recorded
    as succeeded), and exits 0; the next job waits for another worker."""
    import psycopg

    repo, _ = Repository.init(tmp_path / "repo", fresh_database)
    aips = [ingest(repo, many_small_files(tmp_path / f"big{n}", 3000), Metadata("Big"),
                   workers=1).aip_id for n in range(2)]
    repo.close()
    root = tmp_path / "repo"
    assert len(json.loads(_run(root, "audit", "--full", "--queue", "--json"))["jobs"]) == 2
    worker = _preserve(root, "worker", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with psycopg.connect(fresh_database, autocommit=True) as db:
        _wait_for(lambda: db.execute("SELECT COUNT(*) FROM procrastinate_jobs WHERE status = "
                                     "'doing' AND task_name = 'preserve:audit'").fetchone()[0],
                  30, "a running audit", every=0.02)  # the first: an audit takes a second
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    statuses = sorted(j["status"] for j in _jobs(root) if j["task"] == "audit")
    assert statuses == ["queued", "succeeded"]
    [done] = [j for j in _jobs(root) if j["status"] == "succeeded" and j["task"] == "audit"]
    assert done["result"]["complete"] and done["aip"] in aips
