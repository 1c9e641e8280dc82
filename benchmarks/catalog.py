"""Catalog benchmark at scale (issue 13): a million file rows in PostgreSQL (and SQLite).

Fills a fresh catalog the way ingest does (per AIP: the staging row, its file rows in one
transaction through Catalog.add_files, the version, then "stored"), 1,000 AIPs of 1,000
files each, every row with real-looking paths, sha256, sha512 and xxh3 digests and a
format. Then times, warm, the median of 20:

- `list`: Catalog.list_aips() of every AIP, and of one collection;
- `show`: every catalog call `preserve show` makes for one AIP of 1,000 files;
- lookups: one file by (AIP, path), every holder of a sha256;

and reports the bytes per file row (table and indexes, from PostgreSQL's own sizes; the
SQLite file's size over its rows). The PostgreSQL server is a throwaway one (as the tests
make), fsync off: the bulk figure is the server's and preserve's CPU, not a disk's.

    .venv/bin/python benchmarks/catalog.py [--aips 1000] [--files 1000] [--sqlite]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from preserve.catalog import Catalog  # noqa: E402
from preserve.domain.model import FileRecord  # noqa: E402
from preserve.domain.ocfl import VersionRecord  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "catalog"
FOLDERS = ["correspondence", "minutes", "photographs/1923", "maps", "registers/baptisms"]
FORMATS = [("fmt/353", "Tagged Image File Format", "image/tiff"),
           ("fmt/11", "Portable Network Graphics", "image/png"),
           ("fmt/276", "Acrobat PDF 1.7", "application/pdf"),
           ("x-fmt/111", "Plain Text File", "text/plain")]


def records(aip: int, files: int):
    for i in range(files):
        seed = f"{aip}:{i}".encode()
        puid, name, mime = FORMATS[i % len(FORMATS)]
        yield FileRecord(
            path=f"data/{FOLDERS[i % len(FOLDERS)]}/item-{aip:05d}-{i:05d}.{mime[-3:]}",
            size=40_000 + i, digests={"sha256": hashlib.sha256(seed).hexdigest(),
                                      "sha512": hashlib.sha512(seed).hexdigest(),
                                      "xxh3_128": hashlib.md5(seed).hexdigest()},
            puid=puid, format=name, mime=mime, basis="signature", confidence="high")


def fill(catalog: Catalog, aips: int, files: int) -> tuple[float, list[str]]:
    """Seconds spent in add_files (the bulk insert), and the AIP ids."""
    spent = 0.0
    ids = []
    for a in range(aips):
        aip = f"{a:08x}-0000-4000-8000-{a:012x}"
        ids.append(aip)
        catalog.begin_aip(aip, f"Collection {a % 10}", f"Title {a}", "2026-11-26T00:00:00Z",
                          "/sips/x", "folder")
        rows = list(records(a, files))
        started = time.perf_counter()
        catalog.add_files(aip, 1, rows)
        spent += time.perf_counter() - started
        catalog.stage_version(aip, 1, VersionRecord(1, "2026-11-26T00:00:00Z", "Ingest",
                                                    "preserve", None),
                              files, sum(r.size for r in rows), f"{sum(r.size for r in rows)}"
                              f".{files}", "", "", "", [], title=f"Title {a}")
        catalog.mark_stored(aip, 1, "local", f"obj/{aip}", "2026-11-26T00:00:00Z")
        if a % 100 == 99:
            print(f"  {a + 1} AIPs, {(a + 1) * files:,} rows, {(a + 1) * files / spent:,.0f} "
                  "rows/s in add_files", flush=True)
    return spent, ids


def timed(fn, rounds: int = 20) -> float:
    fn()  # warm
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def show(catalog: Catalog, aip: str) -> None:
    aip_id = catalog.resolve(aip[:8])
    summary = catalog.get_aip(aip_id)
    list(catalog.files(aip_id, summary.version))
    catalog.format_counts(aip_id)
    catalog.events(aip_id)
    catalog.versions_of(aip_id)
    catalog.derivations(aip_id)


def measure(catalog: Catalog, ids: list[str], files: int) -> dict:
    middle = ids[len(ids) // 2]
    path = next(records(len(ids) // 2, files)).path
    digest = next(records(len(ids) // 2, files)).digests["sha256"]
    assert catalog.file_digests(middle, 1, path)
    assert catalog.holders(digest) == [(middle, 1, path)]
    return {
        "list (all AIPs)": timed(catalog.list_aips),
        "list (one collection)": timed(lambda: catalog.list_aips("Collection 3")),
        "show (one AIP, 1,000 files)": timed(lambda: show(catalog, middle)),
        "lookup by (AIP, path)": timed(lambda: catalog.file_digests(middle, 1, path), 200),
        "lookup by sha256": timed(lambda: catalog.holders(digest), 200),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aips", type=int, default=1000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--sqlite", action="store_true", help="also the same on SQLite")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    server = PostgresServer(WORK / "pg")
    try:
        targets = [("PostgreSQL", server.url)]
        if args.sqlite:
            targets.append(("SQLite", WORK / "catalog.sqlite"))
        for name, where in targets:
            Catalog.create_if_missing(where)
            catalog = Catalog(where)
            print(f"{name}: filling {args.aips:,} AIPs x {args.files:,} files")
            spent, ids = fill(catalog, args.aips, args.files)
            rows = args.aips * args.files
            if name == "PostgreSQL":
                catalog.execute("VACUUM ANALYZE files")
                table, indexes = catalog.execute(
                    "SELECT pg_table_size('files'), pg_indexes_size('files')").one()
                size = f"{(table + indexes) / rows:.0f} B/row ({table / rows:.0f} table, " \
                       f"{indexes / rows:.0f} indexes)"
            else:
                catalog.execute("ANALYZE")
                size = f"{os.path.getsize(where) / rows:.0f} B/row (the whole file)"
            print(f"{name}: bulk insert {rows / spent:,.0f} rows/s; {size}")
            for what, ms in measure(catalog, ids, args.files).items():
                print(f"{name}: {what}: {ms:.3f} ms")
            catalog.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
