"""The health report at scale (issue 25: under 5 s for 100,000 AIPs / 1 million files, on
both catalogs). Fills a repository's catalog directly (bulk rows as a rebuild writes
them: AIPs, versions, files with formats, two copies each, three events per AIP), then
times `preserve report --json` end to end (the process, as a cron job runs it) and
admin.report.build alone, warm, the best of three.

    .venv/bin/python benchmarks/report.py [--aips 100000] [--files 10] [--sqlite-only]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from preserve.repository import Repository  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "report"
FORMATS = [("fmt/353", "Tagged Image File Format", "image/tiff"),
           ("fmt/11", "Portable Network Graphics", "image/png"),
           ("fmt/276", "Acrobat PDF 1.7", "application/pdf"),
           ("x-fmt/111", "Plain Text File", "text/plain"),
           ("fmt/40", "Microsoft Word Document", "application/msword")]


def fill(repo: Repository, aips: int, files: int) -> None:
    catalog = repo.catalog
    batch = 2_000
    for start in range(0, aips, batch):
        a_rows, v_rows, f_rows, r_rows, e_rows = [], [], [], [], []
        for a in range(start, min(start + batch, aips)):
            aip = f"{a:08x}-0000-4000-8000-{a:012x}"
            month = f"20{20 + a * 6 // aips:02d}-{a % 12 + 1:02d}"
            when = f"{month}-15T10:00:00Z"
            a_rows.append((aip, f"Collection {a % 25}", None, "stored", when, "/sips/x",
                           "folder"))
            size = 0
            for i in range(files):
                seed = f"{a}:{i}".encode()
                puid, name, mime = FORMATS[(a + i) % len(FORMATS)]
                size += 40_000 + i
                f_rows.append((aip, 1, f"data/item-{i:05d}.bin", 40_000 + i,
                               hashlib.sha256(seed).hexdigest(), hashlib.sha512(seed).hexdigest(),
                               hashlib.md5(seed).hexdigest(), puid, name, None, mime,
                               "signature", None, "high", mime, name))
            v_rows.append((aip, 1, when, files, size, f"{size}.{files}", "", "", "", "Ingest",
                           "preserve", None, f"Title {a}", "stored"))
            for location in ("local", "disk2"):
                r_rows.append((aip, 1, location, f"obj/{aip}/v1/", "verified", when, when))
            for n, kind in enumerate(("ingestion", "format identification", "fixity check")):
                e_rows.append((f"{aip[:-4]}{n:04d}", aip, kind, when, "success", kind, None,
                               "preserve-0.1.0", 1, None, None))
        with catalog.transaction() as db:
            db.executemany("INSERT INTO aips VALUES (?, ?, ?, ?, ?, ?, ?)", a_rows)
            db.executemany("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                           "?, ?)", v_rows)
            db.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                           "?, ?, ?)", f_rows)
            db.executemany("INSERT INTO replicas VALUES (?, ?, ?, ?, ?, ?, ?)", r_rows)
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           e_rows)
    catalog.execute("ANALYZE")


def timed_command(root: Path) -> float:
    env = dict(os.environ, PRESERVE_REPO=str(root), PRESERVE_NO_PROGRESS="1")
    best = None
    for _ in range(3):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "preserve", "report", "--json"],
                              env=env, capture_output=True)
        spent = time.perf_counter() - started
        assert done.returncode in (0, 1), done.stderr.decode()[-2000:]
        best = spent if best is None else min(best, spent)
    return best


def timed_build(root: Path) -> float:
    from preserve.admin.report import build

    best = None
    for _ in range(3):
        repo = Repository(root)
        started = time.perf_counter()
        build(repo)
        spent = time.perf_counter() - started
        repo.close()
        best = spent if best is None else min(best, spent)
    return best


def slow_queries(root: Path) -> None:
    from preserve.admin.report import build
    from preserve.catalog import database

    original = database.Database.execute

    def timed(self, sql, args=()):
        started = time.perf_counter()
        rows = original(self, sql, args)
        spent = time.perf_counter() - started
        if spent > 0.1:
            print(f"  {spent:.2f} s  {sql[:90]}")
        return rows

    database.Database.execute = timed
    try:
        repo = Repository(root)
        build(repo)
        repo.close()
    finally:
        database.Database.execute = original


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aips", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgresql-only", action="store_true")
    parser.add_argument("--queries", action="store_true",
                        help="also name each query over 0.1 s of one build")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    server = None if args.sqlite_only else PostgresServer(WORK / "pg")
    try:
        targets = ([] if args.postgresql_only else [("SQLite", None)]) + (
            [("PostgreSQL", server.url)] if server else [])
        for name, url in targets:
            root = WORK / name.lower()
            repo, _ = Repository.init(root, url)
            (WORK / f"{name}-disk2").mkdir()
            (root / "locations" / "disk2.yaml").write_text(
                f"name: disk2\nkind: local\npath: {WORK / f'{name}-disk2'}\n")
            started = time.perf_counter()
            fill(repo, args.aips, args.files)
            repo.close()
            print(f"{name}: {args.aips:,} AIPs, {args.aips * args.files:,} files filled in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            if args.queries:
                slow_queries(root)
            print(f"{name}: report build {timed_build(root):.2f} s; "
                  f"`preserve report --json` {timed_command(root):.2f} s", flush=True)
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
