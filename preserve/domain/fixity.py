"""Digests: one streaming pass computes every algorithm at once.

sha256 and sha512 are the fixity of record (BagIt manifests). xxh3-128 is a
fast "has it changed?" digest for quick audits; it is never written to a
BagIt manifest and never counts as fixity of record.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterable
from typing import BinaryIO

import xxhash

CHUNK = 1 << 20  # 1 MiB: large enough for hashlib to release the GIL, small enough to bound memory

# Algorithms a BagIt manifest may name that we can verify (RFC 8493 §2.4 names
# sha256/sha512 as MUST support; md5/sha1 appear in older bags).
BAGIT_ALGORITHMS = ("sha512", "sha256", "sha384", "sha224", "sha1", "md5")
FAST_ALGORITHM = "xxh3_128"
DIGEST_HEX_LENGTH = {
    "md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128,
    FAST_ALGORITHM: 32,
}


def new_hasher(algorithm: str):
    if algorithm == FAST_ALGORITHM:
        return xxhash.xxh3_128()
    if algorithm in BAGIT_ALGORITHMS:
        return hashlib.new(algorithm)
    raise ValueError(f"unsupported digest algorithm {algorithm!r}")


def is_supported(algorithm: str) -> bool:
    return algorithm == FAST_ALGORITHM or algorithm in BAGIT_ALGORITHMS


class MultiHasher:
    """Feeds the same bytes to several digests; counts the bytes too."""

    def __init__(self, algorithms: Iterable[str]):
        self.algorithms = tuple(dict.fromkeys(algorithms))
        self._hashers = [new_hasher(a) for a in self.algorithms]
        self.size = 0

    def update(self, chunk) -> None:
        for h in self._hashers:
            h.update(chunk)
        self.size += len(chunk)

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in zip(self.algorithms, self._hashers, strict=True)}


_BUFFERS = threading.local()


def _buffer() -> tuple[bytearray, memoryview]:
    """One read buffer per thread, reused: allocating 1 MiB per file costs more than
    hashing a small file. Per thread, not per process: migration fetches sources on
    several threads at once, and a shared buffer mixed their bytes (hash_stream is not
    re-entrant within a thread; nothing needs it to be)."""
    found = getattr(_BUFFERS, "buffer", None)
    if found is None:
        buf = bytearray(CHUNK)
        found = _BUFFERS.buffer = (buf, memoryview(buf))
    return found


def hash_stream(
    stream: BinaryIO,
    algorithms: Iterable[str],
    sink: Callable[[memoryview], object] | None = None,
    head_size: int = 0,
) -> tuple[int, dict[str, str], bytes]:
    """Read `stream` once; return (size, digests, first `head_size` bytes).

    Every chunk goes to all digests and, if given, to `sink` (the copy being
    written), so copying and hashing share one read. The head is kept for
    content sniffing (libmagic) without a second read.
    """
    hasher = MultiHasher(algorithms)
    buf, view = _buffer()
    head = b""
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(buf)
            if not n:
                break
            chunk = view[:n]
        else:  # some archive member streams only offer read()
            data = stream.read(CHUNK)
            if not data:
                break
            chunk = memoryview(data)
        if len(head) < head_size:
            head += bytes(chunk[: head_size - len(head)])
        hasher.update(chunk)
        if sink is not None:
            sink(chunk)
    return hasher.size, hasher.hexdigests(), head


def write_all(fd_write: Callable[[memoryview], int | None]) -> Callable[[memoryview], None]:
    """Wrap a raw `write` so that short writes are completed."""

    def sink(chunk: memoryview) -> None:
        while chunk:
            written = fd_write(chunk)
            if written is None:  # buffered writers write everything
                return
            chunk = chunk[written:]

    return sink


def open_regular(path, *, follow: bool = False) -> BinaryIO:
    """Open a file for reading only if it is a regular file, checked on the open file
    itself: a FIFO or a device put where a file was (after a scan, before the read) would
    block a reader for ever. A symbolic link is refused (ELOOP) unless `follow`."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or folder is "
                          "never read)")
        os.set_blocking(fd, True)
        return open(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def hash_file(path, algorithms: Iterable[str]) -> tuple[int, dict[str, str]]:
    """Digests of a regular file; a symbolic link is refused (ELOOP), never followed."""
    with open_regular(path) as f:
        size, digests, _ = hash_stream(f, algorithms)
    return size, digests


def hash_batch(batch: list[tuple[object, str, tuple[str, ...]]]) -> list[tuple]:
    """Worker entry point for re-hashing files: (tag, path, algorithms) in, (tag, size,
    digests, error) out. Kept in this light module so that worker processes start fast."""
    out = []
    for tag, path, algorithms in batch:
        try:
            size, digests = hash_file(path, algorithms)
            out.append((tag, size, digests, None))
        except OSError as e:
            out.append((tag, 0, {}, e.strerror or str(e)))
    return out
