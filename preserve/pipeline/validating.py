"""Format validation of files (issue 26): which validator a file gets, and running a batch
of them in a sandboxed child process (validator_run.py).

Ingest calls `validate_batch` in its copy workers, after identification, so validation
of one batch runs on both cores beside the copy of the next; `preserve validate-files`
calls `validate_paths` on files read back from storage. A file whose format has no
validator gets no verdict (the reports count it as not checked); one whose validator
could not finish gets NOT_CHECKED with the reason, never VALID.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass

from preserve.errors import PreserveError
from preserve.pipeline.file_verdicts import Checked, not_checked
from preserve.pipeline.identifying import CopyResult, magic_batch
from preserve.system.tools import run_tool

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


def validate_paths(items: list[Item], workdir: str | None = None) -> dict[str, Checked]:
    """Each item's verdict, by path. The files run in one sandboxed child process; if it
    is killed on a file (past its time, out of memory, crashed), that file is NOT_CHECKED
    with the reason and the files after it run in a new child."""
    verdicts: dict[str, Checked] = {}
    remaining = list(items)
    while remaining:
        with tempfile.TemporaryDirectory(prefix="preserve-validate-", dir=workdir) as work:
            request, result = os.path.join(work, "request"), os.path.join(work, "result")
            with open(request, "w", encoding="utf-8") as f:
                for item in remaining:
                    f.write(json.dumps({"path": item.path, "kind": item.kind,
                                        "mime": item.mime, "timeout": item.timeout()}) + "\n")
            why = _run_child(request, result, sum(i.timeout() for i in remaining))
            named = {i.path: i.name for i in remaining}
            for line in _lines(result):
                path = line.pop("path")
                verdicts[path] = Checked.from_dict(line).shown(path, named.get(path, ""))
        done = [i for i in remaining if i.path in verdicts]
        if len(done) == len(remaining):
            break
        stuck = next(i for i in remaining if i.path not in verdicts)
        verdicts[stuck.path] = not_checked(f"the validator was stopped on it: {why}")
        remaining = [i for i in remaining if i.path not in verdicts]
    return verdicts


def _run_child(request: str, result: str, timeout: float) -> str:
    """Run the child; "" when it ended well, else why it did not."""
    try:
        run = run_tool([sys.executable, "-m", "preserve.pipeline.validator_run", request,
                        result], timeout=timeout, memory_mb=MEMORY_MB, isolated=True)
    except PreserveError as e:
        return e.message
    if run.returncode != 0:
        said = run.stderr.strip().splitlines()
        return f"exit {run.returncode}" + (f": {said[-1][:200]}" if said else "")
    return ""


def _lines(path: str) -> list[dict]:
    """The result lines the child finished (a last, half-written one is dropped)."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out


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
    """How long a batch's validation may take, all its files together."""
    return sum(i.timeout() for i in _items(results))


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
