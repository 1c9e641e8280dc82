"""Event log benchmark (issue 24): `log verify` over a million events.

A repository of 10,000 AIPs (catalog rows and a copy at the local location each) with
100 events per AIP, one in ten kept as a PREMIS document in its object's logs/ (as audits,
repairs and drills are): 1,000,000 events, 100,000 documents. Times, warm:

- signing: the million pending events joined to the log and the checkpoint signed, then
  the entries copied to the location (once);
- `log verify`: the catalog's tree recomputed and every checkpoint checked, the location's
  copy compared entry by entry, and every logs/ document hashed against its entry.

    .venv/bin/python benchmarks/event_log.py [--aips 10000] [--events 100]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from preserve.domain import ocfl  # noqa: E402
from preserve.repository import Repository  # noqa: E402
from preserve.storage.history import publish  # noqa: E402
from preserve.storage.log_check import verify  # noqa: E402
from preserve.storage.object_log import log_record  # noqa: E402

WORK = Path(__file__).resolve().parent / "work"
DOCUMENT = ('<?xml version="1.0" encoding="UTF-8"?>\n<premis:premis xmlns:premis='
            '"http://www.loc.gov/premis/v3" version="3.0">{}</premis:premis>\n')


def repository(aips: int, per_aip: int) -> Path:
    root = WORK / f"eventlog-{aips * per_aip}" / "repo"
    if (root / "ready").exists():
        return root
    shutil.rmtree(root.parent, ignore_errors=True)
    repo, _ = Repository.init(root)
    store = repo.locations["local"].root
    seq = 0
    with repo.catalog.transaction() as db:
        for a in range(aips):
            aip = str(uuid.UUID(int=a + 1))
            obj = ocfl.object_root(aip)
            db.execute("INSERT INTO aips VALUES (?, 'c', NULL, 'stored', ?, NULL, NULL)",
                       (aip, "2026-01-01T00:00:00Z"))
            db.execute("INSERT INTO replicas VALUES (?, 1, 'local', ?, 'verified', ?, NULL)",
                       (aip, obj + "v1/", "2026-01-01T00:00:00Z"))
            rows = []
            (store / obj / "logs").mkdir(parents=True)
            for e in range(per_aip):
                seq += 1
                event = str(uuid.UUID(int=(a + 1) << 32 | e))
                record = None
                if e % 10 == 9:
                    name = f"logs/20260101T000000Z-local-v1-{event}.xml"
                    data = DOCUMENT.format(f"<!-- {event} -->" * 30).encode()
                    (store / obj / name).write_bytes(data)
                    record = log_record("local", name, hashlib.sha256(data).hexdigest())
                rows.append((event, aip, "fixity check", f"2026-01-01T00:{e // 60:02d}:"
                             f"{e % 60:02d}Z", "success", "full fixity audit of AIP version 1 "
                             "at location 'local': every file", "no problem found",
                             "preserve-0.1.0", None, seq, record))
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           rows)
    start = time.perf_counter()
    publish(repo)
    print(f"signed and copied {seq:,} events in {time.perf_counter() - start:.1f} s")
    repo.close()
    (root / "ready").write_text("")
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aips", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100)
    args = parser.parse_args()
    root = repository(args.aips, args.events)
    for _ in range(3):
        repo = Repository(root)
        start = time.perf_counter()
        report = verify(repo)
        took = time.perf_counter() - start
        repo.close()
        assert report.status == "ok", report.problems[:5]
        print(f"log verify: {report.size:,} entries, {report.documents:,} logs/ documents "
              f"in {took:.1f} s ({report.size / took:,.0f} entries/s)")


if __name__ == "__main__":
    main()
