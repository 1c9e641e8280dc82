"""Rebuild benchmark (issue 24): the catalog re-created from storage alone.

- small: N AIPs (default 10,000) of 3 files each, each with its events and its copy's
  record in the signed log: one real AIP ingested, its object cloned under new ids (the
  inventory's id and the sidecars made anew; the log's entries cloned and signed again).
  Timed warm (twice) and cold (the page cache dropped first: needs root).
- large: one AIP of the 20,000-file corpus (benchmarks/work/corpus-small), ingested once.

The catalog is deleted before each run; the figure is `catalog rebuild`'s work (the
library call, without the interpreter's start), and the catalog's size after.

    .venv/bin/python benchmarks/rebuild.py [--aips 10000] [--only small|large]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from preserve.data.rebuild import open_for_rebuild, rebuild  # noqa: E402
from preserve.domain import checkpoint as notes  # noqa: E402
from preserve.domain import ocfl  # noqa: E402
from preserve.domain.merkle import MerkleTree, leaf_hash  # noqa: E402
from preserve.ingest.ingest import Metadata, ingest  # noqa: E402
from preserve.repository import Repository  # noqa: E402
from preserve.storage.history import CHECKPOINTS, ENTRIES, canonical, publish  # noqa: E402
from preserve.system.keys import load_key  # noqa: E402

WORK = Path(__file__).resolve().parent / "work"


def small_repository(n: int) -> Path:
    root = WORK / f"rebuild-{n}" / "repo"
    if (root / "ready").exists():
        return root
    shutil.rmtree(root.parent, ignore_errors=True)
    repo, _ = Repository.init(root)
    source = root.parent / "source"
    (source / "letters").mkdir(parents=True)
    for k in range(3):
        (source / "letters" / f"letter{k}.txt").write_text(f"letter {k}\n" * 20)
    first = ingest(repo, source, Metadata("Parish", title="Box")).aip_id
    publish(repo)
    store = repo.locations["local"].root
    template = store / ocfl.object_root(first)
    entries = [json.loads(text) for _, text in repo.catalog.log_entries()]
    log_dir = store / "extensions" / "preserve-log"
    key = load_key(repo.log_key_path)
    repo.close()
    lines, tree = [], MerkleTree()
    for i in range(n):
        aip = first if i == 0 else str(uuid.uuid4())
        if i:
            _clone(template, store / ocfl.object_root(aip), first, aip)
        for e in entries:
            e = {**e, "aip": aip, "id": str(uuid.uuid4()) if i else e["id"],
                 "n": len(lines) + 1}
            text = canonical(e)
            lines.append(text)
            tree.append(leaf_hash(text.encode()))
    for sub in ("entries", "checkpoints"):
        shutil.rmtree(log_dir / sub)
        (log_dir / sub).mkdir()
    (store / ENTRIES / f"{1:012d}-{len(lines):012d}.jsonl").write_text(
        "".join(line + "\n" for line in lines))
    name = notes.key_name(key.public_key())
    (store / CHECKPOINTS / f"{len(lines):012d}.txt").write_text(
        notes.sign(notes.Checkpoint(name, len(lines), tree.root()), key))
    (root / "ready").write_text("")
    return root


def _clone(template: Path, target: Path, old: str, new: str) -> None:
    shutil.copytree(template, target)
    for folder in (target, target / "v1"):
        inventory = folder / ocfl.INVENTORY
        inventory.chmod(0o644)
        text = inventory.read_bytes().replace(old.encode(), new.encode())
        inventory.write_bytes(text)
        sidecar = folder / ocfl.SIDECAR
        sidecar.chmod(0o644)
        sidecar.write_bytes(ocfl.sidecar(hashlib.sha512(text).hexdigest()))


def large_repository() -> Path:
    root = WORK / "rebuild-large" / "repo"
    if (root / "ready").exists():
        return root
    corpus = WORK / "corpus-small"
    if not corpus.is_dir():
        sys.exit("run benchmarks/ingest.py once first: it makes benchmarks/work/corpus-small")
    shutil.rmtree(root.parent, ignore_errors=True)
    repo, _ = Repository.init(root)
    ingest(repo, corpus, Metadata("Corpus"))
    publish(repo)
    repo.close()
    (root / "ready").write_text("")
    return root


def timed(root: Path, cold: bool) -> tuple[float, int, dict]:
    for leftover in root.glob("catalog.sqlite*"):
        leftover.unlink()
    if cold:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    start = time.perf_counter()
    repo, _ = open_for_rebuild(root, replace=False)
    result = rebuild(repo)
    repo.close()
    took = time.perf_counter() - start
    assert result.status == "ok", result.problems
    return took, (root / "catalog.sqlite").stat().st_size, result.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aips", type=int, default=10_000)
    parser.add_argument("--only", choices=["small", "large"])
    args = parser.parse_args()
    if args.only in (None, "small"):
        root = small_repository(args.aips)
        for cold in (False, False, True) if os.geteuid() == 0 else (False, False):
            took, size, done = timed(root, cold)
            print(f"small, {'cold' if cold else 'warm'}: {done['aips']} AIPs, {done['files']} "
                  f"files, {done['events']} events in {took:.2f} s = {done['aips'] / took:,.0f} "
                  f"AIPs/s; catalog {size / 2**20:.1f} MiB")
    if args.only in (None, "large"):
        root = large_repository()
        for _ in range(3):
            took, size, done = timed(root, False)
            print(f"large: {done['files']} files in {took:.2f} s; catalog {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
