"""Uploads to an S3-compatible store, each verified (issue 29): the part of S3Storage
(s3.py) that writes objects. One request per object where the store checks the SHA-256
sent with it; the verification each store gets is found once, by a probe.

Every object is uploaded with a SHA-256 checksum; an ETag is taken for an MD5 only where
the store does not check checksums and its ETag has an MD5's form. Each upload returns
what the store answered (its ETag, kept for quick audits: catalog.stored_etags). Files
over the location's multipart_threshold go in parts of PART_SIZE or more with a SHA-256
per part, many parts in flight across all of a copy's files, their memory bounded by
PART_MEMORY; the store's composite checksum (SHA-256 of the part digests) is recomputed
here and compared.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from pathlib import Path

from preserve.domain import ocfl
from preserve.errors import FixityMismatch, PreserveError
from preserve.stores.base import DigestOf, Stored, Written, bag_files, open_stored

PART_SIZE = 8 << 20   # smallest part; bigger files get bigger parts (at most 9,000 parts)


def part_size(size: int) -> int:
    """The part size of a file of `size` bytes: PART_SIZE, more for files that would need
    more than 9,000 parts (stores allow 10,000)."""
    return max(PART_SIZE, -(-size // 9000))


def in_parts_before_composites(size: int) -> bool:
    """Whether a preserve from before COMPOSITES_SINCE uploaded a file of `size` bytes in
    parts: every file of more than one PART_SIZE. Their composite checksums were not
    recorded; a quick audit takes such a composite as theirs (a full audit reads it)."""
    return size > part_size(size)


# Composite checksums recorded for every file uploaded in parts since (913d8f5): in a
# replica stored later, a composite with no record is an object replaced (case 83).
COMPOSITES_SINCE = "2026-11-26T13:57:28Z"
IN_MEMORY = 1 << 20  # files up to this are sent as bytes: concurrency x this in memory
# Parts read and not yet sent, across every upload of a location: what a copy of large
# files holds in memory (8 parts of 8 MiB in flight; aws s3 sync keeps 10).
PART_MEMORY = 64 << 20
# How each upload is verified (issue 29), said by `storage check` and the replication
# report. A store that checks the SHA-256 sent with an upload (AWS S3, MinIO, Ceph RGW)
# refuses bytes that do not have it: one request, nothing read back. One that does not
# (found once per location by a probe with a wrong SHA-256) has the bytes sent hashed on
# the way, their SHA-256 compared with the record and its ETag (the MD5 of what it
# received) with their MD5; a store whose ETag is no MD5 is read back (HeadObject).
BY_STORE = "the store checks the SHA-256 sent with each upload (one request per object)"
BY_ETAG = ("the store does not check checksums: the SHA-256 of the bytes sent against the "
           "record, and the store's ETag against their MD5 (one request per object)")
BY_HEAD = "the store's SHA-256 read back after each upload (two requests per object)"
DIGEST_REFUSED = frozenset({"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch",
                            "XAmzContentSHA256Mismatch"})
# Where the probe goes: an extension folder of the storage root, where OCFL lets a tool
# keep its own files (`check` names nothing there), should it outlive its deletion (a
# bucket whose Object Lock keeps every object for its retention).
PROBE_KEY = "extensions/preserve-probe/checksum-"


class _Place:
    """What every S3Storage of one store and prefix in this process shares (replicate
    copies several AIPs at once, each thread with its own): the verification found, the
    requests in flight (the location's `concurrency`), the part pool and its buffers."""

    def __init__(self, concurrency: int):
        self.lock = threading.Lock()
        self.verification: str | None = None
        self.probing: Future | None = None  # the probe under way (begin_writes)
        self.in_flight = threading.BoundedSemaphore(concurrency)
        self.parts: tuple[_PartBuffers, ThreadPoolExecutor] | None = None


_PLACES: dict[tuple[str, str, int], _Place] = {}
_PLACES_LOCK = threading.Lock()


def shared_place(place: tuple[str, str], concurrency: int) -> _Place:
    """The state shared by every S3Storage of `place` with these settings."""
    with _PLACES_LOCK:
        return _PLACES.setdefault((*place, concurrency), _Place(concurrency))


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class S3Uploads:
    """The uploading part of S3Storage: it uses the storage's client, settings, _call,
    _key and _extra."""

    def begin_writes(self) -> None:
        """Probe the store's checksums beside what is written first (the storage root, the
        object's leftovers, the first uploads): an upload is sent the same way whatever
        the verification, which is asked only once its answer is back. Across a WAN the
        probe's two round trips were the first writes' to wait on (issue 29)."""
        self.client  # made here: two threads must not make it at once  # noqa: B018
        if self._shared.verification is None:
            self._probing()

    def verification(self) -> str:
        """How this store's uploads are verified: probed once per process (an upload of a
        few bytes with a wrong SHA-256: refused, or taken and deleted)."""
        return self._shared.verification or self._probing().result()

    def _probing(self) -> Future:
        """The probe of this store, started once (again after a probe that failed: the
        store unreachable, say); its result is the verification."""
        shared = self._shared
        with shared.lock:
            running = shared.probing
            if shared.verification is not None:  # found while this one waited for the lock
                running = Future()
                running.set_result(shared.verification)
            elif running is None or (running.done() and running.exception() is not None):
                running = shared.probing = Future()  # the first, or again after a failure
                threading.Thread(target=self._probe_into, args=(running,), daemon=True,
                                 name="checksum probe").start()
            return running

    def _probe_into(self, future: Future) -> None:
        try:
            found = self._probe_checksums()
        except BaseException as e:  # noqa: BLE001 - the caller that waits raises it
            future.set_exception(e)
            return
        with self._shared.lock:
            if self._shared.verification is None:  # else BY_HEAD, found by an upload
                self._shared.verification = found
            future.set_result(self._shared.verification)

    def _probe_checksums(self) -> str:
        import uuid

        key = self.prefix + PROBE_KEY + uuid.uuid4().hex
        wrong = base64.b64encode(hashlib.sha256(b"not these bytes").digest()).decode()
        try:
            self._call("probe its checksums", self.client.put_object,
                       Bucket=self.settings.bucket, Key=key, Body=b"probe",
                       ChecksumAlgorithm="SHA256", ChecksumSHA256=wrong)
        except FixityMismatch:  # refused: it checks what it receives
            return BY_STORE
        with suppress(PreserveError):  # Object Lock may keep it: harmless where it is
            self._call("remove the checksum probe", self.client.delete_object,
                       Bucket=self.settings.bucket, Key=key)
        return BY_ETAG

    def put_file(self, key: str, path: Path, sha256_hex: str, size: int,
                 stop: threading.Event | None = None) -> Stored:
        """Upload a local file and verify what the store holds; raises FixityMismatch if not.
        Returns the store's answer: its ETag, and for a multipart upload the composite
        checksum (a quick audit compares them with what the store reports later, without
        reading anything). `stop`, once set, ends an upload in parts between parts."""
        if size <= IN_MEMORY:
            return self._put_small(key, path, sha256_hex, size)
        if size <= self.settings.multipart_threshold:
            return self._put_single(key, path, sha256_hex, size)
        how = self.verification()
        composite, etag, answer = self._put_multipart(key, path, part_size(size), stop,
                                                      sha256_hex, md5=how != BY_STORE)
        if how == BY_STORE:  # each part was checked against its SHA-256
            self._compare(key, answer.get("ChecksumSHA256"), composite)
            return Stored(_etag(answer), composite)
        if etag is not None:  # each part's ETag was the MD5 of the bytes sent, and the
            return Stored(etag, composite)  # whole's the MD5 of those MD5s
        return Stored(self.verify(key, sha256_hex, size, composite=composite), composite)

    def _put_small(self, key: str, path: Path, sha256_hex: str, size: int) -> None:
        """A small file read whole, held against its record, then sent as bytes: the SDK
        asks a store to confirm a file-like body before sending it (Expect: 100-continue),
        a round trip more for each object; bytes go at once. A copy whose bytes are not
        the recorded ones is refused before anything is sent."""
        with open_stored(str(path), str(path)) as f:
            data = f.read(size + 1)
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256_hex:
            raise FixityMismatch(f"{path} does not hold the bytes recorded for {key} (its "
                                 f"size or SHA-256 differs); nothing was sent to "
                                 f"'{self.name}'", hint="run 'preserve audit' on the local "
                                 "copy, then 'preserve repair'")
        return self.put_bytes(key, data)

    def _put_single(self, key: str, path: Path, sha256_hex: str, size: int) -> Stored:
        """One request, streamed from the file, with the SHA-256 recorded at ingest
        (x-amz-checksum-sha256): a store that checks checksums refuses bytes that differ
        from the record. For one that does not, the bytes sent are hashed as they go
        (HashingReader): their SHA-256 is held against the record and the store's ETag
        against their MD5; where either differs the object is deleted at once (it would
        carry a checksum it was never held to) and the upload refused."""
        ours = _b64(sha256_hex)
        # a store known to check is sent the file as it is; while the probe is still out
        # (the first uploads of a run), the bytes are hashed in case it does not
        checks = self._shared.verification == BY_STORE
        with open_stored(str(path), str(path)) as f:
            body = f if checks else HashingReader(f)
            answer = self._call(f"upload {key}", self.client.put_object,
                                Bucket=self.settings.bucket, Key=self._key(key), Body=body,
                                ContentLength=size, ChecksumAlgorithm="SHA256",
                                ChecksumSHA256=ours, **self._extra())
        how = self.verification()
        etag = _etag(answer)
        if how == BY_STORE:
            self._compare(key, answer.get("ChecksumSHA256"), ours)
            return Stored(etag)
        try:
            if body.sha256.hexdigest() != sha256_hex:
                raise FixityMismatch(f"{path} does not hold the bytes recorded for {key} (its "
                                     f"SHA-256 differs); what was sent to '{self.name}' was "
                                     "removed", hint="run 'preserve audit' on the local copy, "
                                     "then 'preserve repair'")
            if re.fullmatch(r"[0-9a-f]{32}", etag or ""):
                if etag != body.md5.hexdigest():
                    raise FixityMismatch(f"'{self.name}' received other bytes for {key} than "
                                         f"were sent: its MD5 (ETag) is {etag}, the bytes "
                                         f"sent {body.md5.hexdigest()}")
                return Stored(etag)
        except FixityMismatch:
            with suppress(PreserveError):  # else the copy's undo, or the next run, clears it
                self._call(f"remove {key}", self.client.delete_object,
                           Bucket=self.settings.bucket, Key=self._key(key))
            raise
        with self._shared.lock:
            self._shared.verification = BY_HEAD
        return Stored(self.verify(key, sha256_hex, size))

    def _compare(self, key: str, stored: str | None, expected: str) -> None:
        stored = (stored or "").split("-")[0]
        if stored != expected:
            raise FixityMismatch(f"'{self.name}' holds different bytes for {key}: its SHA-256 "
                                 f"is {stored or 'not given'}, ours {expected}")

    def _put_multipart(self, key: str, path: Path, part_bytes: int,
                       stop: threading.Event | None, sha256_hex: str, md5: bool
                       ) -> tuple[str, str | None, dict]:
        """The parts go to the location's part pool, as many at once as PART_MEMORY holds
        (shared by every upload in flight, so eight large files do not hold eight times
        as much); this thread reads them, in order, each byte once, into buffers used
        again, and hashes them whole: a file that is not the one recorded (`sha256_hex`)
        is never completed at the store. With `md5` (a store that does not check
        checksums), each part's ETag is held against the MD5 of its bytes, and the
        whole's against the MD5 of those: returned as the ETag verified (None where the
        store's ETags are no MD5s)."""
        bucket, full = self.settings.bucket, self._key(key)
        upload = self._call(f"start upload of {key}", self.client.create_multipart_upload,
                            Bucket=bucket, Key=full, ChecksumAlgorithm="SHA256", **self._extra())
        upload_id = upload["UploadId"]
        buffers, pool = self._parts()
        sent: list[Future] = []
        digests, md5s = [], []
        whole = hashlib.sha256()
        failed: list[BaseException] = []  # a refused part stops the file at once

        def send(number: int, buffer: bytearray, length: int, b64: str,
                 part_md5: str | None) -> tuple[dict, bool]:
            try:
                body = buffer if length == len(buffer) else bytes(memoryview(buffer)[:length])
                response = self._call(f"upload part {number} of {key}",
                                      self.client.upload_part, Bucket=bucket, Key=full,
                                      UploadId=upload_id, PartNumber=number, Body=body,
                                      ChecksumAlgorithm="SHA256", ChecksumSHA256=b64)
            except BaseException as e:
                failed.append(e)
                raise
            finally:
                buffers.give(buffer)
            etag = _etag(response) or ""
            if part_md5 and re.fullmatch(r"[0-9a-f]{32}", etag) and etag != part_md5:
                failed.append(FixityMismatch(
                    f"'{self.name}' received other bytes for part {number} of {key} than "
                    f"were sent: its MD5 (ETag) is {etag}, the bytes sent {part_md5}"))
                raise failed[-1]
            return ({"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": b64},
                    etag == part_md5)

        try:
            with open_stored(str(path), str(path)) as f:
                number = 0
                while True:
                    if failed:
                        raise failed[0]
                    if stop is not None and stop.is_set():
                        raise PreserveError(f"the upload of {key} was stopped")
                    buffer = buffers.take(part_bytes)
                    try:
                        length = _read_into(f, buffer)
                    except BaseException:
                        buffers.give(buffer)
                        raise
                    if not length:
                        buffers.give(buffer)
                        break
                    number += 1
                    view = memoryview(buffer)[:length]
                    whole.update(view)
                    digest = hashlib.sha256(view).digest()
                    digests.append(digest)
                    part_md5 = hashlib.md5(view, usedforsecurity=False) if md5 else None
                    if part_md5 is not None:
                        md5s.append(part_md5.digest())
                    del view
                    sent.append(pool.submit(send, number, buffer, length,
                                            base64.b64encode(digest).decode(),
                                            part_md5 and part_md5.hexdigest()))
            results = [future.result() for future in sent]
            if whole.hexdigest() != sha256_hex:
                raise FixityMismatch(f"{path} does not hold the bytes recorded for {key} (its "
                                     f"SHA-256 differs); the upload to '{self.name}' was "
                                     "abandoned, nothing of it kept",
                                     hint="run 'preserve audit' on the local copy, then "
                                          "'preserve repair'")
            answer = self._call(f"complete upload of {key}",
                                self.client.complete_multipart_upload, Bucket=bucket, Key=full,
                                UploadId=upload_id,
                                MultipartUpload={"Parts": [part for part, _ in results]})
        except BaseException:
            for future in sent:
                future.cancel()
            for future in sent:  # the parts already sent finish before the upload is aborted
                with suppress(BaseException):
                    future.result()
            # if the abort fails too, the store's lifecycle rule for incomplete uploads applies
            with suppress(Exception):
                self.client.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id)
            raise
        composite = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
        verified = None
        if md5 and all(same for _, same in results):
            of_parts = hashlib.md5(b"".join(md5s), usedforsecurity=False).hexdigest()
            verified = f"{of_parts}-{len(md5s)}"
            if _etag(answer) != verified:
                raise FixityMismatch(f"'{self.name}' assembled other bytes for {key} than "
                                     f"were sent: its ETag is {_etag(answer)}, the parts sent "
                                     f"make {verified}")
        return composite, verified, answer

    def _parts(self) -> tuple[_PartBuffers, ThreadPoolExecutor]:
        """The location's part pool and the buffers its parts are read into, made once."""
        shared = self._shared
        with shared.lock:
            if shared.parts is None:
                threads = max(1, min(self.settings.concurrency, PART_MEMORY // PART_SIZE))
                shared.parts = (_PartBuffers(PART_MEMORY),
                                ThreadPoolExecutor(threads, thread_name_prefix="part"))
            return shared.parts

    def verify(self, key: str, sha256_hex: str, size: int,
               composite: str | None = None) -> str | None:
        """Compare the store's own checksum and size for `key` with ours; its ETag."""
        head = self._call(f"check {key}", self.client.head_object, Bucket=self.settings.bucket,
                          Key=self._key(key), ChecksumMode="ENABLED")
        stored = (head.get("ChecksumSHA256") or "").split("-")[0]
        expected = composite or _b64(sha256_hex)
        if head.get("ContentLength") != size:
            raise FixityMismatch(f"'{self.name}' holds {head.get('ContentLength')} bytes for "
                                 f"{key}, {size} were written")
        if not stored:
            raise FixityMismatch(f"'{self.name}' reports no SHA-256 checksum for {key}; cannot "
                                 "verify the upload",
                                 hint="this store may not support checksums: set "
                                      "'checksum: when_required' and verify by reading")
        if stored != expected:
            raise FixityMismatch(f"'{self.name}' holds different bytes for {key}: its SHA-256 "
                                 f"is {stored}, ours {expected}")
        return _etag(head)

    def publish_bag(self, source: Path, prefix: str, digests: DigestOf | None = None,
                    *, move: bool = False, written: Written | None = None,
                    stop: threading.Event | None = None) -> None:
        """Upload every file of the version folder, its inventory and sidecar last, each
        verified against `digests` (the sha256 recorded at ingest) or, failing that,
        against a digest taken here; `written` is told each store's answer, in this
        thread. The files stream from the folder, `concurrency` uploads in flight, so
        that memory does not grow with the number of files. `move` means nothing here."""
        digests = digests or (lambda _: None)
        written = written or (lambda rel, size, answer: None)
        stop = stop or threading.Event()

        def upload(path: Path, rel: str, digest: str | None) -> tuple[str, int, Stored]:
            if stop.is_set():
                raise PreserveError("stopped")
            size = path.stat().st_size
            if digest is None:
                with open_stored(str(path), str(path)) as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            return rel, size, self.put_file(prefix + rel, path, digest, size, stop)

        def last(path: Path) -> bool:  # a version's inventory, after its content
            return path.parent == source and path.name in ocfl.VERSION_FILES

        def settle(futures) -> None:
            for future in futures:
                written(*future.result())  # the first failure stops the bag

        self.client  # create the client once, before the threads share it  # noqa: B018
        in_flight: set[Future] = set()
        threads = self.settings.concurrency
        top = str(source)
        with ThreadPoolExecutor(threads) as pool:
            try:
                for path in bag_files(source):
                    if last(path):
                        continue
                    if len(in_flight) >= threads * 4:
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        settle(done)
                    rel = str(path)[len(top) + 1:]
                    # the digest is looked up here: `digests` may read the catalog, whose
                    # connection belongs to this thread
                    in_flight.add(pool.submit(upload, path, rel, digests(rel)))
                done, in_flight = wait(in_flight)
                settle(done)
                # only now is the bag complete: its inventory and sidecar, together
                for path in sorted(p for p in source.iterdir() if p.is_file() and last(p)):
                    in_flight.add(pool.submit(upload, path, path.name, digests(path.name)))
                done, in_flight = wait(in_flight)
                settle(done)
            except BaseException:
                stop.set()
                for future in in_flight:
                    future.cancel()
                raise

    def replace_file(self, key: str, good: Path) -> Stored:
        """Upload the verified file `good` over `key` (a new version where versioning is on);
        the store's answer."""
        with open(good, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        return self.put_file(key, good, digest, good.stat().st_size)

    def put_bytes(self, key: str, data: bytes) -> Stored:
        """A small new object (an event record, an inventory), checksummed and verified in
        one request as put_file's are: the SHA-256 sent is of these very bytes."""
        sha256 = hashlib.sha256(data)
        ours = base64.b64encode(sha256.digest()).decode()
        answer = self._call(f"upload {key}", self.client.put_object,
                            Bucket=self.settings.bucket, Key=self._key(key), Body=data,
                            ChecksumAlgorithm="SHA256", ChecksumSHA256=ours, **self._extra())
        how = self.verification()
        etag = _etag(answer)
        if how == BY_STORE:
            self._compare(key, answer.get("ChecksumSHA256"), ours)
        elif re.fullmatch(r"[0-9a-f]{32}", etag or ""):
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if etag != md5:
                raise FixityMismatch(f"'{self.name}' received other bytes for {key} than "
                                     f"were sent: its MD5 (ETag) is {etag}, ours {md5}")
        else:
            etag = self.verify(key, sha256.hexdigest(), len(data))
        return Stored(etag)


def _etag(answer: dict) -> str | None:
    """The ETag of a store's answer, without its quotes (listings give it the same way)."""
    return answer.get("ETag", "").strip('"') or None


def _read_into(f, buffer: bytearray) -> int:
    """Fill `buffer` from `f` (a read may return less than asked); the bytes read."""
    view, filled = memoryview(buffer), 0
    while filled < len(buffer):
        n = f.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


class _PartBuffers:
    """Buffers for parts read and not yet sent: at most `total` bytes of them, each used
    again once its part is sent. (A new 8 MiB object per part leaves the allocator
    holding freed ones in every thread's arena: the process grew well past the parts in
    flight.) A part bigger than the whole budget waits until nothing else is held."""

    def __init__(self, total: int):
        self.total, self.held = total, 0
        self.free: list[bytearray] = []
        self._changed = threading.Condition()

    def take(self, n: int) -> bytearray:
        with self._changed:
            self._changed.wait_for(lambda: self.held + n <= self.total or not self.held)
            self.held += n
            for i, buffer in enumerate(self.free):
                if len(buffer) == n:
                    return self.free.pop(i)
            while self.free and self.held + sum(map(len, self.free)) > self.total:
                self.free.pop()  # of another size: let it go
        return bytearray(n)

    def give(self, buffer: bytearray) -> None:
        with self._changed:
            self.held -= len(buffer)
            self.free.append(buffer)
            while self.free and self.held + sum(map(len, self.free)) > self.total:
                self.free.pop(0)
            self._changed.notify_all()


class HashingReader:
    """A file as the SDK reads it for an upload, hashed on the way (SHA-256 and MD5 of
    the bytes actually sent); a retry that seeks back to the start hashes again."""

    def __init__(self, f):
        self._f = f
        self._reset()

    def _reset(self) -> None:
        self.sha256, self.md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.sha256.update(data)
        self.md5.update(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) == (0, 0):
            self._reset()
        elif whence != 1 or offset:
            raise OSError("an upload body is read from its start only")
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()
