"""The single pass: read a source file once, write its copy, compute every digest.

Runs inside worker processes (see preserve.parallel): each batch of files is
copied and hashed, then identified with one siegfried call on the copies and
libmagic on the first bytes already read. Nothing here touches the catalog.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from preserve.domain.fixity import hash_stream, write_all
from preserve.domain.identify import HEAD_BYTES, Identification, identify_files, tool_versions
from preserve.services.sources import open_entry


@dataclass
class CopyResult:
    index: int
    size: int
    digests: dict[str, str]
    identification: Identification | None
    error: str | None = None


def copy_one(stream, dest: str, algorithms: tuple[str, ...]) -> tuple[int, dict[str, str], bytes]:
    """Copy `stream` to a new file `dest` (never overwriting), hashing on the way."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb", buffering=0) as out:
        return hash_stream(stream, algorithms, sink=write_all(out.write), head_size=HEAD_BYTES)


def copy_batch(task: tuple) -> tuple[list[CopyResult], dict]:
    """Worker entry point: task = (source spec, algorithms, [(index, ref, dest, size)...]).

    Returns the results and the identification tools' versions, so that the
    main process never loads siegfried (about 90 MB) just to name it."""
    spec, algorithms, items = task
    done: list[tuple[int, str, int, dict, bytes]] = []
    results: list[CopyResult] = []
    for index, ref, dest, expected_size in items:
        try:
            with open_entry(spec, ref) as stream:
                size, digests, head = copy_one(stream, dest, algorithms)
        except OSError as e:
            results.append(CopyResult(index, 0, {}, None, f"cannot read: {e.strerror or e}"))
            continue
        if size != expected_size:
            results.append(CopyResult(index, size, digests, None,
                                      f"changed while being read ({expected_size} bytes when "
                                      f"scanned, {size} when copied)"))
            continue
        done.append((index, dest, size, digests, head))
    return results + identify_copies(done), tool_versions()


def identify_copies(done: list[tuple[int, str, int, dict, bytes]]) -> list[CopyResult]:
    """One siegfried call for a batch of finished copies (index, dest, size, digests, head);
    libmagic reads only the head already taken during the copy."""
    identified = identify_files([(dest, size, head) for _, dest, size, _, head in done])
    return [CopyResult(index, size, digests, ident)
            for (index, _dest, size, digests, _head), ident in zip(done, identified,
                                                                   strict=True)]
