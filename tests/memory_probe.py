"""Replication and export of 1,000 and then 5,000 small files, with the peak of Python
memory each takes, in a fresh interpreter: `python -m tests.memory_probe DIR` prints the
peaks as JSON.

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

from preserve.infrastructure.repository import Repository
from preserve.services.export import export
from preserve.services.ingest import Metadata, ingest
from preserve.services.replicate import replicate
from tests.conftest import many_small_files


def probe(root: Path) -> dict:
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
        for name, run, args, kw in (("replicate", replicate, (), {"to": "disk2"}),
                                    ("export", export, (aip, out), {})):
            tracemalloc.start()
            run(repo, *args, **kw)
            result[name].append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        result["exported"].append(sum(1 for _ in (out / "data").rglob("*.txt")))
        result["replicas"].append(sorted(repo.catalog.replica_locations(aip, 1)))
    return result


if __name__ == "__main__":
    print(json.dumps(probe(Path(sys.argv[1]))))
