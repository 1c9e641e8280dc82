"""Audit benchmark: preserve's full and quick audits against bagit-python and raw hashing.

Uses the ingest benchmark's corpora (benchmarks/work/corpus-*), ingests each once
(not timed), then times in the same run, warm cache, whole processes, interleaved
(full quick bagit hashlimit, full quick ...), medians of --reps runs (default 5):
  full      `preserve audit --full` (every byte, sha512 + sha256, both cores)
  quick     `preserve audit` (size + xxh3)
  bagit     bagit-python Bag(path).validate(processes=2) on the same stored bag
  hashlimit sha512 + sha256 of every file, 2 worker processes, nothing else:
            the machine's 2-core hashing limit for these algorithms

    .venv/bin/python benchmarks/audit.py [--only small|large] [--reps N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import PY, WORK, make_corpus, timed, warm  # noqa: E402

BAGIT = "import bagit, sys; bagit.Bag(sys.argv[1]).validate(processes=2)"
LIMIT = r'''
import hashlib, os, sys
from multiprocessing import get_context
def digest(path):
    hs = [hashlib.sha512(), hashlib.sha256()]
    buf = bytearray(1 << 20); mv = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            for h in hs: h.update(mv[:n])
    return path
if __name__ == "__main__":
    paths = [os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs]
    with get_context("spawn").Pool(2) as pool:
        for _ in pool.imap_unordered(digest, paths, chunksize=64 if len(paths) > 1000 else 1):
            pass
'''


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=("small", "large"))
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    for kind in [args.only] if args.only else ["small", "large"]:
        run(kind, args.reps)


def run(kind: str, reps: int) -> None:
    corpus = make_corpus(kind)
    (corpus / ".complete").rename(WORK / f".complete-{kind}")
    out = WORK / f"audit-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        env = dict(os.environ, PRESERVE_REPO=str(out / "repo"), PRESERVE_NO_PROGRESS="1")
        subprocess.run([PY, "-m", "preserve", "init"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([PY, "-m", "preserve", "ingest", str(corpus), "-c", "bench"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        aips = out / "repo" / "aips"  # an OCFL object's v1/content/, or the earlier layout's
        bag = next(aips.glob("*/*/*/*/v1/content"), None) or next(aips.glob("*/*/v1"))
        limit = out / "limit.py"
        limit.write_text(LIMIT)
        nbytes = sum(p.stat().st_size for p in (bag / "data").rglob("*") if p.is_file())
        commands = {"full": [PY, "-m", "preserve", "audit", "--full"],
                    "quick": [PY, "-m", "preserve", "audit"],
                    "bagit": [PY, "-c", BAGIT, str(bag)],
                    "hashlimit": [PY, str(limit), str(bag / "data")]}
        runs: dict[str, list] = {name: [] for name in commands}
        for _ in range(reps):  # interleaved (A B C D A B C D ...): drifts hit all alike
            for name, cmd in commands.items():
                warm(bag)
                runs[name].append(timed(cmd, env))
        results = {}
        for name, measured in runs.items():
            secs = statistics.median(m[0] for m in measured)
            peak, anon = max(m[1] for m in measured), max(m[2] for m in measured)
            results[name] = (secs, peak, anon)
            print(f"  {kind} {name:9s} {secs:6.2f} s  {nbytes / secs / 1e9:5.2f} GB/s  "
                  f"(runs {', '.join(f'{m[0]:.2f}' for m in measured)})  "
                  f"peak RSS {peak / 2**20:.0f} MiB (private {anon / 2**20:.0f})", flush=True)
        full, bagit, hl = results["full"][0], results["bagit"][0], results["hashlimit"][0]
        print(f"  {kind}: full audit = {bagit / full:.2f}x bagit validate; "
              f"{hl / full:.0%} of the 2-core hashing limit; quick audit "
              f"{nbytes / results['quick'][0] / 1e9:.2f} GB/s")
    finally:
        (WORK / f".complete-{kind}").rename(corpus / ".complete")
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
