"""An S3 location's settings: what its location file may say, checked before any use.

Kept apart from the storage class (s3.py) so that reading a location file never needs
boto3, and each module stays small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from preserve.errors import ConfigError

CHECKSUM_BEHAVIOURS = ("when_supported", "when_required")


@dataclass
class S3Settings:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str = "auto"  # auto, path, virtual
    storage_class: str | None = None
    object_lock_mode: str | None = None  # GOVERNANCE or COMPLIANCE
    object_lock_days: int | None = None
    checksum: str = "when_supported"  # SDK behaviour; some S3-compatible stores need when_required
    profile: str | None = None
    max_attempts: int = 8  # per request: throttling, 5xx and connection resets are retried
    connect_timeout: float = 10.0  # seconds to open a connection
    read_timeout: float = 60.0     # seconds a request may wait for the store's answer
    # Requests in flight at once (uploads, checks, reads): on a WAN each request waits a
    # round trip, so throughput is this many objects per round trip (issue 29).
    concurrency: int = 16
    # Files larger than this go in parts (many at once, a SHA-256 per part); smaller ones
    # in one request, so the store holds each file's own SHA-256, comparable with the
    # record, where an upload in parts leaves only a checksum of the parts' checksums.
    multipart_threshold: int = 200 << 20

SECRET_KEYS = ("aws_secret_access_key", "secret_access_key", "secret", "password",
               "aws_access_key_id", "access_key")
ADDRESSING_STYLES = ("auto", "path", "virtual")
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
# S3 bucket naming rules: 3-63 characters, lower-case letters, digits, dots and hyphens,
# starting and ending with a letter or digit.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A size as a location file may give it: bytes, or a number with a unit.
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?")
_UNITS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9,
          "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
SMALLEST_PART, LARGEST_PUT = 5 << 20, 5 << 30  # what S3 allows


def size_setting(value, key: str, file: Path, low: int, high: int) -> int:
    """A size in bytes from a location file (`209715200`, `200 MiB`, `0.5 GiB`), between
    `low` and `high`."""
    match = _SIZE.fullmatch(str(value).strip()) if not isinstance(value, bool) else None
    size = int(float(match[1]) * _UNITS[match[2]]) if match else None
    if size is None or not low <= size <= high:
        raise ConfigError(f"{file}: {key} must be a size from {low >> 20} MiB to "
                          f"{high >> 30} GiB (bytes, or with a unit: '200 MiB'), not {value!r}")
    return size


def check_endpoint(url: str, where: str) -> None:
    """An endpoint is http(s)://host[:port][/path], and never carries credentials: they
    would be written in the location file and printed (red-team case 90)."""
    try:
        parts = urlsplit(url)
        credentials = parts.username is not None or parts.password is not None
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        credentials, valid = "@" in url, False
    if not valid and not credentials:  # the URL is echoed only when it holds no secret
        raise ConfigError(f"{where}: endpoint_url {url!r} must be http(s)://HOST[:PORT]")
    if credentials:
        raise ConfigError(f"{where}: endpoint_url must not carry credentials (user:secret@); "
                          "nothing was written with them",
                          hint="give credentials through the environment "
                               "(AWS_ACCESS_KEY_ID...) or an AWS profile ('profile:')")


def settings_from_yaml(name: str, data: dict, file: Path) -> S3Settings:
    """Build S3Settings from a location file, refusing anything that looks like a secret
    and any value the store would refuse later, when every command lists locations
    (red-team case 70: a bad addressing style broke 'storage list' for every location)."""
    for secret in SECRET_KEYS:
        if secret in data:
            raise ConfigError(f"{file}: '{secret}' must not be written in a location file",
                              hint="give credentials through the environment "
                                   "(AWS_ACCESS_KEY_ID...) or an AWS profile ('profile:')")
    if not data.get("bucket"):
        raise ConfigError(f"{file}: an s3 location needs 'bucket'")
    if not _BUCKET.fullmatch(str(data["bucket"])) or ".." in str(data["bucket"]):
        raise ConfigError(f"{file}: {data['bucket']!r} is not a valid bucket name (3-63 "
                          "lower-case letters, digits, '.' and '-')")
    if data.get("endpoint_url") is not None:
        check_endpoint(str(data["endpoint_url"]), str(file))
    if data.get("addressing_style", "auto") not in ADDRESSING_STYLES:
        raise ConfigError(f"{file}: addressing_style must be one of "
                          f"{', '.join(ADDRESSING_STYLES)}, not {data['addressing_style']!r}")
    lock = data.get("object_lock") or {}
    if lock and (lock.get("mode") not in LOCK_MODES or not isinstance(lock.get("days"), int)
                 or isinstance(lock.get("days"), bool) or lock["days"] < 1):
        raise ConfigError(f"{file}: object_lock needs mode {' or '.join(LOCK_MODES)} and a "
                          f"whole number of days of at least 1, not {lock!r}")
    attempts = data.get("max_attempts", 8)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ConfigError(f"{file}: max_attempts must be a whole number of at least 1")
    concurrency = data.get("concurrency", 16)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or \
            not 1 <= concurrency <= 256:
        raise ConfigError(f"{file}: concurrency must be a whole number from 1 to 256 (requests "
                          f"in flight at once), not {concurrency!r}")
    for key, default in (("connect_timeout", 10), ("read_timeout", 60)):
        value = data.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or \
                not 0 < value <= 3600:
            raise ConfigError(f"{file}: {key} must be a number of seconds above 0 and at "
                              f"most 3600, not {value!r}")
    return S3Settings(
        bucket=str(data["bucket"]), prefix=str(data.get("prefix", "")),
        endpoint_url=data.get("endpoint_url"), region=data.get("region"),
        addressing_style=data.get("addressing_style", "auto"),
        storage_class=data.get("storage_class"),
        object_lock_mode=lock.get("mode"), object_lock_days=lock.get("days"),
        checksum=data.get("checksum", "when_supported"), profile=data.get("profile"),
        max_attempts=int(data.get("max_attempts", 8)),
        connect_timeout=float(data.get("connect_timeout", 10)),
        read_timeout=float(data.get("read_timeout", 60)),
        concurrency=concurrency,
        multipart_threshold=size_setting(data.get("multipart_threshold", 200 << 20),
                                         "multipart_threshold", file, SMALLEST_PART,
                                         LARGEST_PUT),
    )
