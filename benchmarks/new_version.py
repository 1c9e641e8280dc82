"""New-version benchmark: what a version adding 10 files to a 20,000-file AIP costs.

Issue 9: such a version must write only those files plus the version's tag files,
PREMIS and inventory, in a small fraction of the ingest's time. Uses the ingest
benchmark's small corpus (20,000 files of 1-64 KiB, about 650 MB), ingests it once
(timed, as the reference), then, --reps times, adds a version of 10 new files of
1-64 KiB (services.new_version.add_version, the path migration takes) and a
description correction (`preserve describe`, no payload), each timed as a whole,
and reports the bytes each wrote into the object (its version folder, the root
inventory and sidecar) against the object's size.

    .venv/bin/python benchmarks/new_version.py [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import PY, ROOT, WORK, make_corpus  # noqa: E402

ADD = r'''
import sys
from pathlib import Path
from preserve.domain.premis import Agent, Event
from preserve.repository import Repository
from preserve.domain.clock import now_utc
from preserve.storage.new_version import VersionChange, add_version
repo = Repository(Path(sys.argv[1]))
files = sorted(Path(sys.argv[3]).iterdir())
change = VersionChange(
    "ten files added (benchmark)",
    Event("creation", now_utc(), "success", "ten files added by the benchmark"),
    [Agent("benchmark", "benchmarks/new_version.py", "software")],
    added=[(f"data/added-{sys.argv[4]}/{f.name}", f) for f in files])
print(add_version(repo, sys.argv[2], change).version)
'''


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    corpus = make_corpus("small")
    out = WORK / "new-version"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(os.environ, PRESERVE_REPO=str(out / "repo"), PRESERVE_NO_PROGRESS="1",
               PYTHONPATH=str(ROOT))
    try:
        subprocess.run([PY, "-m", "preserve", "init"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        start = time.perf_counter()
        done = subprocess.run([PY, "-m", "preserve", "ingest", str(corpus), "-c", "bench",
                               "--json"], env=env, check=True, capture_output=True, text=True)
        ingest_s = time.perf_counter() - start
        aip = json.loads(done.stdout)["id"]
        sys.path.insert(0, str(ROOT))
        from preserve.domain.ocfl import object_root

        obj = out / "repo" / "aips" / object_root(aip)
        print(f"ingest: 20,000 files, {_size(obj) / 1e6:.0f} MB object, {ingest_s:.2f} s")
        rng = random.Random(20261126)
        adds, describes = [], []
        for rep in range(args.reps):
            new = out / f"new-{rep}"
            new.mkdir()
            for i in range(10):
                (new / f"n{i}.bin").write_bytes(rng.randbytes(rng.randint(1024, 65536)))
            root_before = _size(obj) - sum(_size(v) for v in obj.glob("v*"))
            start = time.perf_counter()
            version = subprocess.run([PY, "-c", ADD, str(out / "repo"), aip, str(new),
                                      str(rep)], env=env, check=True, capture_output=True,
                                     text=True).stdout.strip()
            seconds = time.perf_counter() - start
            written = _size(obj / f"v{version}") + (obj / "inventory.json").stat().st_size + \
                (obj / "inventory.json.sha512").stat().st_size
            payload = _size(new)
            adds.append((seconds, written, payload))
            print(f"  v{version}: 10 files ({payload / 1e3:.0f} KB) added in {seconds:.2f} s; "
                  f"{written / 1e6:.2f} MB written (version folder and root inventory; "
                  f"object root before {root_before / 1e6:.2f} MB)", flush=True)
            start = time.perf_counter()
            subprocess.run([PY, "-m", "preserve", "describe", aip, "--title", f"T{rep}"],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - start
            version = int(version) + 1
            written = _size(obj / f"v{version}") + (obj / "inventory.json").stat().st_size
            describes.append((seconds, written))
            print(f"  v{version}: describe in {seconds:.2f} s; {written / 1e6:.2f} MB written",
                  flush=True)
        add_s = statistics.median(a[0] for a in adds)
        desc_s = statistics.median(d[0] for d in describes)
        print(f"median: add 10 files {add_s:.2f} s ({add_s / ingest_s:.1%} of the ingest), "
              f"describe {desc_s:.2f} s ({desc_s / ingest_s:.1%}); object "
              f"{_size(obj) / 1e6:.0f} MB")
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
