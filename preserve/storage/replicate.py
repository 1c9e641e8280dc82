"""Replication: bring every AIP up to the copies policy asks for, each one verified.

A replica is made from a local copy whose bytes match the catalog (the
store's own checksum of what it received is compared with the digests
recorded at ingest), and enters the catalog only once verified. An
interrupted upload leaves no tag manifest, so nothing there looks like an
AIP; the next run clears the leftovers (where no Object Lock forbids it)
and uploads again. Unreachable locations are reported as unreachable and
leave every other location's work done.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.names import display
from preserve.domain.progress import Progress, Share, Silent
from preserve.errors import FixityMismatch, NoSpace, PreserveError, StorageUnreachable
from preserve.repository import Repository
from preserve.storage.expected import expected_digests, replica_gaps
from preserve.storage.lanes import Locked, in_lanes
from preserve.storage.recovery import tidy
from preserve.storage.versions import verified_local
from preserve.stores import LocalStorage
from preserve.stores.base import ensure_ocfl_root, together
from preserve.system.locks import writer_lock
from preserve.system.space import full_disk_named, require_space

# AIPs copied at once to an object store (see _copy_lanes); requests in flight stay the
# location's `concurrency`, shared by all of them.
AIPS_AT_ONCE = 4


@dataclass
class ReplicationResult:
    copied: list[tuple[str, int, str]] = field(default_factory=list)  # (aip, version, location)
    failed: list[tuple[str, int, str, str]] = field(default_factory=list)  # ... + reason
    unreachable: list[str] = field(default_factory=list)
    full: list[str] = field(default_factory=list)  # locations out of space (message in failed)
    already: int = 0

    @property
    def complete(self) -> bool:
        return not self.failed and not self.unreachable and not self.full

    def to_dict(self) -> dict:
        return {
            "status": "ok" if self.complete else "incomplete",
            "copied": [{"aip": a, "version": v, "location": loc} for a, v, loc in self.copied],
            "failed": [{"aip": a, "version": v, "location": loc, "reason": r}
                       for a, v, loc, r in self.failed],
            "unreachable": self.unreachable, "full": self.full,
            "already_replicated": self.already,
        }


def copy_version(repo: Repository, aip_id: str, version: int, target,
                 progress: Progress | None = None, stop: threading.Event | None = None) -> bool:
    """Write one AIP version to `target` from a verified local replica, check that all of
    it is there, then record it. The version folder goes first, the object root's
    inventory (naming the new head) last, as ingest and describe write them. Under the
    (AIP, location) writer lock: a run that waited for another finds the replica made and
    returns False; leftovers it deletes are an interrupted run's, never a running one's."""
    catalog = repo.catalog
    with writer_lock(repo.root, target.name, aip_id, catalog=repo.catalog):
        if target.name in catalog.replica_locations(aip_id, version):
            return False  # made by the run we waited for
        held = catalog.head_at(aip_id, target.name)
        if held != version - 1:
            raise PreserveError(f"AIP {aip_id} v{version} cannot be copied to '{target.name}' "
                                f"before v{version - 1}: each version is written on the one "
                                "before it", hint="run 'preserve replicate', which copies "
                                "versions in order")
        source = _local_source(repo, aip_id, version)
        root = ocfl.object_root(aip_id)
        key = ocfl.version_key(root, version)
        expected = expected_digests(catalog, aip_id, version, root=True)
        inventory = _verified_inventory(source, key, expected)  # a path: it can be large
        ensure_ocfl_root(target)
        # Whatever is at the key is not a copy the catalog records: an interrupted run's
        # upload, or a whole version whose run was killed before recording it (the harness
        # found a re-run then refused to overwrite it, for good). Under the lock, with the
        # locations proven distinct (Repository), it is removed and copied again; for a
        # first version, so is all of the object's folder (nothing of it is recorded).
        # With its unfinished multipart uploads (case 50): both at once (a round trip each
        # across a WAN, for every AIP).
        clear = root if version == 1 else key
        together(lambda: target.delete_prefix(clear), lambda: target.abort_uploads(clear))
        where = f"location '{target.name}'"
        needed = catalog.version_info(aip_id, version)["bytes"]
        if isinstance(target, LocalStorage):
            require_space(target.root, needed, where)
        answers = _Answers(catalog, progress or Silent())
        side = ThreadPoolExecutor(1)  # the declaration goes while the content does
        try:
            with full_disk_named(where, needed):
                declared = side.submit(target.put_bytes, root + ocfl.OBJECT_DECLARATION,
                                       ocfl.declaration(ocfl.OBJECT_DECLARATION)) \
                    if version == 1 else None
                target.publish_bag(source.bag_path(key), key,
                                   lambda rel: expected.sha256(ocfl.rel_in_version(rel)),
                                   written=lambda rel, size, answer: answers(
                                       ocfl.rel_in_version(rel), size, answer), stop=stop)
                if declared is not None:  # before the root inventory makes the object
                    answers(ocfl.ROOT_FILES[0], 0, declared.result())
                # the object root names the new version: visible (both at once: a crash
                # between them leaves a root the next run writes again either way)
                inventory_answer, sidecar_answer = together(
                    lambda: target.replace_file(root + ocfl.INVENTORY, inventory),
                    lambda: target.put_bytes(root + ocfl.SIDECAR, ocfl.sidecar(
                        expected.tags[ocfl.INVENTORY]["sha512"])))
                answers(ocfl.ROOT_FILES[1], 0, inventory_answer)
                answers(ocfl.ROOT_FILES[2], 0, sidecar_answer)
                answers.flush()
            _verify_complete(repo, aip_id, version, target, key, expected)
        except BaseException:  # a full disk, a mismatch, Ctrl-C: the object as it was
            side.shutdown(wait=True)  # nothing of this copy still being written
            with suppress(Exception):  # else the next run clears it (see above)
                _undo(repo, source, target, aip_id, version)
            raise
        finally:
            side.shutdown(wait=True)
        catalog.add_replica(aip_id, version, target.name, key, now_utc(), answers.composites,
                            etags_uploaded=True)
        return True


class _Answers:
    """What the store answered for each object of one copy, as each lands (in the thread
    that owns the catalog): composite checksums (a few large files) in memory, ETags in
    the catalog's scratch table (a row per file), the progress bar in files and bytes."""

    def __init__(self, catalog, progress: Progress):
        self.catalog, self.progress = catalog, progress
        self.composites: dict[str, str] = {}
        self.etags: list[tuple[str, str]] = []
        catalog.begin_uploads()

    def __call__(self, rel: str, size: int, answer) -> None:
        if answer is not None and answer.composite:
            self.composites[rel] = answer.composite
        if answer is not None and answer.etag:
            self.etags.append((rel, answer.etag))
            if len(self.etags) >= 1000:
                self.flush()
        if size:
            self.progress.advance(1, size)

    def flush(self) -> None:
        self.catalog.note_uploads(self.etags)
        self.etags = []


def _undo(repo: Repository, source, target, aip_id: str, version: int) -> None:
    """Take back what a failed copy of `version` wrote to `target`: a first version's
    whole object folder; a later one's folder, and the root inventory put back to the
    version before (read from the local replica, checked against its record)."""
    root = ocfl.object_root(aip_id)
    if version == 1:
        target.delete_prefix(root)
        target.abort_uploads(root)
        if isinstance(target, LocalStorage):
            target.remove_empty_folders(root)
        return
    key = ocfl.version_key(root, version)
    together(lambda: target.delete_prefix(key), lambda: target.abort_uploads(key))
    previous = expected_digests(repo.catalog, aip_id, version - 1, root=True)
    target.replace_file(root + ocfl.INVENTORY, _verified_inventory(
        source, ocfl.version_key(root, version - 1), previous))
    target.put_bytes(root + ocfl.SIDECAR, ocfl.sidecar(previous.tags[ocfl.INVENTORY]["sha512"]))


def _verified_inventory(source, key: str, expected) -> Path:
    """The version's inventory in the local replica, checked against the digest recorded
    when the version was made: it becomes the target's root inventory. Hashed as a
    stream (an inventory of a million files is hundreds of megabytes)."""
    return verified_local(source.local_path(key + ocfl.INVENTORY),
                          expected.tags[ocfl.INVENTORY]["sha512"],
                          f"the inventory of {key} at '{source.name}' (nothing was copied)",
                          "run 'preserve repair' to restore it, then replicate")


def _verify_complete(repo: Repository, aip_id: str, version: int, target, key: str,
                     expected) -> None:
    """Every file of the version is at `target` at the end, at its recorded size: each was
    verified as it was uploaded, and this listing proves none went missing or was written
    again since (an object store lists each object's ETag: the upload's answer)."""
    wrong = replica_gaps(repo.catalog, aip_id, version, target, key, expected.tags)
    wrong += [f"{display(rel)}: written again since its upload (ETag {listed}, {sent} when "
              "uploaded)" for rel, sent, listed in repo.catalog.uploads_changed()]
    if wrong:
        raise FixityMismatch(f"the copy of AIP {aip_id} v{version} at '{target.name}' is "
                             f"incomplete after upload ({len(wrong)} file(s)); it was not "
                             "recorded:\n  " + "\n  ".join(wrong[:20]),
                             hint="run 'preserve replicate' again")


def _local_source(repo: Repository, aip_id: str, version: int) -> LocalStorage:
    for name in repo.catalog.replica_locations(aip_id, version):
        location = repo.locations.get(name)
        if isinstance(location, LocalStorage):
            return location
    raise StorageUnreachable(f"AIP {aip_id} v{version} has no local copy to replicate from")


def replicate(repo: Repository, *, to: str | None = None, aips: list[str] | None = None,
              progress: Progress | None = None) -> ReplicationResult:
    """Copy every AIP version (of `aips`, or all) that lacks a replica at a policy location
    (or at `to`)."""
    progress = progress or Silent()
    tidy(repo)
    result = ReplicationResult()
    targets = [repo.locations[to]] if to else repo.replica_locations()
    work: list[tuple[str, int, object]] = []
    for target in targets:
        try:
            target.check_reachable()
        except StorageUnreachable:
            result.unreachable.append(target.name)
            continue
        missing = repo.catalog.versions_without_replica(target.name)
        result.already += repo.catalog.count_versions() - len(missing)
        if aips is not None:
            wanted = {repo.catalog.resolve(a) for a in aips}
            missing = [(a, v) for a, v in missing if a in wanted]
        if missing:  # once, before several copies might each find an empty root
            with suppress(PreserveError):  # refused: each copy names why
                ensure_ocfl_root(target)
        work.extend((aip_id, version, target) for aip_id, version in missing)
    sizes = {(a, v): repo.catalog.version_info(a, v) for a, v, _ in work}
    progress.start("replicate", sum(sizes[(a, v)]["files"] for a, v, _ in work),
                   sum(sizes[(a, v)]["bytes"] for a, v, _ in work))
    lanes: dict[tuple[str, str], list] = {}  # one AIP's versions at one object store, in
    on_disks = []                              # order; copies to disks one after another
    for item in work:
        if isinstance(item[2], LocalStorage):
            on_disks.append(item)
        else:
            lanes.setdefault((item[2].name, item[0]), []).append(item)
    at_once = lanes_at_once([target for *_, target in work], len(lanes))
    lock, stop = threading.Lock(), threading.Event()
    progress = Locked(progress) if at_once > 1 else progress

    def copy_lane(items: list, here: Repository) -> None:
        for aip_id, version, named in items:
            target = here.locations[named.name]
            info = sizes[(aip_id, version)]
            share = Share(progress, info["files"], info["bytes"])
            with lock:
                skip = target.name in result.unreachable or target.name in result.full
            if skip or stop.is_set():
                share.finish()
                continue
            try:
                copied = copy_version(here, aip_id, version, target, share, stop=stop)
            except NoSpace as e:  # the next AIPs would not fit either
                with lock:
                    result.full.append(target.name)
                    result.failed.append((aip_id, version, target.name, e.message))
            except StorageUnreachable:
                with lock:
                    result.unreachable.append(target.name)
            except PreserveError as e:
                with lock:
                    result.failed.append((aip_id, version, target.name, e.message))
            else:
                with lock:
                    if copied:
                        result.copied.append((aip_id, version, target.name))
                    else:
                        result.already += 1
            share.finish()

    copy_lane(on_disks, repo)
    if at_once <= 1:
        copy_lane([item for lane in lanes.values() for item in lane], repo)
        return result
    in_lanes(repo, list(lanes.values()), at_once, copy_lane, stop)
    with lock:
        result.unreachable = sorted(set(result.unreachable))
    return result


def lanes_at_once(targets, lanes: int) -> int:
    """How many AIPs to copy at once: AIPS_AT_ONCE where an object store is written (a
    disk takes one copy at a time: its staging folder is named by the version and the
    process)."""
    return min(AIPS_AT_ONCE, lanes) if any(
        not isinstance(target, LocalStorage) for target in targets) else 1
