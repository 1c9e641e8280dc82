"""Where a command's time goes, process by process: CPU per 0.5 s and peak PSS.

Runs the command, samples every process of its tree every 50 ms (/proc/<pid>/stat for
CPU, smaps_rollup for PSS), and prints each process's CPU and peak PSS, the tree's peak
PSS with each process's share at that moment, then the cores each process used in every
half second. This is how issue 11's figures were taken (which stage is the critical
path, what each process holds at the tree's peak).

    PRESERVE_REPO=/tmp/r PRESERVE_NO_PROGRESS=1 \\
        .venv/bin/python benchmarks/timeline.py .venv/bin/python -m preserve ingest SRC -c C
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time

from ingest import children  # the benchmarks' folder is on the path: run as a script

HZ = os.sysconf("SC_CLK_TCK")
BIN = 0.5


def tree(pid: int) -> list[int]:
    stack, out = [pid], []
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children(p))
    return out


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except (OSError, IndexError, ValueError):
        return None


def pss_mib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def label(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return "?"
    text = " ".join(args)
    if "resource_tracker" in text:
        return "tracker"
    if "spawn_main" in text:
        return f"worker {pid}"
    return os.path.basename(args[0]) if args else "?"


def main(command: list[str]) -> None:
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    names: dict[int, str] = {}
    last: dict[int, float] = {}
    peak: collections.Counter = collections.Counter()
    tree_peak: tuple[int, dict[int, int]] = (0, {})
    rows = []
    while proc.poll() is None:
        now = time.perf_counter() - start
        cpu, pss = {}, {}
        for pid in tree(proc.pid):
            if (c := cpu_seconds(pid)) is not None:
                cpu[pid] = c
                names.setdefault(pid, label(pid))
                last[pid] = c
            if (m := pss_mib(pid)) is not None:
                pss[pid] = m
                peak[pid] = max(peak[pid], m)
        if sum(pss.values()) > tree_peak[0]:
            tree_peak = (sum(pss.values()), pss)
        rows.append((now, cpu))
        time.sleep(0.05)
    print(f"wall {time.perf_counter() - start:.2f} s, CPU {sum(last.values()):.2f} s, "
          f"exit {proc.returncode}; tree peak PSS {tree_peak[0]} MiB")
    for pid, c in sorted(last.items(), key=lambda x: -x[1]):
        print(f"  {names[pid]:14} CPU {c:6.2f} s  peak PSS {peak[pid]:4} MiB  "
              f"at the tree's peak {tree_peak[1].get(pid, 0):4} MiB")
    bins: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    seen: dict[int, float] = {}
    for now, cpu in rows:
        for pid, c in cpu.items():
            bins[int(now / BIN)][names[pid]] += c - seen.get(pid, 0.0)
            seen[pid] = c
    for b in sorted(bins):
        used = "  ".join(f"{k}: {v / BIN:.2f}" for k, v in sorted(bins[b].items()) if v > 0.01)
        print(f"{b * BIN:5.1f} s  {used}")


if __name__ == "__main__":
    main(sys.argv[1:])
