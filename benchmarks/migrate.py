"""Migration benchmark: throughput on a mixed batch, cores used, and memory (issue 10).

A deterministic batch of what an archive migrates, unique content in every file:
BMP scans (24-bit, 1200x900, random pixels: the worst case for PNG), 24-bit stereo
WAV (10 s at 48 kHz), plain PDFs and DOCX letters (made once by LibreOffice), in
one AIP per kind. Each round ingests the batch into a fresh repository (not timed),
then times `preserve migrate --apply` with --workers 1 and with --workers 2
(alternating), each as a whole: conversion, every check, the new versions.

Reported per setting: wall time, files/s and MB/s of sources, the CPU seconds of the
whole process tree (preserve and every tool, from getrusage of the children) and
what share of the two cores that is, the peak PSS of preserve's own process (the
tools excluded, sampled every 20 ms), and the peak RSS of each tool.

    .venv/bin/python benchmarks/migrate.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ingest import PY, WORK, children, proc_field  # noqa: E402

from tests import media  # noqa: E402

BMPS, WAVS, PDFS, DOCS = 24, 16, 8, 8


def make_batch() -> Path:
    root = WORK / "migrate-batch"
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for kind in ("images", "audio", "documents"):
        (root / kind).mkdir(parents=True)
    for i in range(BMPS):
        media.bmp(root / "images" / f"scan-{i:03d}.bmp", 1200, 900, seed=i)
    for i in range(WAVS):
        media.wav(root / "audio" / f"tape-{i:03d}.wav", bits=24, seconds=10, seed=i)
    words = ["harbour", "council", "parish", "register", "winter", "repair", "minutes",
             "clerk", "market", "road", "school", "church", "bridge", "tithe", "survey"]
    for i in range(max(PDFS, DOCS)):
        text = "\n".join(" ".join(words[(i * 7 + j * 3 + k) % len(words)] for k in range(12))
                         + f" {i}-{j}" for j in range(60))
        made = media.office(WORK / "migrate-office" / str(i), text, ("pdf", "docx"))
        if i < PDFS:
            shutil.copyfile(made["pdf"], root / "documents" / f"letter-{i:03d}.pdf")
        if i < DOCS:
            shutil.copyfile(made["docx"], root / "documents" / f"report-{i:03d}.docx")
    (root / ".complete").write_text("ok\n")
    return root


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return "?"


def timed_migrate(repo: Path, workers: int) -> dict:
    env = dict(os.environ, PRESERVE_REPO=str(repo), PRESERVE_NO_PROGRESS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([PY, "-m", "preserve", "migrate", "--apply", "--json", "--workers",
                             str(workers)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    own_pss, tools = 0, {}
    stop = threading.Event()

    def sample():
        nonlocal own_pss
        while not stop.is_set():
            own_pss = max(own_pss, proc_field(proc.pid, "Pss:", "smaps_rollup"))
            stack = children(proc.pid)
            while stack:
                p = stack.pop()
                name = _name(p)
                # prlimit execs the tool; a "python" child is preserve itself between fork
                # and exec of a tool (its pages shared with preserve, counted there)
                if name != "prlimit" and not name.startswith("python"):
                    tools[name] = max(tools.get(name, 0), proc_field(p))
                stack += children(p)
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    t.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"migrate failed ({proc.returncode}):\n{out.decode()[-3000:]}"
                         f"{err.decode()[-2000:]}")
    result = json.loads(out)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "migrated": len(result["migrated"]),
            "own_pss": own_pss, "tools": tools}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batch = make_batch()
    files = [p for p in batch.rglob("*") if p.is_file() and p.name != ".complete"]
    nbytes = sum(p.stat().st_size for p in files)
    print(f"batch: {len(files)} files, {nbytes / 1e6:.1f} MB ({BMPS} BMP 1200x900, {WAVS} WAV "
          f"24-bit 10 s stereo, {PDFS} PDF, {DOCS} DOCX)")
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for r in range(args.rounds):
        for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
            repo = WORK / f"migrate-repo-{workers}"
            shutil.rmtree(repo, ignore_errors=True)
            env = dict(os.environ, PRESERVE_REPO=str(repo), PRESERVE_NO_PROGRESS="1")
            subprocess.run([PY, "-m", "preserve", "init"], env=env, check=True,
                           capture_output=True)
            for kind in ("images", "audio", "documents"):
                subprocess.run([PY, "-m", "preserve", "ingest", str(batch / kind), "-c", kind],
                               env=env, check=True, capture_output=True)
            got = timed_migrate(repo, workers)
            assert got["migrated"] == len(files), got
            runs[workers].append(got)
            print(f"round {r + 1} workers {workers}: {got['wall']:.2f} s wall, "
                  f"{got['cpu']:.2f} s CPU, preserve PSS {got['own_pss'] / 2**20:.0f} MiB",
                  flush=True)
    for workers, rs in runs.items():
        wall = statistics.median(x["wall"] for x in rs)
        cpu = statistics.median(x["cpu"] for x in rs)
        pss = max(x["own_pss"] for x in rs)
        tools = {}
        for x in rs:
            for name, rss in x["tools"].items():
                tools[name] = max(tools.get(name, 0), rss)
        print(f"\nworkers {workers}: median {wall:.2f} s, {len(files) / wall:.1f} files/s, "
              f"{nbytes / 1e6 / wall:.1f} MB/s; CPU {cpu:.1f} s = {cpu / wall / 2:.0%} of 2 "
              f"cores; preserve's peak PSS {pss / 2**20:.0f} MiB")
        print("  tools' peak RSS: " + ", ".join(f"{n} {v / 2**20:.0f} MiB" for n, v in
                                              sorted(tools.items(), key=lambda kv: -kv[1])))
    one = statistics.median(x["wall"] for x in runs[1])
    two = statistics.median(x["wall"] for x in runs[2])
    print(f"\nspeed-up of 2 workers over 1: {one / two:.2f}x")


if __name__ == "__main__":
    main()
