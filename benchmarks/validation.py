"""Validation at ingest (issue 26): ingest of the realistic corpus with validation off and
on, side by side in one sitting, and what each validator costs per file and per MB.

    .venv/bin/python benchmarks/validation.py [--reps 3] [--virus]

- ingest: `preserve ingest` of benchmarks/work/corpus-real (realistic.py: about 1,500 files
  of real formats, 300 MB) into a new repository each time, page cache warm, reps
  alternating off/on; the ratio on/off is the figure the issue asks for (at most 1.5).
- per validator: the corpus's files grouped by the validator they get, each group run
  through the sandboxed child alone (validating.validate_paths, one process), seconds
  per file and MB/s, so the cost of each format can be quoted.
- --virus: ClamAV (clamscan with a one-signature database made here) over the corpus,
  timed alone: the engine's start and its walk of the files (the official signatures
  add about 10-20 s of loading and 1.5 GB; not available offline here).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))


def corpus() -> Path:
    from ingest import make_corpus

    return make_corpus("real")


def ingest_once(source: Path, validate: str) -> float:
    repo = WORK / f"validation-repo-{validate}"
    shutil.rmtree(repo, ignore_errors=True)
    env = dict(os.environ, PRESERVE_REPO=str(repo), PRESERVE_NO_PROGRESS="1")
    subprocess.run([sys.executable, "-m", "preserve", "init"], env=env, check=True,
                   capture_output=True)
    policy = repo / "policies" / "default.yaml"
    text = policy.read_text()
    text = text.replace("  validate: on", f"  validate: {validate}")
    text = text.replace("  virus: on", "  virus: off")
    policy.write_text(text)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "preserve", "ingest", str(source), "-c",
                           "bench"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: the corpus holds a file validation marks
        raise SystemExit(done.stdout + done.stderr)
    shutil.rmtree(repo, ignore_errors=True)
    return seconds


def per_validator(source: Path) -> list[tuple[str, int, int, float]]:
    import magic

    from preserve.domain.identify import combine, siegfried_entries
    from preserve.pipeline.validating import Item, kind_for, validate_paths

    paths = sorted(str(p) for p in source.rglob("*") if p.is_file())
    groups: dict[str, list] = {}
    for path, entry in zip(paths, siegfried_entries(paths, 2), strict=True):
        size = os.path.getsize(path)
        found = combine(entry, size, (None, None))
        mime = found.mime or magic.from_file(path, mime=True)
        kind = kind_for(found.puid, mime, path)
        if kind and size:
            groups.setdefault(kind, []).append(Item(path, kind, mime, size, path))
    out = []
    for kind, items in sorted(groups.items()):
        started = time.perf_counter()
        verdicts = validate_paths(items)
        seconds = time.perf_counter() - started
        bad = sum(1 for v in verdicts.values() if v.status != "valid")
        out.append((kind, len(items), sum(i.size for i in items), seconds, bad))
    return out


def virus(source: Path) -> float:
    from preserve.pipeline.virus import scan_folder

    sample = WORK / "eicar.com"
    sample.write_bytes(b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
    db = WORK / "bench.hdb"
    db.write_text(subprocess.run(["sigtool", "--md5", str(sample)], capture_output=True,
                                 text=True, check=True).stdout)
    started = time.perf_counter()
    scan = scan_folder(source, database_path=db, max_age_days=30)
    seconds = time.perf_counter() - started
    assert scan.done, scan.why_not
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--virus", action="store_true")
    args = parser.parse_args()
    source = corpus()
    files = sum(1 for p in source.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    subprocess.run(["sh", "-c", f"find '{source}' -type f -print0 | xargs -0 cat >/dev/null"],
                   check=True)
    print(f"corpus: {files} files, {size / 1e6:.0f} MB ({source})")
    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.reps):
        for mode in ("off", "on"):
            times[mode].append(ingest_once(source, mode))
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(f"ingest, validation off: {off:.2f} s (runs {', '.join(f'{t:.2f}' for t in times['off'])})")
    print(f"ingest, validation on:  {on:.2f} s (runs {', '.join(f'{t:.2f}' for t in times['on'])})")
    print(f"ratio on/off: {on / off:.2f} (target at most 1.5)")
    print("\nper validator, one sandboxed child, one core:")
    print(f"{'validator':<12} {'files':>6} {'MB':>8} {'s':>7} {'ms/file':>8} {'MB/s':>7} marked")
    for kind, n, nbytes, seconds, bad in per_validator(source):
        print(f"{kind:<12} {n:>6} {nbytes / 1e6:>8.1f} {seconds:>7.2f} "
              f"{1000 * seconds / n:>8.1f} {nbytes / 1e6 / seconds:>7.1f} {bad}")
    if args.virus:
        print(f"\nClamAV (clamscan, one-signature database) over the corpus: "
              f"{virus(source):.2f} s")


if __name__ == "__main__":
    main()
