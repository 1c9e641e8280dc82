"""Format validation of files (issue 26): which validator a file gets, and running a batch
of them in a sandboxed child process (validator_run.py).

Ingest calls `checked_batch` in its copy workers, after identification, so validation
of one batch runs on both cores beside the copy of the next; `preserve validate-files`
calls `validate_paths` on files read back from storage, on threads. Each worker process
(each thread) keeps one validator child (validator_run.py) for all its files. A file whose format has no
validator gets no verdict (the reports count it as not checked); one whose validator
could not finish gets NOT_CHECKED with the reason, never VALID.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from preserve.errors import PreserveError
from preserve.pipeline.file_verdicts import Checked, not_checked
from preserve.pipeline.identifying import CopyResult, magic_batch
from preserve.system.tools import start_tool, stop_tool

MEMORY_MB = 4096  # the child's address space: its libraries and one decoded file
SECONDS_PER_FILE = 120  # and one more second per MB: a full decode of a long video
BYTES_PER_SECOND = 1 << 20

ZIP_MIMES = {"application/zip", "application/x-zip-compressed", "application/epub+zip",
             "application/java-archive", "application/vnd.android.package-archive"}
OFFICE_MIMES = {"application/msword", "application/vnd.ms-excel",
                "application/vnd.ms-powerpoint", "application/x-ole-storage",
                "application/cdfv2", "application/x-cfb", "application/vnd.ms-office"}
OFFICE_PUIDS = {"fmt/494", "fmt/111", "fmt/40", "fmt/61", "fmt/126", "fmt/39", "fmt/59",
                "fmt/125"}
TEXT_MIMES = {"text/plain", "text/csv", "text/markdown", "text/tab-separated-values",
              "text/x-markdown"}
MEDIA_MIMES = {"application/mp4", "application/ogg", "application/mxf"}
XML_EXTENSIONS = (".xml", ".xsd", ".xsl", ".xslt", ".rdf", ".svg", ".mets", ".ead")
WARC_PUIDS = {"fmt/289", "fmt/1281", "fmt/1355"}


def kind_for(puid: str | None, mime: str | None, path: str = "") -> str | None:
    """The validator for a file of this identification, or None (no validator for it).
    By MIME type, as siegfried or libmagic named it, and a few PRONOM ids."""
    mime = (mime or "").split(";")[0].strip().lower()
    if puid in WARC_PUIDS or mime in ("application/warc", "application/x-warc") \
            or path.lower().endswith((".warc", ".warc.gz")):
        return "warc"
    if puid in OFFICE_PUIDS or mime in OFFICE_MIMES:
        return "office"
    if mime == "application/pdf":
        return "pdf"
    if mime in ("audio/flac", "audio/x-flac"):
        return "flac"
    if mime.startswith(("audio/", "video/")) or mime in MEDIA_MIMES:
        return "audio-video"
    if mime.startswith("image/"):
        return "xml" if mime == "image/svg+xml" else "image"
    if mime in ZIP_MIMES or mime.startswith(("application/vnd.openxmlformats",
                                             "application/vnd.oasis.opendocument")):
        return "zip"
    if mime in ("text/xml", "application/xml") or mime.endswith("+xml"):
        return "xml"
    if mime in TEXT_MIMES:  # libmagic calls XML without a declaration text
        return "xml" if path.lower().endswith(XML_EXTENSIONS) else "text"
    return None


@dataclass
class Item:
    path: str  # where the bytes are, on this machine
    kind: str
    mime: str
    size: int
    name: str = ""  # what findings call it (a bag path): never a staging folder's path

    def timeout(self) -> float:
        return SECONDS_PER_FILE + self.size / BYTES_PER_SECOND


def validate_paths(items: list[Item]) -> dict[str, Checked]:
    """Each item's verdict, by path, from this thread's validator child (started on first
    use, kept for the next files). A file the child is stopped on (past its time, out
    of memory, crashed) is NOT_CHECKED with the reason; the next file gets a new child."""
    child = _children.__dict__.setdefault("child", _Child())
    verdicts: dict[str, Checked] = {}
    for item in items:
        answer = child.ask(item)
        if isinstance(answer, str):
            verdicts[item.path] = not_checked(f"the validator was stopped on it: {answer}")
        else:
            answer.pop("path", None)
            verdicts[item.path] = Checked.from_dict(answer).shown(item.path, item.name)
    return verdicts


_children = threading.local()  # each thread's child: validate-files validates on threads


class _Child:
    """One validator child process and the pipes to it."""

    def __init__(self):
        self.proc = None
        self.requests = -1  # the write end of the requests pipe
        self.pending = b""
        self.errors = None
        self.path: str | None = None
        atexit.register(self.stop)

    def ask(self, item: Item) -> dict | str:
        """The child's verdict on `item`, or why there is none."""
        request = (json.dumps({"path": item.path, "kind": item.kind, "mime": item.mime,
                               "timeout": item.timeout()}) + "\n").encode()
        try:
            if self.proc is not None and (self.proc.poll() is not None
                                          or self.path != os.environ.get("PATH")):
                self.stop()  # it ended between two files, or the tools it would find changed
            if self.proc is None:
                self._start()
            os.write(self.requests, request)
        except (PreserveError, OSError) as e:
            self.stop()
            return getattr(e, "message", None) or str(e)
        deadline = time.monotonic() + item.timeout()
        out = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                return f"it ran past {item.timeout():.0f} s"
            ready, _, _ = select.select([out], [], [], left)
            if not ready:
                continue
            chunk = os.read(out, 1 << 16)
            if not chunk:
                return self._ended()
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return json.loads(line)

    def _start(self) -> None:
        self.path = os.environ.get("PATH")  # where it finds ffmpeg, flac, ImageMagick
        read, self.requests = os.pipe()
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        try:
            self.proc = start_tool([sys.executable, "-m", "preserve.pipeline.validator_run",
                                    "--serve", str(read)], memory_mb=MEMORY_MB,
                                   isolated=True, pass_fds=(read,), stderr=self.errors)
        finally:
            os.close(read)
        self.pending = b""

    def _ended(self) -> str:
        """The child ended while asked (a crash, the memory limit): why, from its exit
        status and the last line it wrote to its standard error."""
        code = self.proc.wait()
        self.errors.seek(0, os.SEEK_END)
        self.errors.seek(max(0, self.errors.tell() - 4096))
        said = self.errors.read().decode("utf-8", "replace").strip().splitlines()
        self.stop()
        return f"exit {code}" + (f": {said[-1][:200]}" if said else "")

    def stop(self) -> None:
        if self.proc is not None:
            stop_tool(self.proc)
            self.proc.stdout.close()
            self.proc = None
        if self.requests >= 0:
            os.close(self.requests)
            self.requests = -1
        if self.errors is not None:
            self.errors.close()
            self.errors = None


def _items(results: list[CopyResult]) -> list[Item]:
    items = []
    for r in results:
        ident = r.identification
        if r.error is None and ident is not None and r.size:
            kind = kind_for(ident.puid, ident.mime or ident.magic_mime, r.path)
            if kind:
                items.append(Item(r.dest, kind, ident.mime or ident.magic_mime or "", r.size,
                                  "data/" + r.path))
    return items


def batch_timeout(results: list[CopyResult]) -> float:
    """How long a batch's validation may take, all its files together: every file
    counted, since those libmagic is still to identify are not known to have no
    validator (each file's own timeout is the child's: validate_paths)."""
    return sum(SECONDS_PER_FILE + r.size / BYTES_PER_SECOND for r in results if r.size)


def checked_batch(item: tuple[list[CopyResult], dict], validate: bool = True
                  ) -> tuple[list[CopyResult], dict]:
    """The stage after identification, in the copy workers: libmagic for what siegfried
    left it (magic_batch), then each file's validator, run on the copy just written (still
    in the page cache). A zero-byte file gets no verdict: there is nothing to decode."""
    results, tools = magic_batch(item)
    if validate:
        items = _items(results)
        verdicts = validate_paths(items) if items else {}
        for r in results:
            r.validation = verdicts.get(r.dest)
    return results, tools
