"""Ingest benchmark: preserve against the peer pipeline and a single-pass lower bound.

Builds a deterministic corpus (once, cached in benchmarks/work/):
  small: 20,000 files of 1-64 KiB (about 650 MB) in 200 folders
  large: 8 files of 256 MiB
  many:  200,000 files of 0-200 bytes (only with --only many: memory whatever
         the number of files)
  real:  about 1,500 files of real formats, unique content (benchmarks/realistic.py:
         images, PDFs, WAV, text in three scripts, HTML/XML/CSV/JSON, ZIP)
and times, in the same run, on the same data, each as a whole process with a
warm page cache:
  preserve  `preserve ingest` (copy + sha512/sha256/xxh3 + siegfried + libmagic
            + PREMIS + catalog + syncfs before the atomic rename)
  peer      `cp -r` of the tree (what keeps the source untouched, timed), then
            bagit-python make_bag(processes=2, sha512+sha256) on the copy, then
            siegfried (pygfried identify_many, 2 workers) on the same files
  bound     a minimal reader/writer: read once, sha512+sha256+xxh3, write, 2
            worker processes, one syncfs at the end (as durable as preserve)
Peak memory is summed over each process tree, sampled every 20 ms: RSS (counts a
shared library once per process), private memory, and PSS (shared pages split
between the processes that map them: what the tree really takes).
Outputs are deleted only at the end: on this VM's journal-less ext4, creating
files soon after deleting tens of thousands is several times slower.

    .venv/bin/python benchmarks/ingest.py [--reps 3] [--only small|large|many]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
PY = sys.executable
ROOT = HERE.parent

BOUND = r'''
import ctypes, hashlib, os, sys, xxhash
from multiprocessing import get_context
def copy_hash(job):
    src, dst = job
    buf = bytearray(1 << 20); mv = memoryview(buf)
    hs = [hashlib.sha512(), hashlib.sha256(), xxhash.xxh3_128()]
    with open(src, "rb", buffering=0) as fi, open(dst, "wb", buffering=0) as fo:
        while n := fi.readinto(buf):
            chunk = mv[:n]
            for h in hs: h.update(chunk)
            while chunk:
                chunk = chunk[fo.write(chunk):]
    return dst, [h.hexdigest() for h in hs]
if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    jobs = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        rel = os.path.relpath(dirpath, src)
        os.makedirs(os.path.join(dst, "data", rel), exist_ok=True)
        for fn in sorted(filenames):
            jobs.append((os.path.join(dirpath, fn), os.path.join(dst, "data", rel, fn)))
    with get_context("spawn").Pool(2) as pool, open(os.path.join(dst, "manifest"), "w") as m:
        chunk = 64 if len(jobs) > 1000 else 1  # few big files: one each, or one worker gets all
        for dst_path, digests in pool.imap_unordered(copy_hash, jobs, chunksize=chunk):
            m.write(f"{digests[0]}  {dst_path}\n")
    fd = os.open(dst, os.O_RDONLY)
    ctypes.CDLL(None).syncfs(fd)
'''

PEER = r'''
import os, subprocess, sys, bagit, pygfried
source, bag = sys.argv[1], sys.argv[2]
subprocess.run(["cp", "-r", source, bag], check=True)
bagit.make_bag(bag, checksums=["sha512", "sha256"], processes=2)
paths = []
for dirpath, dirnames, filenames in os.walk(os.path.join(bag, "data")):
    paths.extend(os.path.join(dirpath, f) for f in filenames)
result = pygfried.identify_many(paths, workers=2)
assert len(result["files"]) == len(paths)
'''


def make_corpus(kind: str) -> Path:
    target = WORK / f"corpus-{kind}"
    done = target / ".complete"
    if done.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    if kind == "many":  # memory whatever the number of files, not speed
        rng = random.Random(20240603)
        for i in range(200_000):
            d = target / f"d{i % 100:03d}" / f"s{(i // 100) % 20:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:07d}.txt").write_bytes(rng.randbytes(rng.randint(0, 200)))
    elif kind == "real":
        from realistic import make

        make(target)
    elif kind == "small":
        rng = random.Random(20240601)
        for i in range(20_000):
            d = target / f"d{i % 10:02d}" / f"s{(i // 10) % 19:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:05d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 65536)))
    else:
        target.mkdir(parents=True)
        rng = random.Random(20240602)
        for i in range(8):
            with open(target / f"big{i}.bin", "wb") as f:
                for _ in range(256):
                    f.write(rng.randbytes(1 << 20))
    done.write_text("ok\n")
    return target


def warm(path: Path) -> None:
    subprocess.run(["sh", "-c", f"find '{path}' -type f -print0 | xargs -0 cat > /dev/null"],
                   check=True)


def children(pid: int) -> list[int]:
    """The child processes of `pid` (of every thread of it)."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return out


def proc_field(pid: int, field: str = "VmRSS:", source: str = "status") -> int:
    """A memory figure of one process, in bytes (0 once it has ended)."""
    try:
        with open(f"/proc/{pid}/{source}") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


def _tree_rss(pid: int, field: str = "VmRSS:", source: str = "status") -> int:
    """Summed resident memory of a process tree: VmRSS; RssAnon (private memory only,
    without the file pages a tool maps while it reads); or, from smaps_rollup, Pss (each
    shared page counted once across the tree: the memory the tree really takes)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += proc_field(p, field, source)
        stack.extend(children(p))
    return total


def timed(cmd: list[str], env: dict | None = None, ok: tuple[int, ...] = (0,)
          ) -> tuple[float, int, int, int, float]:
    """(seconds, peak tree RSS, peak tree private memory, peak tree PSS, CPU seconds of
    the whole tree); an exit code not in `ok` stops the benchmark."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = peak_anon = peak_pss = 0
    stop = threading.Event()

    def sample():
        nonlocal peak, peak_anon, peak_pss
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            peak_anon = max(peak_anon, _tree_rss(proc.pid, "RssAnon:"))
            peak_pss = max(peak_pss, _tree_rss(proc.pid, "Pss:", "smaps_rollup"))
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    stop.set()
    t.join()
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, peak, peak_anon, peak_pss, cpu


def run(kind: str, reps: int) -> dict:
    corpus = make_corpus(kind)
    files = sum(len(f) for _, _, f in os.walk(corpus)) - 1
    nbytes = sum((Path(d) / f).stat().st_size for d, _, fs in os.walk(corpus) for f in fs
                 if f != ".complete")
    out = WORK / f"out-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (corpus / ".complete").rename(WORK / f".complete-{kind}")  # not part of the payload
    results: dict[str, list[tuple[float, int, int, int, float]]] = {
        "preserve": [], "peer": [], "bound": []}
    bound_script = out / "bound.py"  # "spawn" workers re-import __main__: it must be a file
    bound_script.write_text(BOUND)
    try:
        repo = out / "repo"
        env = dict(os.environ, PRESERVE_REPO=str(repo), PRESERVE_NO_PROGRESS="1")
        subprocess.run([PY, "-m", "preserve", "init"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        for rep in range(reps):
            peer_dir = out / f"peer{rep}"  # the peer bags in place: it copies first (timed)
            for name in (("preserve", "peer", "bound") if rep % 2 == 0
                         else ("peer", "preserve", "bound")):
                os.sync()  # nobody's timed run flushes what an earlier step wrote
                warm(corpus)
                if name == "preserve":
                    cmd = [PY, "-m", "preserve", "ingest", str(corpus), "-c", "bench"]
                elif name == "peer":
                    cmd = [PY, "-c", PEER, str(corpus), str(peer_dir)]
                else:
                    cmd = [PY, str(bound_script), str(corpus), str(out / f"bound{rep}")]
                secs, peak, anon, pss, cpu = timed(cmd, env)
                results[name].append((secs, peak, anon, pss, cpu))
                print(f"  {kind} rep {rep + 1}: {name:8s} {secs:7.2f} s  CPU {cpu:6.2f} s "
                      f"({cpu / 2 / secs:4.0%} of 2 cores)  "
                      f"{nbytes / secs / 1e6:7.0f} MB/s  {files / secs:8.0f} files/s  "
                      f"peak RSS {peak / 2**20:5.0f} MiB (private {anon / 2**20:4.0f}, "
                      f"PSS {pss / 2**20:4.0f})",
                      flush=True)
    finally:
        (WORK / f".complete-{kind}").rename(corpus / ".complete")
        shutil.rmtree(out, ignore_errors=True)
    med = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    peaks = {k: max(r[1] for r in v) for k, v in results.items()}
    anon = {k: max(r[2] for r in v) for k, v in results.items()}
    pss = {k: max(r[3] for r in v) for k, v in results.items()}
    cpu = {k: statistics.median(r[4] for r in v) for k, v in results.items()}
    return {"files": files, "bytes": nbytes, "median": med, "peak": peaks, "anon": anon,
            "pss": pss, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", choices=("small", "large", "many", "real"))
    args = parser.parse_args()
    kinds = [args.only] if args.only else ["real", "small", "large"]
    summary = {}
    for kind in kinds:
        print(f"{kind} corpus:", flush=True)
        summary[kind] = run(kind, args.reps)
    print("\nmedians (whole processes, warm cache):")
    for kind, r in summary.items():
        m, p, a, pss = r["median"], r["peak"], r["anon"], r["pss"]
        print(f"  {kind}: {r['files']} files, {r['bytes'] / 1e6:.0f} MB")
        for name in ("preserve", "peer", "bound"):
            print(f"    {name:8s} {m[name]:7.2f} s  {r['bytes'] / m[name] / 1e6:7.0f} MB/s  "
                  f"CPU {r['cpu'][name]:6.2f} s, wall vs CPU/2 "
                  f"{r['cpu'][name] / 2 / m[name]:4.0%}  peak tree RSS {p[name] / 2**20:5.0f} MiB, "
                  f"private {a[name] / 2**20:4.0f} "
                  f"MiB, PSS {pss[name] / 2**20:4.0f} MiB")
        print(f"    peer / preserve = {m['peer'] / m['preserve']:.2f}x   "
              f"preserve throughput / bound = {m['bound'] / m['preserve']:.0%}")
    print("\ntargets (issue 11): real peer/preserve >= 1.25x and CPU/2 / wall >= 90%; small "
          "peer/preserve >= 1.0x; large preserve/bound >= 90%; PSS < 200 MiB")


if __name__ == "__main__":
    main()
