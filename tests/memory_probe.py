"""Ingest, replication and export of 1,000 and then 5,000 small files, with the peak of
Python memory each takes, in a fresh interpreter: `python -m tests.memory_probe
ingest|replicate-export DIR` prints the peaks as JSON.

A fresh interpreter because tracemalloc counts every allocation of the process: in a
test process that has already imported moto, boto3 and the rest, a one-off resize of the
interpreter's table of interned names (pathlib interns every name it parses) can land
inside a measurement and look like 2 MB of growth.
"""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path

import yaml

from preserve.access.export import export
from preserve.ingest.ingest import Metadata, ingest
from preserve.ingest.validation import validate_bag
from preserve.repository import Repository
from preserve.storage.replicate import replicate
from tests.conftest import content_key, many_small_files


def _peak(run, *args, **kw) -> tuple[object, int]:
    tracemalloc.start()
    try:
        return run(*args, **kw), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def ingest_probe(root: Path) -> dict:
    repo, _ = Repository.init(root / "repo")
    result: dict = {"ingest": [], "files": [], "valid": []}
    for files in (1_000, 5_000):
        done, peak = _peak(ingest, repo, many_small_files(root / f"src{files}", files),
                           Metadata("m"), workers=2)
        result["ingest"].append(peak)
        result["files"].append(done.files)
        bag = repo.locations["local"].bag_path(f"{content_key(done.aip_id)}")
        result["valid"].append(validate_bag(bag, check_fixity=False).valid)
    return result


def replication_probe(root: Path) -> dict:
    repo, _ = Repository.init(root / "repo")
    (root / "disk2").mkdir()
    (repo.root / "locations" / "disk2.yaml").write_text(yaml.safe_dump(
        {"name": "disk2", "kind": "local", "path": str(root / "disk2")}))
    repo = Repository(repo.root)
    result: dict = {"replicate": [], "export": [], "exported": [], "replicas": []}
    for files in (1_000, 5_000):
        aip = ingest(repo, many_small_files(root / f"src{files}", files), Metadata("m"),
                     workers=2).aip_id
        out = root / f"out{files}"
        result["replicate"].append(_peak(replicate, repo, to="disk2")[1])
        result["export"].append(_peak(export, repo, aip, out)[1])
        result["exported"].append(sum(1 for _ in (out / "data").rglob("*.txt")))
        result["replicas"].append(sorted(repo.catalog.replica_locations(aip, 1)))
    return result


PROBES = {"ingest": ingest_probe, "replicate-export": replication_probe}

if __name__ == "__main__":
    print(json.dumps(PROBES[sys.argv[1]](Path(sys.argv[2]))))
