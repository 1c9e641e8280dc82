"""Export: write an AIP version out of storage as a BagIt bag, verified on the way out.

Every byte is hashed as it is copied and compared with the catalog (payload)
and the tag manifest (tag files); the tag manifest itself must match the
package digest recorded at ingest, so a bag swapped wholesale is caught.
The bag appears at DEST only when all of it verified: it is written to a
sibling "DEST.partial-<pid>" folder and renamed at the end.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from preserve.domain import bag as bagfmt
from preserve.domain.fixity import hash_stream, write_all
from preserve.domain.names import check_relative, decode_manifest_path, display
from preserve.errors import ConfigError, FixityMismatch, NotFound, StorageUnreachable
from preserve.infrastructure.repository import Repository
from preserve.services.ingest import EMPTY_DIRS_FILE, Progress, _Silent


@dataclass
class ExportResult:
    aip_id: str
    version: int
    destination: str
    files: int
    bytes: int
    location: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def export(repo: Repository, ref: str, dest: Path, *, version: int | None = None,
           location: str | None = None, progress: Progress | None = None) -> ExportResult:
    progress = progress or _Silent()
    catalog = repo.catalog
    aip_id = catalog.resolve(ref)
    summary = catalog.get_aip(aip_id)
    version = version or summary.version
    info = catalog.version_info(aip_id, version)
    locations = catalog.replica_locations(aip_id, version)
    if location and location not in locations:
        raise NotFound(f"AIP {aip_id} v{version} has no replica at location '{location}'",
                       hint=f"replicas: {', '.join(locations)}")
    name = location or next((n for n in locations if n in repo.locations), None)
    if name is None:
        raise StorageUnreachable(f"none of the locations holding AIP {aip_id} "
                                 f"({', '.join(locations)}) is configured here")
    storage = repo.locations[name]
    storage.check_reachable()
    key = catalog.replica_key(aip_id, version, name)

    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} already exists and is not empty; choose a new destination")
    partial = dest.parent / f"{dest.name}.partial-{os.getpid()}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)

    expected = {f.path: f.digests for f in catalog.files(aip_id, version)}
    try:
        files, nbytes = _copy_verified(storage, key, info, expected, partial, progress)
        if dest.exists():
            dest.rmdir()
        os.rename(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ExportResult(aip_id, version, str(dest), files, nbytes, name)


def _copy_verified(storage, key, info, expected, partial: Path, progress) -> tuple[int, int]:
    tagmanifest = info["tagmanifest"]
    algorithm = bagfmt.MANIFEST_RE.match(tagmanifest).group(2)
    # 1. the tag manifest, checked against the package digest kept in the catalog
    tm_bytes = _read_all(storage, key + tagmanifest)
    import hashlib

    if hashlib.sha256(tm_bytes).hexdigest() != info["tagmanifest_sha256"]:
        raise FixityMismatch(f"{tagmanifest} of this AIP does not match the package digest "
                             "recorded at ingest: the stored bag was altered or replaced",
                             hint="run an audit; restore the AIP from another replica")
    tag_expected = {e.path: {algorithm: e.digest}
                    for e in bagfmt.parse_manifest(tm_bytes.decode("utf-8")).entries}
    objects = list(storage.list(key))
    total = sum(o.size for o in objects)
    progress.start("export", len(objects), total)
    problems: list[str] = []
    seen: set[str] = set()
    nbytes = 0
    for obj in objects:
        rel = obj.key[len(key):]
        check_relative(rel)
        seen.add(rel)
        target = partial / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel == tagmanifest:
            target.write_bytes(tm_bytes)
            progress.advance(1, obj.size)
            nbytes += obj.size
            continue
        want = expected.get(rel) if rel.startswith("data/") else tag_expected.get(rel)
        if want is None and not bagfmt.MANIFEST_RE.match(rel):
            problems.append(f"unexpected file {display(rel)!r} (in no manifest)")
            continue
        algorithms = [a for a in (want or {}) if a != "xxh3_128"] or ["sha256"]
        with storage.open(obj.key) as src, open(target, "xb") as out:
            size, digests, _ = hash_stream(src, algorithms, sink=write_all(out.write))
        nbytes += size
        progress.advance(1, size)
        for a, d in (want or {}).items():
            if a in digests and digests[a] != d:
                problems.append(f"{display(rel)!r}: {a} is {digests[a]}, expected {d}")
    for rel in expected:
        if rel not in seen:
            problems.append(f"{display(rel)!r} is missing from storage")
    if problems:
        raise FixityMismatch("the stored AIP did not verify; nothing was exported:\n  "
                             + "\n  ".join(problems[:50]),
                             hint="run an audit; restore the AIP from another replica")
    empty = partial / EMPTY_DIRS_FILE
    if empty.is_file():
        for line in bagfmt.split_lines(empty.read_text(encoding="utf-8")):
            rel = decode_manifest_path(line)
            check_relative(rel)
            (partial / rel).mkdir(parents=True, exist_ok=True)
    return len(objects), nbytes


def _read_all(storage, key: str) -> bytes:
    try:
        with storage.open(key) as f:
            return f.read()
    except FileNotFoundError:
        raise FixityMismatch(f"{key} is missing from storage location '{storage.name}'",
                             hint="run an audit; restore the AIP from another replica") from None
