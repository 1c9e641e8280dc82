"""S3-compatible object storage (AWS S3, MinIO, Ceph RGW, Wasabi...) through boto3.

Uploads, each verified, are s3_uploads.py's; here: the client (a pool of `concurrency`
connections), the calls and how their failures are named, reading, listing, the store's
checksums for a quick audit (`concurrency` in flight), removal.

Credentials come only from the environment or an AWS profile; nothing
secret is ever written to a file, a message or an event.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO, NamedTuple

from preserve.domain.names import decode_object_key, encode_object_key
from preserve.domain.ocfl import ROOT_DECLARATION
from preserve.errors import ConfigError, FixityMismatch, PreserveError, StorageUnreachable
from preserve.stores.base import ObjectInfo, checked_key, layout_versions
from preserve.stores.s3_settings import CHECKSUM_BEHAVIOURS, S3Settings
from preserve.stores.s3_uploads import (  # noqa: F401 - the audit's, with the S3 storage
    COMPOSITES_SINCE,
    DIGEST_REFUSED,
    PART_MEMORY,
    PART_SIZE,
    S3Uploads,
    in_parts_before_composites,
    shared_place,
)

PROBE_READ_TIMEOUT = 15.0  # seconds: is the store there at all (check_reachable)?
DOWN_FOR = 120.0  # seconds a location that did not answer is not asked again


class StoreChecksum(NamedTuple):
    """What the store says of an object, read with one HeadObject: nothing downloaded."""
    size: int
    sha256: str | None     # base64, as the store holds it (of the parts, for a composite)
    composite: bool        # uploaded in parts: a checksum of the parts' checksums
    etag: str | None


class S3Storage(S3Uploads):
    kind = "s3"

    def __init__(self, name: str, settings: S3Settings, client=None):
        self.name = name
        self.settings = settings
        if settings.checksum not in CHECKSUM_BEHAVIOURS:
            raise ConfigError(f"location '{name}': checksum must be one of "
                              f"{', '.join(CHECKSUM_BEHAVIOURS)}")
        self.prefix = settings.prefix.strip("/") + "/" if settings.prefix.strip("/") else ""
        self._client_instance = client
        self._probe_instance = client
        self._session = None
        self._making = threading.Lock()  # the clients and their session, made once
        self._down: StorageUnreachable | None = None  # found unreachable moments ago
        self._down_until = 0.0
        self._answered = -1e9  # when the store last answered a request (time.monotonic)
        # the verification found, requests in flight and part buffers: one per store and
        # prefix in this process, whatever the number of S3Storage objects on it
        self._shared = shared_place(self.place(), settings.concurrency)

    def place(self) -> tuple[str, str]:
        """(store, key prefix) where this location's objects live, for telling whether two
        locations are really one: AWS bucket names are global; elsewhere the endpoint
        (scheme, host and port, lower-case) names the store."""
        endpoint = (self.settings.endpoint_url or "").rstrip("/").lower()
        return f"{endpoint or 'aws'} {self.settings.bucket}", self.prefix

    @property
    def client(self):
        """Created on first use: opening a repository must not cost an SDK set-up per location."""
        if self._client_instance is None:
            with self._making:  # one, whichever thread asks first
                if self._client_instance is None:
                    self._client_instance = self._made_client(probe=False)
        return self._client_instance

    @property
    def probe(self):
        """The client that asks whether the store is there at all (see _client)."""
        if self._probe_instance is None:
            with self._making:
                if self._probe_instance is None:
                    self._probe_instance = self._made_client(probe=True)
        return self._probe_instance

    def _made_client(self, probe: bool):
        """An AWS profile that does not exist makes this location unreachable, named,
        never an internal error; so does a location found unreachable before."""
        from botocore.exceptions import BotoCoreError

        if self._down is not None and time.monotonic() < self._down_until:
            raise self._down
        try:
            return self._client(probe=probe)
        except BotoCoreError as e:
            raise self._unreachable("set up its client", e) from None

    def describe(self) -> str:
        where = self.settings.endpoint_url or "AWS"
        return f"s3://{self.settings.bucket}/{self.prefix} at {where}"

    def _client(self, probe: bool = False):
        """The SDK's client, with the location's timeouts and retries; the probe's (is the
        store there at all?) retries once and waits at most PROBE_READ_TIMEOUT, so that a
        stalled or dead endpoint is called unreachable in seconds, not minutes."""
        import boto3
        from botocore.config import Config

        if self._session is None:  # one session: its loaded service model serves both
            self._session = boto3.session.Session(profile_name=self.settings.profile)
        session = self._session
        attempts = min(2, self.settings.max_attempts) if probe else self.settings.max_attempts
        read = min(PROBE_READ_TIMEOUT, self.settings.read_timeout) if probe \
            else self.settings.read_timeout
        config = Config(
            retries={"max_attempts": attempts, "mode": "standard"},
            max_pool_connections=self.settings.concurrency + PART_MEMORY // PART_SIZE,
            connect_timeout=self.settings.connect_timeout, read_timeout=read,
            # Every upload carries its SHA-256 in a signed header (the store checks it, or
            # its ETag is held against the MD5 of the bytes sent), so the body is not also
            # hashed for the signature: the SDK does that over plain http, one pass more
            # of every byte (issue 29).
            s3={"addressing_style": self.settings.addressing_style,
                "payload_signing_enabled": False},
            request_checksum_calculation=self.settings.checksum,
            response_checksum_validation=self.settings.checksum,
        )
        client = session.client("s3", endpoint_url=self.settings.endpoint_url,
                                region_name=self.settings.region, config=config)
        # The SDK asks the store to accept a body read from a file before sending it
        # (Expect: 100-continue): a round trip more for every such upload across a WAN,
        # to spare bytes a store would refuse, which ours never are for long (issue 29).
        from botocore.handlers import add_expect_header
        client.meta.events.unregister("before-call.s3", add_expect_header)
        return client

    # -- keys --------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        if not key.strip("/"):
            return self.prefix  # the location's root itself (listing it whole)
        checked_key(key)
        return self.prefix + encode_object_key(key)

    def _call(self, what: str, fn, **kwargs):
        """One S3 call; connection failures (TLS against a plain-http server included: red-
        team case 88) become StorageUnreachable, never 'missing'; a request the store
        refuses (Object Lock on a bucket without it: case 87) is named with the store's
        reason. Only 'no such key' comes back as a ClientError, for the caller to read."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        if self._down is not None and time.monotonic() < self._down_until:
            raise self._down  # the failure said it moments ago: no more waiting on it
        try:
            with self._shared.in_flight:  # the location's `concurrency`, whatever is running
                answer = fn(**kwargs)
            self._answered = time.monotonic()
            return answer
        except (NoCredentialsError, PartialCredentialsError) as e:
            raise self._unreachable(what, e) from None
        except (BotoConnectionError, HTTPClientError) as e:
            raise self._mark_down(StorageUnreachable(
                f"storage location '{self.name}' is unreachable ({what}): "
                f"{type(e).__name__}", hint="check the endpoint (http or https?) and the "
                "network, then re-run")) from None
        except BotoCoreError as e:  # credentials that cannot be had, a profile not found
            raise self._unreachable(what, e) from None
        except ClientError as e:
            error = e.response.get("Error", {})
            code = error.get("Code", "?")
            if code in NOT_FOUND:
                raise
            if code in DIGEST_REFUSED:  # the store checked the bytes against our SHA-256
                raise FixityMismatch(
                    f"'{self.name}' refused {what}: the bytes it received do not have the "
                    f"SHA-256 recorded for them ({code})",
                    hint="the local copy or the network changed them: run 'preserve "
                         "audit' on the local copy, then re-run") from None
            if code in ("NoSuchBucket", "AccessDenied", "InvalidAccessKeyId",
                        "SignatureDoesNotMatch", "AllAccessDisabled"):
                raise StorageUnreachable(
                    f"storage location '{self.name}' refused {what}: {code} (bucket "
                    f"{self.settings.bucket!r})",
                    hint="check the bucket name and the credentials in your environment or "
                         "AWS profile") from None
            raise StorageUnreachable(
                f"storage location '{self.name}' refused {what}: {code}: "
                f"{error.get('Message', '')}".rstrip(": "),
                hint="check the location's settings against what the bucket allows "
                     "('preserve storage check' tries them)") from None

    def _mark_down(self, error: StorageUnreachable) -> StorageUnreachable:
        """Remember for DOWN_FOR seconds that the location did not answer: the calls of a
        run that follow fail at once instead of each waiting its timeouts; a successful
        check_reachable forgets it (a worker serves the store again once it is back)."""
        self._down, self._down_until = error, time.monotonic() + DOWN_FOR
        return error

    def _unreachable(self, what: str, e: Exception) -> StorageUnreachable:
        """Credentials missing or refused, or an AWS profile not found: this location is
        unreachable (exit 3), the others are still served (issue 22: every command stopped
        with an internal error when a cron job had no AWS variables)."""
        return self._mark_down(StorageUnreachable(
            f"storage location '{self.name}' is unreachable ({what}): no usable credentials "
            f"({type(e).__name__}: {e})",
            hint="give the command the credentials: AWS_ACCESS_KEY_ID and "
                 "AWS_SECRET_ACCESS_KEY in its environment (for cron or systemd, an "
                 "environment file), or an AWS profile named by 'profile:' in the "
                 "location file or by AWS_PROFILE (see the user guide)"))

    def check_reachable(self, answered_within: float = 0.0) -> None:
        """One request asks whether the bucket answers and whether the location is an OCFL
        storage root already: a GET of the root's declaration (a few bytes), which a store
        answers NoSuchKey where the bucket holds none and NoSuchBucket where there is no
        bucket (a HEAD has no body to tell them apart). A writer's ensure_ocfl_root then
        asks nothing: a round trip less for every command across a WAN."""
        from botocore.exceptions import ClientError

        if self._down is None and time.monotonic() - self._answered < answered_within:
            return  # it answered moments ago (the command ending now wrote to it)
        self._down = None  # asked afresh: the store may be back
        try:
            answer = self._call("read the storage root's declaration", self.probe.get_object,
                                Bucket=self.settings.bucket, Key=self._key(ROOT_DECLARATION))
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "?")
            if code in ("404", "NotFound"):  # no error document to tell which is missing:
                code = self._bucket_answer()  # the bucket is asked (as before)
            if code == "NoSuchKey":  # the bucket answers; it is not a storage root yet
                self.ocfl_root_known = False
                return
            raise StorageUnreachable(
                f"storage location '{self.name}': bucket {self.settings.bucket!r} answered "
                f"{code}", hint="check the bucket name, the endpoint and the credentials"
            ) from None
        with answer["Body"] as body:
            body.read(64)  # a few bytes (whatever stands in its place)
        self.ocfl_root_known = True

    def _bucket_answer(self) -> str:
        """NoSuchKey where the bucket answers a HeadBucket, else what it answered."""
        from botocore.exceptions import ClientError

        try:
            self._call("head bucket", self.probe.head_bucket, Bucket=self.settings.bucket)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "?")
            return "NoSuchBucket" if code in ("404", "NotFound") else code
        return "NoSuchKey"

    # -- writing -----------------------------------------------------------------------

    def _extra(self) -> dict:
        extra: dict = {}
        if self.settings.storage_class:
            extra["StorageClass"] = self.settings.storage_class
        if self.settings.object_lock_mode and self.settings.object_lock_days:
            import datetime as dt

            extra["ObjectLockMode"] = self.settings.object_lock_mode
            extra["ObjectLockRetainUntilDate"] = (
                dt.datetime.now(dt.UTC) + dt.timedelta(days=self.settings.object_lock_days))
        return extra

    def stored_checksum(self, key: str) -> StoreChecksum | None:
        """The store's checksum of `key`, or None if the object is missing: a quick audit
        of an object not verified before (see audit_replica)."""
        from botocore.exceptions import ClientError

        try:
            head = self._call(f"check {key}", self.client.head_object,
                              Bucket=self.settings.bucket, Key=self._key(key),
                              ChecksumMode="ENABLED")
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        checksum = head.get("ChecksumSHA256")
        composite = bool(checksum and "-" in checksum) or head.get("ChecksumType") == "COMPOSITE" \
            or "-" in head.get("ETag", "")
        return StoreChecksum(head["ContentLength"], (checksum or "").split("-")[0] or None,
                             composite, head.get("ETag", "").strip('"') or None)

    def round_trip(self) -> list[tuple[str, bool, str]]:
        """Upload (verified), read back and delete a small object, step by step."""
        import os
        import tempfile
        import uuid

        steps: list[tuple[str, bool, str]] = []
        key = f".preserve-check/{uuid.uuid4()}"
        data = os.urandom(4096)
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(data)
            tmp.flush()
            try:
                self.put_file(key, Path(tmp.name), hashlib.sha256(data).hexdigest(), len(data))
                steps.append(("write", True, "uploaded and verified: " + self.verification()))
                with self.open(key) as body:
                    steps.append(("read", body.read() == data, "bytes read back are identical"))
            except PreserveError as e:
                steps.append(("write", False, e.message))
                return steps
        if self.settings.object_lock_mode:
            steps.append(("delete", True, "skipped: Object Lock is configured (the probe stays "
                                          "until its retention ends)"))
            return steps
        try:
            self._call(f"delete {key}", self.client.delete_object, Bucket=self.settings.bucket,
                       Key=self._key(key))
            steps.append(("delete", True, "probe removed"))
        except Exception as e:
            steps.append(("delete", False, type(e).__name__))
        return steps

    # -- reading -----------------------------------------------------------------------

    def open(self, key: str, size: int | None = None) -> BinaryIO:
        """The object's bytes as a stream; an object of another size than `size` (when
        given) is damage, found before a byte is read (see base.open_stored)."""
        from botocore.exceptions import ClientError

        try:
            response = self._call(f"read {key}", self.client.get_object,
                                  Bucket=self.settings.bucket, Key=self._key(key))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from None
            raise
        if size is not None and response["ContentLength"] != size:
            response["Body"].close()
            raise FixityMismatch(f"{key} at '{self.name}' is damaged: "
                                 f"{response['ContentLength']:,} bytes where {size:,} were "
                                 "recorded (nothing was read from it)",
                                 hint="run 'preserve audit', then 'preserve repair'")
        return response["Body"]

    def stat(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            head = self._call(f"stat {key}", self.client.head_object,
                              Bucket=self.settings.bucket, Key=self._key(key))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        return ObjectInfo(key, head["ContentLength"])

    def list(self, prefix: str, after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under `prefix` (whose key sorts after `after`, where given: the
        store starts there), a page (1,000 keys) at a time: listing a bucket of millions of
        objects holds one page in memory."""
        if after is None:
            return self._listed(prefix)
        return self._listed(prefix, StartAfter=self._key(after))

    def list_here(self, prefix: str) -> Iterator[ObjectInfo]:
        """The objects directly under `prefix` (not in its "folders"): an object root's
        few files in one request, where a HeadObject each would wait a round trip each."""
        return self._listed(prefix, Delimiter="/")

    def list_split(self, prefix: str, bounds: Iterable[str]) -> Iterator[ObjectInfo]:
        """Every object under `prefix`, as list() gives them, the listing cut at `bounds`
        (keys under `prefix`: every 1,000th file of a version) and its ranges listed
        `concurrency` at once. A version of a million files is a thousand pages, and each
        page of one listing waits for the one before: across a WAN, a round trip each
        (issue 29). The ranges part the store's keys in its own order whatever the bounds
        (sorted here as the store sorts keys): the bounds only decide how evenly."""
        from preserve.parallel import in_order

        edges = sorted({self._key(bound) for bound in bounds})

        def one(span: tuple[str | None, str | None]) -> list[ObjectInfo]:
            after, upto = span  # the keys after `after`, up to `upto` itself
            found = []
            for raw, info in self._raw_listed(prefix, **({"StartAfter": after} if after
                                                         else {})):
                if upto is not None and raw > upto:
                    break
                found.append(info)
                if raw == upto:  # no page more to ask for
                    break
            return found

        self.client  # made here: the threads must not make it at once  # noqa: B018
        spans = list(zip([None, *edges], [*edges, None], strict=True))
        for found in in_order(one, spans, lambda: False, self.settings.concurrency):
            yield from found

    def _listed(self, prefix: str, **extra) -> Iterator[ObjectInfo]:
        return (info for _raw, info in self._raw_listed(prefix, **extra))

    def _raw_listed(self, prefix: str, **extra) -> Iterator[tuple[str, ObjectInfo]]:
        """(the store's key, what it says of the object) of each object listed."""
        kwargs = {"Bucket": self.settings.bucket, "Prefix": self._key(prefix), **extra}
        while True:
            page = self._call(f"list {prefix}", self.client.list_objects_v2, **kwargs)
            for obj in page.get("Contents", []):
                yield obj["Key"], ObjectInfo(decode_object_key(obj["Key"][len(self.prefix):]),
                                             obj["Size"], obj.get("ETag", "").strip('"') or None)
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def empty_dirs(self, prefix: str) -> list[str]:
        return []  # object stores have no folders: metadata/empty-directories.txt keeps them

    def stored_versions(self, strays: list[tuple[str, str]] | None = None
                        ) -> Iterator[tuple[str, str, int | None]]:
        """Every version folder of every object under this location's prefix, from the
        keys alone, and what OCFL does not allow here appended to `strays` (see
        base.layout_versions): each level's folders `concurrency` at once."""
        return layout_versions(self.entries, strays, self.settings.concurrency)

    def entries(self, prefix: str) -> tuple[list[str], list[str]]:
        """(common prefixes, keys) directly under `prefix`, names relative to it."""
        kwargs = {"Bucket": self.settings.bucket, "Prefix": self.prefix + prefix,
                  "Delimiter": "/"}
        start = len(self.prefix + prefix)
        folders, files = [], []
        while True:
            page = self._call(f"list {prefix or '/'}", self.client.list_objects_v2, **kwargs)
            folders += [c["Prefix"][start:].rstrip("/") for c in page.get("CommonPrefixes", [])]
            files += [decode_object_key(o["Key"][start:]) for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(folders), sorted(files)
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def open_uploads(self) -> list[str]:
        """Keys of multipart uploads left open under this location (a killed upload)."""
        return [key for key, _ in self._uploads("")]

    def abort_uploads(self, prefix: str) -> None:
        """Abort the multipart uploads under `prefix` that a killed run left open: the store
        keeps (and bills) their parts until then (red-team case 50). Called under the
        (AIP, location) writer lock, so none of them belongs to a running upload."""
        for key, upload_id in list(self._uploads(prefix)):
            with suppress(Exception):  # gone meanwhile: nothing to abort
                self._call(f"abort upload of {key}", self.client.abort_multipart_upload,
                           Bucket=self.settings.bucket, Key=self.prefix + key,
                           UploadId=upload_id)

    def _uploads(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(key below this location's prefix, upload id) of every open multipart upload
        under `prefix`, a page at a time."""
        kwargs = {"Bucket": self.settings.bucket, "Prefix": self.prefix + prefix}
        while True:
            page = self._call(f"list uploads under {prefix or '/'}",
                              self.client.list_multipart_uploads, **kwargs)
            for upload in page.get("Uploads", []):
                yield upload["Key"][len(self.prefix):], upload["UploadId"]
            if not page.get("IsTruncated"):
                return
            kwargs["KeyMarker"] = page["NextKeyMarker"]
            kwargs["UploadIdMarker"] = page["NextUploadIdMarker"]

    def delete_prefix(self, prefix: str) -> None:
        """Clear an unfinished upload. Never attempted where Object Lock is configured:
        a locked object cannot be deleted, and a new upload simply supersedes it."""
        if self.settings.object_lock_mode:
            return
        keys = [{"Key": self._key(o.key)} for o in self.list(prefix)]
        for i in range(0, len(keys), 1000):
            self._call(f"delete {prefix}", self.client.delete_objects,
                       Bucket=self.settings.bucket, Delete={"Objects": keys[i:i + 1000]})


NOT_FOUND = ("NoSuchKey", "404", "NotFound", "NoSuchUpload", "NoSuchVersion")
