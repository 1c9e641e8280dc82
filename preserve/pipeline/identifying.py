"""Identification of finished copies, in the stages after the copy (issue 11).

One siegfried process identifies the copies of every batch (identify_batch): its
signatures take about 100 MB in each process that loads them. libmagic is then asked, back
in the copy workers (magic_batch), only about the files siegfried could not fully answer
for (needs_libmagic): on real collections few, on random bytes all. This module imports
little, since the siegfried process imports it (and what it needs to read a CopyResult)
and nothing else of the copy.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from preserve.domain.identify import (
    HEAD_BYTES,
    Identification,
    combine,
    needs_libmagic,
    siegfried_entries,
    sniff,
    tool_versions,
)


@dataclass
class CopyResult:
    path: str  # the payload path, relative to data/
    size: int
    digests: dict[str, str]
    identification: Identification | None
    error: str | None = None
    dest: str = ""
    magic: tuple[str | None, str | None] = (None, None)
    entry: dict | None = None  # siegfried's, kept until libmagic has been asked
    validation: object | None = None  # the format validator's Checked (validating.py)


def load_siegfried() -> None:
    """Worker initializer of the identifying process: siegfried loads its signatures on its
    first identification (0.3-0.5 s), so make that one of a scratch file at start-up. Only
    a head start: if no scratch file can be made, the first batch loads them instead."""
    import tempfile

    with suppress(OSError), tempfile.NamedTemporaryFile(prefix="preserve-sf-") as scratch:
        scratch.write(b"preserve")
        scratch.flush()
        siegfried_entries([scratch.name])
    tool_versions()


def identify_batch(results: list[CopyResult], workers: int = 1) -> tuple[list[CopyResult], dict]:
    """siegfried for the finished copies of a batch (`workers` goroutines). A file it
    matched by signature, with a MIME type, is identified; the others keep siegfried's
    entry for libmagic (magic_batch). Returns the tools' versions too, so that the main
    process never loads siegfried just to name it."""
    done = [r for r in results if r.error is None]
    entries = siegfried_entries([r.dest for r in done], workers)
    for r, entry in zip(done, entries, strict=True):
        found = combine(entry, r.size, (None, None))
        if needs_libmagic(found):
            r.entry = entry
        else:
            r.identification = found
    return results, tool_versions()


def magic_batch(item: tuple[list[CopyResult], dict]) -> tuple[list[CopyResult], dict]:
    """libmagic for the files of an identified batch that siegfried left it (its MIME type
    and description from the copy's first bytes, still in the page cache), joined with
    siegfried's answer."""
    results, tools = item
    for r in results:
        if r.entry is None:
            continue
        try:
            with open(r.dest, "rb") as f:
                head = f.read(HEAD_BYTES)
        except OSError:
            head = b""
        r.magic = sniff(head, r.size)
        r.identification = combine(r.entry, r.size, r.magic)
        r.entry = None
    return results, tools
