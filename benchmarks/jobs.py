"""Queue benchmark (issue 13): what the job queue costs, and audits by workers against
today's single-process audit, on a real PostgreSQL (a throwaway server, as the tests).

1. No-op round trip: N jobs of a task that does nothing are deferred one at a time (the
   rate `--queue` enqueues at), then two worker processes of procrastinate drain them;
   jobs/s of each.
2. Audits: a repository of AIPS AIPs (FILES files of SIZE bytes each, random, so every
   byte is hashed), catalog on PostgreSQL. Timed, alternating, medians of ROUNDS:
   `preserve audit --full` (one process, its pool on both cores) against
   `preserve audit --full --queue` done by two `preserve worker` processes already
   waiting (one job at a time each), from the command's start to the last job done.
   The peak PSS of each worker process (its children included) is sampled every 20 ms.

    .venv/bin/python benchmarks/jobs.py [--rounds 3] [--aips 24] [--files 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ingest import children, proc_field  # noqa: E402

from preserve.ingest.ingest import Metadata, ingest  # noqa: E402
from preserve.repository import Repository  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "jobs"
PY = sys.executable
NOOP_APP = '''
import procrastinate
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo={url!r}))

@app.task(name="noop")
def noop():
    return None
'''


def noop_round_trip(url: str, jobs: int) -> tuple[float, float]:
    """(jobs/s deferred one at a time, jobs/s done by two worker processes)."""
    (WORK / "noopapp.py").write_text(NOOP_APP.format(url=url))
    sys.path.insert(0, str(WORK))
    import noopapp

    from preserve.catalog.queue import ensure_schema

    ensure_schema(url)
    with noopapp.app.open():
        started = time.perf_counter()
        for _ in range(jobs):
            noopapp.noop.defer()
        deferred = jobs / (time.perf_counter() - started)
    env = dict(os.environ, PYTHONPATH=str(WORK))
    started = time.perf_counter()
    workers = [subprocess.Popen([PY, "-m", "procrastinate", "--app", "noopapp.app", "worker",
                                 "--one-shot", "--concurrency", "4"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    for w in workers:
        w.wait()
    elapsed = time.perf_counter() - started
    import psycopg

    with psycopg.connect(url) as db:
        done = db.execute("SELECT COUNT(*) FROM procrastinate_jobs WHERE status = "
                          "'succeeded'").fetchone()[0]
    assert done == jobs, f"{done} of {jobs} no-op jobs succeeded"
    return deferred, jobs / elapsed


def make_repository(url: str, aips: int, files: int, size: int) -> Path:
    repo, _ = Repository.init(WORK / "repo", url)
    for a in range(aips):
        sip = WORK / "sips" / f"sip{a:03d}"
        sip.mkdir(parents=True)
        for f in range(files):
            (sip / f"file{f:04d}.bin").write_bytes(os.urandom(size))
        ingest(repo, sip, Metadata("Bench"))
        shutil.rmtree(sip)
    repo.close()
    return WORK / "repo"


def preserve(root: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PRESERVE_REPO=str(root), PRESERVE_NO_PROGRESS="1")
    return subprocess.Popen([PY, "-m", "preserve", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def peak_pss(procs: list[subprocess.Popen], peaks: dict[int, int], stop: threading.Event):
    while not stop.is_set():
        for p in procs:
            tree = [p.pid, *children(p.pid)]
            pss = sum(proc_field(pid, "Pss:", "smaps_rollup") for pid in tree)
            peaks[p.pid] = max(peaks.get(p.pid, 0), pss)
        time.sleep(0.02)


def audit_single(root: Path) -> float:
    started = time.perf_counter()
    code = preserve(root, "audit", "--full").wait()
    assert code == 0, code
    return time.perf_counter() - started


def audit_workers(root: Path, peaks: dict[int, int], url: str) -> float:
    """From `audit --full --queue` to the last audit job done, by two workers already
    running (as in production: workers wait for work; their start is not the audit's)."""
    import psycopg

    from preserve.catalog.queue import ensure_schema

    ensure_schema(url)
    workers = [preserve(root, "worker", "--heartbeat", "2") for _ in range(2)]
    stop = threading.Event()
    sampler = threading.Thread(target=peak_pss, args=(workers, peaks, stop), daemon=True)
    sampler.start()
    with psycopg.connect(url, autocommit=True) as db:
        def count(sql: str) -> int:
            return db.execute(sql).fetchone()[0]

        while count("SELECT COUNT(*) FROM procrastinate_workers") < 2:
            time.sleep(0.05)
        done_before = count("SELECT COUNT(*) FROM procrastinate_jobs WHERE status = "
                            "'succeeded' AND task_name = 'preserve:audit'")
        started = time.perf_counter()
        assert preserve(root, "audit", "--full", "--queue").wait() == 0
        while count("SELECT COUNT(*) FROM procrastinate_jobs WHERE task_name = "
                    "'preserve:audit' AND status IN ('todo', 'doing')"):
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        failed = count("SELECT COUNT(*) FROM procrastinate_jobs WHERE status = 'failed'")
        done = count("SELECT COUNT(*) FROM procrastinate_jobs WHERE status = 'succeeded' "
                     "AND task_name = 'preserve:audit'") - done_before
    for w in workers:
        w.terminate()  # SIGTERM: they finish and exit
    codes = [w.wait() for w in workers]
    stop.set()
    sampler.join()
    assert codes == [0, 0] and failed == 0 and done > 0, (codes, failed, done)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--aips", type=int, default=24)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--size", type=int, default=256 * 1024)
    parser.add_argument("--noop-jobs", type=int, default=2000)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    server = PostgresServer(WORK / "pg")
    try:
        noop_db = server.new_database("noop")
        deferred, done = noop_round_trip(noop_db, args.noop_jobs)
        print(f"no-op jobs: deferred {deferred:,.0f}/s one at a time; done {done:,.0f}/s by "
              "2 worker processes (concurrency 4 each)")
        root = make_repository(server.url, args.aips, args.files, args.size)
        total = args.aips * args.files * args.size
        print(f"audit data: {args.aips} AIPs x {args.files} files x {args.size:,} B = "
              f"{total / 1e6:,.0f} MB")
        single, queued, peaks = [], [], {}
        for r in range(args.rounds):
            order = (audit_single, audit_workers) if r % 2 == 0 else (audit_workers,
                                                                      audit_single)
            for fn in order:
                (single if fn is audit_single else queued).append(
                    fn(root) if fn is audit_single else fn(root, peaks, server.url))
        s, q = statistics.median(single), statistics.median(queued)
        print(f"audit --full, one process: {s:.2f} s ({total / s / 1e6:.0f} MB/s)")
        print(f"audit --full --queue, 2 workers waiting: {q:.2f} s ({total / q / 1e6:.0f} MB/s); "
              f"{s / q * 100:.0f} % of the single process's throughput")
        print(f"worker peak PSS (with children): {max(peaks.values()) / 2**20:.0f} MiB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
