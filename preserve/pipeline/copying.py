"""The single pass: read a source file once, write its copy, compute every digest.

Runs inside worker processes (see preserve.parallel): each batch of files is
copied and hashed; then one siegfried process identifies the copies of every batch,
and libmagic, back in the copy workers, answers for what siegfried left it
(pipeline/identifying.py). Nothing here touches the catalog.
"""

from __future__ import annotations

import os
import time

from preserve.domain.fixity import FAST_ALGORITHM, hash_stream, open_regular, write_all
from preserve.domain.identify import HEAD_BYTES
from preserve.pipeline.entries import ARCHIVE_ERRORS, ON_DISK, archive_error, file_stamp, open_entry
from preserve.pipeline.identifying import CopyResult
from preserve.system.space import FULL
from preserve.system.writeback import start_writeback

# Copies at least this big start their writeback as soon as written; smaller ones are left
# to the syncfs before publishing, which writes them together (a request for each of 20,000
# files of 200 bytes made that ingest 3 % slower).
WRITEBACK_MIN = 256 << 10


class Overflow(Exception):
    """An archive member gave more bytes than it declared."""


def copy_one(stream, dest: str, algorithms: tuple[str, ...],
             limit: int | None = None) -> tuple[int, dict[str, str], bytes]:
    """Copy `stream` to a new file `dest` (never overwriting), hashing on the way. With a
    `limit` (an archive member's declared size), more bytes than that stop the copy as
    they arrive, before they are written."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb", buffering=0) as out:
        sink = write_all(out.write)
        if limit is not None:
            written = 0
            plain_sink = sink

            def sink(chunk):
                nonlocal written
                written += len(chunk)
                if written > limit:
                    raise Overflow(f"gives more than the {limit} bytes it declares")
                plain_sink(chunk)

        size, digests, head = hash_stream(stream, algorithms, sink=sink, head_size=HEAD_BYTES)
        if size >= WRITEBACK_MIN:
            start_writeback(fd)  # the disk writes it while the next files are copied
        return size, digests, head


class SourceChanged(Exception):
    """A source file changed every time it was read."""


ATTEMPTS = 3
RECENT_NS = 1_000_000_000  # a change within the same clock tick as the last can hide


def copy_unchanging(ref: str, dest: str, algorithms: tuple[str, ...]):
    """copy_one for a file on disk, proven unchanged while it was read: its size, mtime,
    ctime and inode the same before and after (red-team case 61: a same-size rewrite in
    place during ingest was stored torn, blocks of ten generations mixed). A file changed
    within the last second could have changed within one tick of the filesystem's clock,
    invisibly; its bytes are read a second time and must hash the same. A file that keeps
    changing is read again, up to ATTEMPTS times, then refused."""
    for _ in range(ATTEMPTS):
        with open_regular(ref, follow=True) as stream:  # follow-inside refs are real paths
            before = os.fstat(stream.fileno())
            started = time.time_ns()
            size, digests, head = copy_one(stream, dest, algorithms)
            after = os.fstat(stream.fileno())
            steady = file_stamp(before) == file_stamp(after)
            if steady and started - before.st_ctime_ns < RECENT_NS:
                stream.seek(0)
                check = FAST_ALGORITHM if FAST_ALGORITHM in algorithms else algorithms[0]
                again = hash_stream(stream, (check,))[1]
                steady = (again[check] == digests[check]
                          and file_stamp(os.fstat(stream.fileno())) == file_stamp(before))
        if steady:
            return size, digests, head
        os.unlink(dest)
        time.sleep(0.05)
    raise SourceChanged(f"changed while being read, {ATTEMPTS} times in a row (its size, "
                        "times or content differed before and after each read)")


def copy_batch(task: tuple) -> list[CopyResult]:
    """Worker entry point: task = (source spec, algorithms, [(path, ref, dest, size)...]).

    Copies and hashes. These workers never load siegfried: its signatures take about
    100 MB a process, so one process identifies for all of them (identify_batch)."""
    spec, algorithms, items = task
    results: list[CopyResult] = []
    for path, ref, dest, expected_size in items:
        try:
            if spec[0] in ON_DISK:
                size, digests, head = copy_unchanging(ref, dest, algorithms)
            else:
                with open_entry(spec, ref) as stream:
                    size, digests, head = copy_one(stream, dest, algorithms, expected_size)
        except (SourceChanged, Overflow) as e:
            results.append(CopyResult(path, 0, {}, None, str(e)))
            continue
        except OSError as e:
            if e.errno in FULL:
                raise  # the staging disk is full: not this file's fault, stop the ingest
            results.append(CopyResult(path, 0, {}, None, f"cannot read: {e.strerror or e}"))
            continue
        except ARCHIVE_ERRORS as e:  # a zip member with a bad CRC, a bad name, ... (case 35)
            results.append(CopyResult(path, 0, {}, None, f"damaged: {archive_error(e)}"))
            continue
        results.append(copied(path, expected_size, dest, size, digests, head))
    return results


def copied(path: str, expected_size: int, dest: str, size: int, digests: dict[str, str],
           head: bytes) -> CopyResult:
    """The result of one finished copy: refused if it is not the size the scan saw (every
    source kind comes here)."""
    if size != expected_size:
        return CopyResult(path, size, digests, None, f"changed while being read "
                          f"({expected_size} bytes when scanned, {size} when copied)")
    return CopyResult(path, size, digests, None, dest=dest)
