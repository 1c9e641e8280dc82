"""`storage migrate` against `replicate` to the same kind of target (issue 25: at least
90 % of replicate's speed). One repository, its AIPs on "local"; in the same run:

  replicate  `preserve replicate --to copyA` (each file verified as it is copied)
  migrate    `preserve storage migrate local copyB` (the same copy, then every byte at
             copyB read back and re-hashed by a full audit before anything is retired)

Data: `small` 20 AIPs of 250 files of 1-64 KiB; `large` 4 AIPs of 2 files of 128 MiB.
Caches are warm for both (the source was just read by ingest), as a migration's would be
on a busy disk; figures are the median of three.

    .venv/bin/python benchmarks/storage_migrate.py [--only small|large]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "work" / "storage-migrate"
PY = sys.executable


def make_sources(kind: str) -> list[Path]:
    rng = random.Random(25)
    out = []
    aips, files, size = (20, 250, None) if kind == "small" else (4, 2, 128 * 2**20)
    for a in range(aips):
        folder = WORK / f"src-{kind}" / f"aip{a}"
        folder.mkdir(parents=True)
        for i in range(files):
            n = size or rng.randint(1024, 64 * 1024)
            (folder / f"f{i:04d}.bin").write_bytes(os.urandom(n))
        out.append(folder)
    return out


def preserve(root: Path, *args: str) -> float:
    env = dict(os.environ, PRESERVE_REPO=str(root), PRESERVE_NO_PROGRESS="1")
    started = time.perf_counter()
    done = subprocess.run([PY, "-m", "preserve", *args], env=env, capture_output=True,
                          text=True)
    spent = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return spent


def run(kind: str) -> None:
    rounds = {"replicate": [], "migrate": []}
    for _ in range(3):
        shutil.rmtree(WORK, ignore_errors=True)
        WORK.mkdir(parents=True)
        sources = make_sources(kind)
        root = WORK / "repo"
        preserve(root, "init")
        for source in sources:
            preserve(root, "ingest", str(source), "--collection", "bench")
        total = sum(p.stat().st_size for s in sources for p in s.iterdir())
        for name in ("copyA", "copyB"):
            preserve(root, "storage", "add", name, str(WORK / name))
        rounds["replicate"].append(preserve(root, "replicate", "--to", "copyA"))
        rounds["migrate"].append(preserve(root, "storage", "migrate", "local", "copyB"))
    rep, mig = statistics.median(rounds["replicate"]), statistics.median(rounds["migrate"])
    mb = total / 2**20
    print(f"{kind}: {mb:,.0f} MiB; replicate {rep:.2f} s ({mb / rep:,.0f} MiB/s), "
          f"storage migrate {mig:.2f} s ({mb / mig:,.0f} MiB/s): {rep / mig:.0%} of "
          "replicate's speed", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=("small", "large"))
    args = parser.parse_args()
    for kind in ([args.only] if args.only else ["small", "large"]):
        run(kind)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
