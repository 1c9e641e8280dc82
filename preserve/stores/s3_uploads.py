"""Uploads to an S3-compatible store, each verified (issue 29): the part of S3Storage
(s3.py) that writes objects. One request per object where the store checks the SHA-256
sent with it; the verification each store gets is found once, by a probe.

Every object is uploaded with a SHA-256 checksum; an ETag is taken for an MD5 only where
the store does not check checksums and its ETag has an MD5's form. Large files go in
parts of PART_SIZE with a SHA-256 per part; the store's composite checksum (SHA-256 of
the part digests) is recomputed here and compared. Memory stays at one part per upload.
"""

from __future__ import annotations

import base64
import hashlib
import re
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from contextlib import suppress
from pathlib import Path

from preserve.domain import ocfl
from preserve.errors import FixityMismatch, PreserveError
from preserve.stores.base import DigestOf, bag_files, open_stored

PART_SIZE = 8 << 20   # smallest part; bigger files get bigger parts (at most 9,000 parts)


def part_size(size: int) -> int:
    """The part size of a file of `size` bytes: PART_SIZE, more for files that would need
    more than 9,000 parts (stores allow 10,000)."""
    return max(PART_SIZE, -(-size // 9000))


def uploaded_in_parts(size: int) -> bool:
    """Whether preserve uploads a file of `size` bytes in parts (see put_file)."""
    return size > part_size(size)
IN_MEMORY = 1 << 20  # files up to this are sent as bytes: concurrency x this in memory
MULTIPART_AT_ONCE = 2         # large uploads in flight at once: memory is this x one part
# How each upload is verified (issue 29), said by `storage check` and the replication
# report. A store that checks the SHA-256 sent with an upload (AWS S3, MinIO, Ceph RGW)
# refuses bytes that do not have it: one request, nothing read back. One that does not
# (found once per location by a probe with a wrong SHA-256) gets the SHA-256 the SDK
# computed over the bytes it sent, compared with the record, and its ETag (the MD5 of
# what it received) compared with the MD5 of those bytes; a store whose ETag is no MD5 is
# read back (HeadObject).
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


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class S3Uploads:
    """The uploading part of S3Storage: it uses the storage's client, settings, _call,
    _key and _extra."""

    def verification(self) -> str:
        """How this store's uploads are verified: probed once (an upload of a few bytes
        with a wrong SHA-256: refused, or taken and deleted)."""
        with self._verification_lock:
            if self._verification is None:
                self._verification = self._probe_checksums()
            return self._verification

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

    def put_file(self, key: str, path: Path, sha256_hex: str, size: int) -> str | None:
        """Upload a local file and verify what the store holds; raises FixityMismatch if not.
        Returns the composite checksum of a multipart upload (None for one part): a quick
        audit compares it with what the store reports later, without reading anything."""
        if size <= IN_MEMORY:
            self._put_small(key, path, sha256_hex, size)
            return None
        if not uploaded_in_parts(size):
            self._put_single(key, path, sha256_hex, size)
            return None
        with self._multipart_slots:
            composite, answer = self._put_multipart(key, path, part_size(size))
        if self.verification() == BY_STORE:  # each part was checked against its SHA-256
            self._compare(key, answer.get("ChecksumSHA256"), composite)
        else:
            self.verify(key, sha256_hex, size, composite=composite)
        return composite

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
        self.put_bytes(key, data)

    def _put_single(self, key: str, path: Path, sha256_hex: str, size: int) -> None:
        """One request. To a store that checks checksums, the SHA-256 recorded at ingest
        goes with the bytes (x-amz-checksum-sha256): bytes that differ from the record are
        refused. To one that does not, the SDK's SHA-256 of the bytes it sends goes (a store
        keeping ours would vouch for bytes it never checked), compared with the record
        here, and the store's ETag with the MD5 of the same bytes (HashingReader)."""
        how = self.verification()
        ours = _b64(sha256_hex)
        with open_stored(str(path), str(path)) as f:
            body = HashingReader(f)
            checksum = {"ChecksumSHA256": ours} if how == BY_STORE else {}
            answer = self._call(f"upload {key}", self.client.put_object,
                                Bucket=self.settings.bucket, Key=self._key(key), Body=body,
                                ContentLength=size, ChecksumAlgorithm="SHA256", **checksum,
                                **self._extra())
        if how == BY_STORE:
            self._compare(key, answer.get("ChecksumSHA256"), ours)
            return
        self._compare(key, base64.b64encode(body.sha256.digest()).decode(), ours)
        etag = answer.get("ETag", "").strip('"')
        if re.fullmatch(r"[0-9a-f]{32}", etag):
            if etag != body.md5.hexdigest():
                raise FixityMismatch(f"'{self.name}' received other bytes for {key} than were "
                                     f"sent: its MD5 (ETag) is {etag}, the bytes sent "
                                     f"{body.md5.hexdigest()}")
            return
        with self._verification_lock:
            self._verification = BY_HEAD
        self.verify(key, sha256_hex, size)

    def _compare(self, key: str, stored: str | None, expected: str) -> None:
        stored = (stored or "").split("-")[0]
        if stored != expected:
            raise FixityMismatch(f"'{self.name}' holds different bytes for {key}: its SHA-256 "
                                 f"is {stored or 'not given'}, ours {expected}")

    def _put_multipart(self, key: str, path: Path, part_bytes: int) -> tuple[str, dict]:
        bucket, full = self.settings.bucket, self._key(key)
        upload = self._call(f"start upload of {key}", self.client.create_multipart_upload,
                            Bucket=bucket, Key=full, ChecksumAlgorithm="SHA256", **self._extra())
        upload_id = upload["UploadId"]
        parts, digests = [], []
        try:
            with open_stored(str(path), str(path)) as f:
                number = 0
                while chunk := f.read(part_bytes):
                    number += 1
                    digest = hashlib.sha256(chunk).digest()
                    digests.append(digest)
                    b64 = base64.b64encode(digest).decode()
                    response = self._call(f"upload part {number} of {key}",
                                          self.client.upload_part, Bucket=bucket, Key=full,
                                          UploadId=upload_id, PartNumber=number, Body=chunk,
                                          ChecksumAlgorithm="SHA256", ChecksumSHA256=b64)
                    parts.append({"PartNumber": number, "ETag": response["ETag"],
                                  "ChecksumSHA256": b64})
            answer = self._call(f"complete upload of {key}",
                                self.client.complete_multipart_upload, Bucket=bucket, Key=full,
                                UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            # if the abort fails too, the store's lifecycle rule for incomplete uploads applies
            with suppress(Exception):
                self.client.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id)
            raise
        composite = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
        return composite, answer

    def verify(self, key: str, sha256_hex: str, size: int, composite: str | None = None) -> None:
        """Compare the store's own checksum and size for `key` with ours."""
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

    def publish_bag(self, source: Path, prefix: str, digests: DigestOf | None = None,
                    *, move: bool = False) -> dict[str, str]:
        """Upload every file of the version folder, its inventory last, each verified against
        `digests` (the sha256 recorded at ingest) or, failing that, against a digest taken
        here. The files stream from the folder, a few uploads in flight at a time, so that
        memory does not grow with the number of files. `move` means nothing here."""
        digests = digests or (lambda _: None)
        composites: dict[str, str] = {}

        def upload(path: Path, digest: str | None) -> None:
            rel = rel_of(path)
            if digest is None:
                with open_stored(str(path), str(path)) as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            composite = self.put_file(prefix + rel, path, digest, path.stat().st_size)
            if composite:
                composites[rel] = composite

        def rel_of(path: Path) -> str:
            return path.relative_to(source).as_posix()

        def last(path: Path) -> bool:  # a version's inventory, after its content
            return path.parent == source and path.name in ocfl.VERSION_FILES

        self.client  # create the client once, before the threads share it  # noqa: B018
        in_flight: set[Future] = set()
        threads = self.settings.concurrency
        with ThreadPoolExecutor(threads) as pool:
            try:
                for path in bag_files(source):
                    if last(path):
                        continue
                    if len(in_flight) >= threads * 4:
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        for future in done:
                            future.result()  # the first failure stops the bag
                    # the digest is looked up here: `digests` may read the catalog, whose
                    # connection belongs to this thread
                    in_flight.add(pool.submit(upload, path, digests(rel_of(path))))
                for future in as_completed(in_flight):
                    future.result()
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        for path in sorted(p for p in source.iterdir() if p.is_file() and last(p)):
            upload(path, digests(rel_of(path)))  # only now is the bag complete
        return composites

    def replace_file(self, key: str, good: Path) -> str | None:
        """Upload the verified file `good` over `key` (a new version where versioning is on);
        its composite checksum if it went in parts."""
        with open(good, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        return self.put_file(key, good, digest, good.stat().st_size)

    def put_bytes(self, key: str, data: bytes) -> None:
        """A small new object (an event record, an inventory), checksummed and verified in
        one request as put_file's are: the SHA-256 sent is of these very bytes."""
        sha256 = hashlib.sha256(data)
        ours = base64.b64encode(sha256.digest()).decode()
        answer = self._call(f"upload {key}", self.client.put_object,
                            Bucket=self.settings.bucket, Key=self._key(key), Body=data,
                            ChecksumAlgorithm="SHA256", ChecksumSHA256=ours, **self._extra())
        how = self.verification()
        etag = answer.get("ETag", "").strip('"')
        if how == BY_STORE:
            self._compare(key, answer.get("ChecksumSHA256"), ours)
        elif re.fullmatch(r"[0-9a-f]{32}", etag):
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if etag != md5:
                raise FixityMismatch(f"'{self.name}' received other bytes for {key} than "
                                     f"were sent: its MD5 (ETag) is {etag}, ours {md5}")
        else:
            self.verify(key, sha256.hexdigest(), len(data))


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
