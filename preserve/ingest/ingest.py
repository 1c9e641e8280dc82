"""Ingest: turn a SIP (folder, bag, zip, tar) into a stored, catalogued AIP.

Order of work, and why (see docs/architecture.md, "Ingest"):
1. scan the source and refuse it whole, listing every problem, before
   writing anything;
2. build the bag in <repo>/staging/<id>/ in one pass per file (copy, every
   digest, identification), writing manifests and PREMIS as results arrive;
3. write the tag files, the tag manifests last, and check the structure;
4. record the AIP in the catalog as "staging", sync the bag to disk and
   rename it into the storage location, then mark the AIP "stored".
A crash at any point leaves a staging folder and a "staging" catalog row,
which the next run resolves (recover()) to either the old state or the new.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections import Counter
from contextlib import ExitStack, nullcontext, suppress
from functools import partial
from pathlib import Path

from preserve.domain import bag as bagfmt
from preserve.domain import ocfl
from preserve.domain.bag import EMPTY_DIRS_FILE, FAST_LIST, PREMIS_FILE, SOURCE_BAG_DIR
from preserve.domain.clock import now_utc
from preserve.domain.fixity import FAST_ALGORITHM, open_regular
from preserve.domain.identify import format_notes, siegfried_environment
from preserve.domain.metadata import Metadata, check_metadata
from preserve.domain.model import EventRecord, FileRecord
from preserve.domain.names import display, encode_manifest_path
from preserve.domain.policy import IngestPolicy
from preserve.domain.premis import FileObject, PremisWriter
from preserve.domain.progress import Progress, Silent
from preserve.errors import BadArgument, BagInvalid, FixityMismatch, PreserveError, SourceRefused
from preserve.ingest.content_checks import ContentChecks
from preserve.ingest.duplicates import same_content
from preserve.ingest.packed_bags import unpacked_bag
from preserve.ingest.record import IngestRecord, IngestResult
from preserve.ingest.scan import Scan, Source
from preserve.ingest.sources import detect
from preserve.ingest.validation import validate_bag
from preserve.parallel import WorkerPool, batched, default_workers, run_batches
from preserve.pipeline.copying import Overflow, copied, copy_batch, copy_one
from preserve.pipeline.entries import ARCHIVE_ERRORS, archive_error
from preserve.pipeline.identifying import CopyResult, identify_batch, load_siegfried
from preserve.pipeline.validating import batch_timeout, checked_batch
from preserve.repository import Repository
from preserve.storage.versions import (
    INVENTORY_ALGORITHMS,
    new_record,
    tag_records,
    write_inventory,
    write_tag_manifests,
)
from preserve.stores.base import ensure_ocfl_root
from preserve.system import fstree
from preserve.system.space import full_disk_named, require_space

CATALOG_BATCH = 1000  # file rows per catalog transaction (and the most held in memory)


def ingest(repo: Repository, source_path: Path, meta: Metadata, *,
           policy: IngestPolicy | None = None, workers: int | None = None,
           progress: Progress | None = None, strict: bool = False,
           as_folder: bool = False, aip_id: str | None = None,
           refuse_duplicate: bool = False) -> IngestResult:
    """Ingest `source_path`; return what was stored. Raises a PreserveError on refusal.
    `aip_id`: the new AIP's id, chosen beforehand (a queued ingest names it in its job, so
    that a job delivered twice makes one AIP); a new UUID by default.

    A source bag that validates with warnings is ingested, each warning recorded;
    `strict` refuses it instead. `as_folder` ingests a bag (valid or not) as a plain
    folder: its manifests become payload too, and their digests are checked and reported."""
    check_metadata(meta)
    policy = policy or repo.policy.ingest
    repo.staging.mkdir(exist_ok=True)
    packed = nullcontext(None) if as_folder else unpacked_bag(Path(source_path), repo.staging,
                                                                policy)
    with packed as bag:  # a zipped or tarred bag, unpacked: ingested as the bag it is
        source = detect(bag or Path(source_path), strict=strict, as_folder=as_folder)
        if bag is not None:
            source.origin = Path(source_path)
        return _ingest(repo, source, meta, policy, workers, progress, aip_id,
                       refuse_duplicate)


def _ingest(repo: Repository, source: Source, meta: Metadata, policy: IngestPolicy,
            workers: int | None, progress: Progress | None, aip_id: str | None,
            refuse_duplicate: bool) -> IngestResult:
    progress = progress or Silent()
    started = time.monotonic()
    with source.scan(policy) as scan:
        _refuse_problems(source, scan, policy)
        aip_id = aip_id or str(uuid.uuid4())
        job = _Job(repo, source, scan, meta, aip_id, workers or default_workers(), progress,
                   policy)
        try:
            job.start_workers()  # they boot (siegfried loads its signatures) meanwhile
            from preserve.storage.recovery import tidy

            tidy(repo)
            where = f"the repository's disk ({repo.staging})"
            needed = job.total_bytes + 1024 * job.file_count  # payload, manifests, PREMIS
            require_space(repo.staging, needed, where)
            lock = repo.staging / f"{aip_id}.lock"
            lock.write_text(f"{os.getpid()} {now_utc()}\n")
            try:
                with full_disk_named(where, needed):
                    job.build()
                    job.duplicate_of = same_content(repo.catalog, job.bag, aip_id)
                    if job.duplicate_of and refuse_duplicate:
                        raise BadArgument(f"{source.origin} holds the same content as AIP "
                                          f"{', '.join(job.duplicate_of)}; nothing was stored",
                                          hint="leave out --refuse-duplicate to keep a "
                                               "second AIP of it")
                    job.publish()
            except BaseException:
                job.abandon()
                raise
            finally:
                lock.unlink(missing_ok=True)
        finally:
            job.stop_workers()
    job.replicate()
    return job.result(time.monotonic() - started)


def _refuse_problems(source: Source, scan: Scan, policy: IngestPolicy) -> None:
    problems = list(scan.problems)
    for path in scan.files_that_are_folders():
        problems.append(f"{display(path)!r} is both a file and a folder holding other members "
                        "(no filesystem can keep both)")
    unicode_groups, case_groups = scan.collisions()
    for group in unicode_groups:
        problems.append("names equal after Unicode normalisation (they would merge on macOS and "
                        "many other systems): " + ", ".join(repr(display(p)) for p in group))
    if policy.case_collisions == "refuse":
        for group in case_groups:
            problems.append("names equal but for letter case (they would merge on Windows and "
                            "macOS disks): " + ", ".join(repr(display(p)) for p in group))
    if problems:
        raise SourceRefused(f"{source.origin} cannot be ingested as it is: {len(problems)} "
                            "problem(s); nothing was written", problems,
                            hint="fix these in the source, or choose a --links / --special / "
                                 "--case-collisions option; the source was not modified")
    if scan.totals() == (0, 0, 0):
        raise SourceRefused(f"{source.origin} holds no files or folders; nothing to ingest")


class _Job(IngestRecord, ContentChecks):
    """One ingest in progress: the staging bag, its open manifests, the catalog rows."""

    def __init__(self, repo, source, scan, meta, aip_id, workers, progress, policy):
        self.repo, self.source, self.scan, self.meta = repo, source, scan, meta
        self.policy = policy
        self.aip_id, self.workers, self.progress = aip_id, workers, progress
        self.algorithms = list(repo.policy.manifest_algorithms)
        self.bag_algorithms = scan.expected_algorithms()  # a source bag's, checked on copy
        extra = sorted(set(self.bag_algorithms) - set(self.algorithms))
        inventory = [a for a in INVENTORY_ALGORITHMS if a not in self.algorithms + extra]
        self.compute = tuple(self.algorithms + extra + inventory + [FAST_ALGORITHM])
        self.recorded = (*dict.fromkeys((*self.algorithms, *INVENTORY_ALGORITHMS)),
                         FAST_ALGORITHM)  # the digests kept in the catalog
        self.staged = repo.staging / aip_id  # the OCFL object, whole
        self.bag = self.staged / "v1" / ocfl.CONTENT  # the bag of its first version
        self.duplicate_of: list[str] = []  # AIPs that hold the same content already
        self.object_root = ocfl.object_root(aip_id)
        self.version = 1
        self.created = now_utc()
        self.file_count, self.total_bytes, self.empty_dir_count = scan.totals()
        self.formats: Counter = Counter()
        self.confidence: Counter = Counter()
        self.mismatches: list[str] = []  # refuse the source
        self.failures: list[str] = []
        self.differences: list[str] = []  # --as-folder: the bag's digests, reported only
        self.bag_checked = 0  # payload files compared with a source bag's manifests
        self.source_bag_info: list[tuple[str, str]] = []
        self.kept_tags: list[str] = []
        self.catalog_started = False
        self.tagmanifest_sha256 = ""
        self.location = repo.primary_location()
        self.events: list[EventRecord] = []
        self.tools: dict | None = None
        self.replicas: list[str] = []
        self.replication_problems: list[str] = []
        # A few small files are not worth starting processes for: copied and identified here.
        self.few = self.file_count <= 50 and self.total_bytes <= (64 << 20)
        self.copy_pool = WorkerPool(workers)
        siegfried_environment()  # before its process starts: Go reads it at start
        self.siegfried_pool = WorkerPool(1, initializer=load_siegfried)
        self._start_checks()

    def start_workers(self) -> None:
        """Boot the worker processes while this one prepares (tidy, space, folders): each
        costs an interpreter's start, and siegfried's first identification loads its
        signatures (0.3-0.5 s), which would otherwise wait for the first copied batch."""
        if self.few:
            return
        if self.source.parallel:
            self.copy_pool.start()
        self.siegfried_pool.start()

    def stop_workers(self) -> None:
        """Kill the workers unless the copy finished and closed them (no-op then)."""
        self.copy_pool.kill()
        self.siegfried_pool.kill()

    # -- building the bag in staging -----------------------------------------------------

    def build(self) -> None:
        self.staged.mkdir(parents=True)
        (self.bag / "data").mkdir(parents=True)
        (self.bag / "metadata").mkdir()
        for d in self.scan.folders():
            fstree.makedirs(self.bag / "data" / d)

        self.repo.catalog.begin_aip(self.aip_id, self.meta.collection, self.meta.title,
                                    self.created, str(self.source.origin.resolve()),
                                    self.source.kind)
        self.catalog_started = True
        if self.source.kind == "bag":
            self._keep_source_tag_files()
        with ExitStack() as files:
            def create(name: str):
                return files.enter_context(open(self.bag / name, "w", encoding="utf-8",
                                                newline="\n"))

            manifests = {a: create(f"manifest-{a}.txt") for a in self.algorithms}
            self._copy_and_record(manifests, create(FAST_LIST),
                                  PremisWriter(create(PREMIS_FILE), self.aip_id))
        self._write_tag_files()
        self._check_structure()
        self._write_object()

    def _keep_source_tag_files(self) -> None:
        """Copy every tag file of the source bag into metadata/source-bag/, named as in the
        source, each checked against the source's tag manifests as it is copied (a
        tampered bag-info.txt is refused, red-team case 24; nothing is dropped, case 25).
        The AIP's bag-info carries over the source's fields as read from these copies."""
        kept = self.bag / SOURCE_BAG_DIR
        for rel, _ in self.scan.bag.tag_files:
            expected = self.scan.expected(rel, tag=True)
            dest = kept / rel
            fstree.makedirs(dest.parent)
            try:
                with open_regular(self.source.path / rel) as stream:
                    _, digests, _ = copy_one(stream, str(dest), tuple(expected) or ("sha256",))
            except OSError as e:
                self.failures.append(f"{display(rel)}: cannot read: {e.strerror}")
                continue
            for algorithm, digest in expected.items():
                if digests[algorithm] != digest:
                    self.mismatches.append(f"{display(rel)}: {algorithm} in the source bag's "
                                           f"tag manifest is {digest}, the bytes read give "
                                           f"{digests[algorithm]}")
            self.kept_tags.append(rel)
        if "bag-info.txt" in self.kept_tags:
            raw = (kept / "bag-info.txt").read_bytes()
            text = bagfmt.decode_tag_text(raw, self.scan.bag.encoding)
            self.source_bag_info = [(i.label, i.value) for i in bagfmt.parse_bag_info(text)[0]]

    def _copy_and_record(self, manifests, fast, premis) -> None:
        pending: list[FileRecord] = []
        self.progress.start("ingest", self.file_count, self.total_bytes)
        for results, tools in self._copy_all():
            self.tools = tools
            for r in results:
                record = self._record(r, manifests, fast, premis)
                if record is not None:
                    pending.append(record)
                self.progress.advance(1, r.size)
            if len(pending) >= CATALOG_BATCH:
                self.repo.catalog.add_files(self.aip_id, self.version, pending)
                self._store_verdicts()
                pending = []
        if pending:
            self.repo.catalog.add_files(self.aip_id, self.version, pending)
        self._store_verdicts()
        if self.source.changed():
            self.failures.append(f"{self.source.origin}: the archive changed while it was being "
                                 "read")
        if self.failures or self.mismatches:
            self._fail()
        self._scan_for_viruses()
        self._refuse_by_policy()
        premis.finish(self._premis_events(), self._agents() + self._check_agents(),
                      more_events=self.file_events)
        self.file_events.close()

    def _copy_all(self):
        """Batches of finished copies, identified: copying and hashing in worker processes
        (or, for a tar, here in archive order), then one siegfried process for them all,
        then libmagic in the copy workers for what siegfried left it.

        Every stage gets every core it can use: `workers` copy processes and a siegfried
        process with `workers` goroutines run at once, and the kernel gives the CPU to
        whichever has work (each stage holds at most 3 batches per worker in flight, so
        a fast stage waits for a slow one instead of filling memory). The copier count
        was once chosen from the mean file size, on the idea that siegfried is the work
        between 8 KiB and 1 MiB: on real formats that left one core hashing while
        siegfried's waited (issue 11)."""
        few = self.few
        with self.copy_pool as copy_pool, self.siegfried_pool as siegfried:
            copies = (self._copy_parallel(None if few else copy_pool) if self.source.parallel
                      else self._copy_sequential())
            try:
                checked = partial(checked_batch, validate=self.policy.validate != "off")
                if few:  # not worth starting a process for
                    for results in copies:
                        yield checked(identify_batch(results))
                    return
                # One siegfried process identifies for every copier (its signatures take
                # about 100 MB each time they are loaded); its Go runtime runs `workers`
                # threads.
                identified = run_batches(
                    partial(identify_batch, workers=self.workers), copies, workers=1,
                    pool=siegfried, deadline=lambda b: 300 + sum(r.size for r in b) / 20e6)
                yield from run_batches(checked, identified, workers=self.workers,
                                       pool=copy_pool, ahead=1,
                                       deadline=lambda b: 300 + batch_timeout(b[0]))
            finally:
                copies.close()

    def _copy_parallel(self, pool: WorkerPool | None):
        """Copy in `pool`'s worker processes (in this process when None)."""
        data = str(self.bag / "data")
        # Big files first so the copiers end together; small files in big batches.
        spec = self.source.spec()
        tasks = ((spec, self.compute, [(e.path, e.ref, os.path.join(data, e.path), e.size)
                                       for e in batch])
                 for batch in batched(self.scan.files_biggest_first(), 200, 32 << 20,
                                      size=lambda e: e.size))
        return run_batches(copy_batch, tasks, workers=pool.workers if pool else 1, pool=pool,
                           deadline=lambda t: 300 + sum(x[3] for x in t[2]) / 20e6)

    def _copy_sequential(self):
        """Tar members arrive in archive order: copy each here as it comes, in batches. The
        archive is read to its end (its compressed stream's checksum verified) before the
        last batch is handed on; a damaged archive is refused, nothing kept."""
        data = str(self.bag / "data")
        batch: list[CopyResult] = []
        try:
            for name, stream in self.source.members():
                entry = self.scan.file_by_ref(name)
                if entry is None:
                    continue
                dest = os.path.join(data, entry.path)
                try:
                    size, digests, head = copy_one(stream, dest, self.compute, entry.size)
                except Overflow as e:
                    batch.append(CopyResult(entry.path, 0, {}, None, str(e)))
                    continue
                batch.append(copied(entry.path, entry.size, dest, size, digests, head))
                if len(batch) >= 200:
                    yield batch
                    batch = []
        except ARCHIVE_ERRORS as e:
            raise SourceRefused(f"{self.source.origin} is damaged: {archive_error(e)}; nothing "
                                "was ingested", hint="get a good copy of the archive from its "
                                "producer and re-run") from e
        if batch:
            yield batch

    def _record(self, r: CopyResult, manifests, fast, premis) -> FileRecord | None:
        path = "data/" + r.path
        if r.error:
            self.failures.append(f"{display(r.path)}: {r.error}")
            return None
        self._compare_with_source_bag(r)
        encoded = encode_manifest_path(path)
        for algorithm, f in manifests.items():
            f.write(f"{r.digests[algorithm]}  {encoded}\n")
        fast.write(f"{r.digests[FAST_ALGORITHM]}  {encoded}\n")
        ident = r.identification
        digests = {a: r.digests[a] for a in self.recorded}
        self.formats[(ident.puid, ident.format)] += 1
        self.confidence[ident.confidence] += 1
        notes = format_notes(ident.mime, ident.basis, ident.warning, ident.confidence,
                             ident.magic_mime, ident.magic_description)
        premis.write_object(FileObject(path, r.path, r.size, digests, ident.puid,
                                       ident.format, ident.version, notes))
        self._file_checked(path, r.validation)
        return FileRecord(path, r.size, digests, ident.puid, ident.format, ident.version,
                          ident.mime, ident.basis, ident.warning, ident.confidence,
                          ident.magic_mime, ident.magic_description)

    def _compare_with_source_bag(self, r: CopyResult) -> None:
        """A source bag's manifests against the bytes read. For a bag, every payload file
        must have been compared with at least one digest (the validator resolved every name
        the manifests spell, in whatever Unicode form: case 23) and every digest must match,
        or the source is refused. For a bag taken --as-folder, differences are reported."""
        if self.scan.bag is None:
            return
        expected = self.scan.expected(r.path)
        wrong = [f"{display(r.path)}: {algorithm} in the source bag's manifest is {digest}, "
                 f"the bytes read give {r.digests.get(algorithm)}"
                 for algorithm, digest in expected.items() if r.digests.get(algorithm) != digest]
        if self.source.kind == "bag":
            if not expected:
                wrong.append(f"{display(r.path)}: listed in no manifest preserve can verify, "
                             "so its bytes could not be checked")
            self.mismatches += wrong
        else:
            self.differences += wrong
        self.bag_checked += bool(expected)

    def _fail(self) -> None:
        if self.mismatches:
            raise FixityMismatch(
                f"{len(self.mismatches)} file(s) of the bag {self.source.origin} do not match its "
                "manifests; nothing was ingested:\n  " + "\n  ".join(self.mismatches[:50]),
                hint="the source bag is damaged: repair it from another copy, then re-run")
        damaged = self.source.kind in ("zip", "tar")
        raise SourceRefused(f"{len(self.failures)} file(s) could not be read from "
                            f"{self.source.origin}; nothing was ingested", self.failures,
                            hint="the archive is damaged: get a good copy from its producer "
                                 "and re-run" if damaged else
                                 "make them readable (or stop whatever is changing them) and "
                                 "re-run")

    def _write_tag_files(self) -> None:
        (self.bag / "bagit.txt").write_text(bagfmt.DECLARATION, encoding="utf-8")
        (self.bag / "bag-info.txt").write_text(bagfmt.format_bag_info(self._bag_info()),
                                               encoding="utf-8", newline="\n")
        if self.empty_dir_count:
            with open(self.bag / EMPTY_DIRS_FILE, "w", encoding="utf-8", newline="\n") as f:
                f.writelines(encode_manifest_path("data/" + d) + "\n"
                             for d in self.scan.empty_dirs())
        self.tagmanifest, self.tagmanifest_sha256 = write_tag_manifests(self.bag,
                                                                        self.algorithms)

    def _write_object(self) -> None:
        """Make the staged bag the first version of an OCFL object: the tag files' rows
        beside the payload's, the inventory written from them, the object's declaration."""
        self.repo.catalog.add_files(self.aip_id, self.version, tag_records(self.bag))
        self.record = new_record(self.version, self.version_created, self.version_message)
        version_dir = self.staged / "v1"
        self.inventory_sha512 = write_inventory(self.repo.catalog, self.aip_id, [self.record],
                                                version_dir)
        for name in ocfl.VERSION_FILES:
            shutil.copyfile(version_dir / name, self.staged / name)
        (self.staged / ocfl.OBJECT_DECLARATION).write_bytes(
            ocfl.declaration(ocfl.OBJECT_DECLARATION))

    def _check_structure(self) -> None:
        """Completeness and well-formedness of what we wrote (no re-reading of payload)."""
        report = validate_bag(self.bag, check_fixity=False)
        if not report.valid:
            raise BagInvalid("the bag preserve built does not pass its own validator; this is a "
                             "bug in preserve, nothing was stored", report.errors)
        self.structure_warnings = [f"{f.code} {f.message}" for f in report.warnings]


    # -- publishing ----------------------------------------------------------------------

    def publish(self) -> None:
        key = ocfl.version_key(self.object_root, self.version)
        self.repo.catalog.stage_version(
            self.aip_id, self.version, self.record, self.file_count, self.total_bytes,
            bagfmt.payload_oxum(self.total_bytes, self.file_count), self.tagmanifest,
            self.tagmanifest_sha256, self.inventory_sha512, self.events, title=self.meta.title)
        ensure_ocfl_root(self.location)
        self.location.publish_bag(self.staged, self.object_root, move=True)
        self.repo.catalog.mark_stored(self.aip_id, self.version, self.location.name, key,
                                      now_utc())
        self.replicas = [self.location.name]

    def replicate(self) -> None:
        """Copies at the policy's other locations. The AIP is already safely stored: a
        location that fails is reported (and `preserve replicate` finishes the job)."""
        from preserve.storage.replicate import copy_version

        for target in self.repo.replica_locations()[1:]:
            try:
                copy_version(self.repo, self.aip_id, self.version, target)
                self.replicas.append(target.name)
            except PreserveError as e:
                self.replication_problems.append(f"{target.name}: {e.message}")

    def abandon(self) -> None:
        """Undo a failed or interrupted ingest: no staging folder, no catalog rows, no
        empty folder where the AIP was about to be published."""
        fstree.rmtree(self.staged, ignore_errors=True)
        with suppress(OSError):
            self.location.remove_empty_folders(self.object_root)
        if self.catalog_started:
            with suppress(Exception):  # if this fails too, recover() resolves it next run
                self.repo.catalog.discard_aip(self.aip_id)
