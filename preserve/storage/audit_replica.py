"""One replica audited: its listing compared with the catalog (missing, truncated and
unexpected files, the object root's strays, the tag files), then the digests of the
selected payload files: hashed on both cores on a local disk, streamed from a remote
store, or (a quick audit of S3) the listing's ETags compared with those recorded when
each object was verified, and the store's own checksum of any other."""

from __future__ import annotations

import base64
from itertools import chain

from preserve.domain import ocfl
from preserve.domain.fixity import FAST_ALGORITHM, hash_batch, hash_stream
from preserve.domain.names import display
from preserve.errors import PreserveError
from preserve.parallel import batched, in_order, run_batches
from preserve.storage.audit_records import Recorder, Visit
from preserve.storage.expected import expected_digests, is_head, listing
from preserve.stores import LocalStorage
from preserve.stores.base import object_root_strays
from preserve.stores.s3 import COMPOSITES_SINCE, S3Storage, in_parts_before_composites


def audit_replica(repo, storage, visit: Visit, pool, recorder: Recorder, progress,
                   stop) -> None:
    """Check the listing of the whole replica (missing, truncated, unexpected files and the
    tag files), then the digests of the selected payload files. The listing and the
    payload records are compared in the catalog's temporary tables and streamed from
    there, so memory does not grow with the number of files."""
    aip_id, version, key = visit.state.aip, visit.state.version, visit.state.key
    catalog = repo.catalog
    problem = recorder.problem
    root = is_head(catalog, aip_id, version, storage.name)
    tags = expected_digests(catalog, aip_id, version, root=root).tags

    def unreadable(rel: str) -> None:
        problem(display(rel), "unexpected", "a file whose name is not valid UTF-8 (no "
                "manifest can list it)")

    try:
        catalog.load_listing(listing(storage, key, unreadable, root=root, catalog=catalog,
                                     aip_id=aip_id, version=version))
    except PreserveError as e:
        problem(None, "unreachable", e.message)
        return
    for rel, _size in catalog.listed_not_catalogued(aip_id, version):
        if rel not in tags:
            problem(rel, "unexpected", "a file no inventory lists")
    if root:  # the head's replica answers for the object root as well (cases 04, 64)
        try:
            for name, why in object_root_strays(*storage.entries(ocfl.object_of(key))):
                problem("/" + name, "unexpected", why)
        except PreserveError as e:
            problem(None, "unreachable", e.message)
            return
    quick_s3 = isinstance(storage, S3Storage) and visit.kind != "full"
    location = storage.name if quick_s3 else None
    tag_checks = []
    for rel, want in sorted(tags.items()):
        size = catalog.listed_size(rel)
        if size is None:
            problem(rel, "missing", "not at this location")
        else:
            etag = catalog.listed_etag(rel) if quick_s3 else None
            same = etag is not None and etag == catalog.stored_etag(aip_id, version,
                                                                    storage.name, rel)
            tag_checks.append((rel, want, size, same))

    def chosen(rel: str) -> bool:
        return visit.paths is None or rel in visit.paths

    unchecked = 0
    for rel, recorded, listed in catalog.payload_not_listed_as_recorded(aip_id, version):
        if listed is None:
            problem(rel, "missing", "not at this location")
        else:
            problem(rel, "truncated", f"{listed} bytes, {recorded} recorded")
        unchecked += chosen(rel)
    progress.advance(unchecked, 0)
    recorder.checked_batch(unchecked)
    count, nbytes = catalog.stage_payload_checks(aip_id, version, location)
    checks = chain(((rel, want, size, same) for rel, size, want, same
                    in catalog.staged_payload_checks() if chosen(rel)),
                   tag_checks)  # big files first, the small tag files last
    if quick_s3:
        stored = catalog.replica_stored(aip_id, version, storage.name)
        _quick_s3(storage, key, checks, recorder, progress, stop,
                  lambda rel: catalog.composite_checksum(aip_id, version, storage.name, rel),
                  lambda rows: catalog.learn_etags(aip_id, version, storage.name, rows),
                  before_composites=stored is not None and stored < COMPOSITES_SINCE)
        return
    checks = ((rel, want, size) for rel, want, size, _same in checks)
    if isinstance(storage, LocalStorage):
        many = count > 64 or nbytes > (64 << 20)
        _hash_local(storage, key, checks, visit.kind == "full",
                    pool if many and pool.workers > 1 else None,
                    recorder, progress, stop)
    else:
        _hash_remote(storage, key, checks, visit.kind == "full", recorder, progress, stop)


def _choose(want: dict[str, str], full: bool) -> dict[str, str]:
    """Quick: the fast digest where there is one. Full: every manifest algorithm."""
    if not full and FAST_ALGORITHM in want:
        return {FAST_ALGORITHM: want[FAST_ALGORITHM]}
    return {a: d for a, d in want.items() if a != FAST_ALGORITHM} or want


def _hash_local(storage, key, checks, full, pool, recorder, progress, stop) -> None:
    """Re-hash (rel, recorded digests, size) items on disk, on the pool's workers (or here
    when `pool` is None): each job carries what its file must hash to."""
    path_of = storage.local_files(ocfl.object_of(key))
    in_object = f"v{ocfl.version_of(key)}/"
    jobs = (((rel, chosen, size), path_of(ocfl.key_of(in_object, rel)), tuple(chosen))
            for rel, want, size in checks for chosen in (_choose(want, full),))
    batches = batched(jobs, 256, 32 << 20, size=lambda j: j[0][2])
    results = run_batches(hash_batch, batches, workers=pool.workers if pool else 1, pool=pool)
    try:
        for batch in results:
            nbytes = 0
            for (rel, want, _size), size, digests, error in batch:
                nbytes += size
                if error:
                    recorder.problem(rel, "read-error", error)
                else:
                    _compare(rel, want, digests, recorder)
            _checked(recorder, progress, len(batch), nbytes)
            if stop():
                break  # closing the generator stops the workers
    finally:
        results.close()


def _hash_remote(storage, key, checks, full, recorder, progress, stop) -> None:
    """Read back and hash each object, as many at once as the store's `concurrency`
    allows (a full audit of a bucket across a WAN waits a round trip per that many
    objects, not per object); results are taken in order, by this thread."""
    def fetch(item):
        rel, want, _size = item
        chosen = _choose(want, full)
        try:
            with storage.open(ocfl.key_of(key, rel)) as f:
                size, digests, _ = hash_stream(f, list(chosen))
        except (OSError, PreserveError) as e:
            return rel, chosen, None, str(e)
        return rel, chosen, digests, size

    for rel, chosen, digests, outcome in in_order(fetch, checks, stop,
                                                   _concurrency(storage)):
        if digests is None:
            recorder.problem(rel, "read-error", outcome)
            _checked(recorder, progress, 1, 0)
            continue
        _compare(rel, chosen, digests, recorder)
        _checked(recorder, progress, 1, outcome)


def _concurrency(storage) -> int:
    """Requests the store takes at once (an S3 location's setting; 1 elsewhere). Its
    client is made here, before the threads share it."""
    threads = getattr(getattr(storage, "settings", None), "concurrency", 1)
    if threads > 1:
        storage.client  # noqa: B018
    return threads


def _quick_s3(storage, key, checks, recorder, progress, stop, recorded_composite,
              learn, *, before_composites: bool) -> None:
    """Nothing read. An object the listing shows with the ETag recorded when it was last
    verified (uploaded, repaired, or audited below) is unchanged since: no request. Any
    other (never verified here, a catalog rebuilt, an ETag that changed) is asked for the
    store's own checksum, held against the record, and its ETag then recorded: an object
    preserve wrote in one part must carry the SHA-256 of its bytes; one written in parts,
    the composite checksum the store gave at upload. A composite where preserve wrote one
    part, or another composite, means the object was replaced (red-team case 83: a
    same-size multipart upload passed). `before_composites`: the replica was stored before
    composites were recorded (COMPOSITES_SINCE)."""
    pending: dict[str, tuple] = {}  # asked, not yet answered: a window, not every file
    learned: list[tuple[str, str]] = []

    def asked():
        for rel, want, size, same in checks:
            if stop():
                return
            if same:
                recorder.good(rel)
                _checked(recorder, progress, 1, 0)
                continue
            object_key = ocfl.key_of(key, rel)
            pending[object_key] = (rel, want, size)
            yield object_key

    def ask(object_key: str):
        return object_key, storage.stored_checksum(object_key)

    def verified(rel: str, etag: str | None) -> None:
        if etag and rel not in recorder.named:
            learned.append((rel, etag))
            if len(learned) >= 1000:
                learn(learned)
                learned.clear()

    for object_key, stored in in_order(ask, asked(), stop, _concurrency(storage)):
        rel, want, size = pending.pop(object_key)
        if stored is None:
            recorder.problem(rel, "missing", "not at this location")
        elif stored.composite:
            recorded = recorded_composite(rel)
            if recorded is not None and stored.sha256 == recorded.split("-")[0]:
                recorder.good(rel)
                verified(rel, stored.etag)
            elif recorded is None and before_composites and in_parts_before_composites(size):
                recorder.good(rel)  # in parts, unrecorded, by the rule of its day: a
            else:                   # full audit reads it
                recorder.problem(rel, "corrupt", "the object was replaced: the store holds "
                                 f"a multipart upload (checksum {stored.sha256}) where "
                                 "preserve " + ("wrote one part" if recorded is None else
                                                f"recorded {recorded}"))
        elif "sha256" not in want:  # an inventory or its sidecar, recorded by sha512 only:
            _hash_remote(storage, key, [(rel, want, size)], True, recorder, progress, stop)
            verified(rel, stored.etag)  # small, so fetched and hashed (case 63: passed
            continue                    # unread)
        else:
            ours = base64.b64encode(bytes.fromhex(want["sha256"])).decode()
            if stored.sha256 != ours:
                recorder.problem(rel, "corrupt", f"the store's SHA-256 is {stored.sha256}, "
                                 f"recorded {ours}")
            else:
                recorder.good(rel)
                verified(rel, stored.etag)
        _checked(recorder, progress, 1, 0)
    if learned:
        learn(learned)


def _checked(recorder, progress, files: int, nbytes: int) -> None:
    recorder.result.files += files
    recorder.result.bytes_read += nbytes
    progress.advance(files, nbytes)
    recorder.checked_batch(files)


def _compare(rel, want, digests, recorder) -> None:
    for algorithm, digest in want.items():
        if digests.get(algorithm) != digest:
            recorder.problem(rel, "corrupt",
                             f"{algorithm} is {digests.get(algorithm)}, recorded {digest}")
            return
    recorder.good(rel)
