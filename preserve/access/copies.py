"""Access copies (DIP) made from the AIP (issues 27 and 28): never in the preservation
versions, rebuilt from the AIP at any time.

This first kind: for a PDF whose every page is a scan (no text layer: `extract` read it
by OCR), a searchable PDF/A-2b made by OCRmyPDF 17 from PyPI (Debian's 14 passes its
languages to tesseract in an order that changes from run to run: research §6), with the
language the collection's policy names or the one detected on its first page
(pipeline/ocr.py). The copy is written to the access folder (`access/` in the repository,
or `access: {path: ...}` in preserve.yaml), at `<AIP>/<payload path>`, through a
temporary name and a rename; a small manifest per AIP (`<AIP>.json`) names, per copy,
the source's sha512 and the copy's sha256, so a second run makes only what is missing
or stale. Each copy made is a PREMIS *creation* event (catalog, signed log, the object's
logs/). OCRmyPDF runs as any tool does: sandboxed, with a timeout and a memory limit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.kept_text import TEXT, ocr_page_base, text_path
from preserve.domain.names import check_relative, display
from preserve.domain.premis import Agent, Event
from preserve.domain.progress import Progress, Silent
from preserve.errors import FixityMismatch, PreserveError, ToolFailure
from preserve.pipeline.ocr import ocr_page
from preserve.repository import Repository
from preserve.storage.object_log import record_event
from preserve.storage.recovery import ACCESS_STAGING, tidy
from preserve.storage.versions import fetch_stored, read_verified
from preserve.system import fstree
from preserve.system.tools import allow_tools, run_tool, tool_version

ACCESS_FOLDER = "access"
TIMEOUT = 1800
MEMORY_MB = 4096


@dataclass
class AccessResult:
    made: list[dict] = field(default_factory=list)
    current: int = 0  # copies already made from the same source
    failed: list[dict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "exit_code": self.exit_code}


def access_root(repo: Repository) -> Path:
    configured = (repo.config.get("access") or {}).get("path")
    path = Path(configured) if configured else Path(ACCESS_FOLDER)
    return path if path.is_absolute() else repo.root / path


def scanned_pdfs(repo: Repository, aip_id: str) -> list[tuple]:
    """(path, version, size, sha512) of the AIP's PDFs read wholly by OCR: the ones whose
    every page has ALTO kept beside its text."""
    catalog = repo.catalog
    head = catalog.get_aip(aip_id).version
    files = {path: (held, size, digests) for path, held, size, digests
             in catalog.state_files(aip_id, head)}
    out = []
    for path, (held, size, digests) in sorted(files.items()):
        if not path.startswith("data/") or not path.lower().endswith(".pdf"):
            continue
        text = text_path(path)
        if text not in files:
            continue
        pages = sum(1 for p in files if ocr_page_base(p) == text[:-len(TEXT)])
        if pages and pages == _page_count(repo, aip_id, text, files[text]):
            out.append((path, held, size, digests["sha512"]))
    return out


def _page_count(repo: Repository, aip_id: str, text: str, held: tuple) -> int:
    version, size, digests = held
    try:
        data = read_verified(repo.primary_location(), aip_id, version, text, size,
                             digests["sha512"], "no access copy was made", "build again")
    except FixityMismatch:
        return -1  # damaged: never built on
    return data.decode("utf-8", "replace").count("\f")


def build(repo: Repository, refs: list[str] | None = None, *,
          progress: Progress | None = None) -> AccessResult:
    """Make what is missing or stale of the AIPs' access copies (all AIPs when None)."""
    progress = progress or Silent()
    tidy(repo)
    catalog = repo.catalog
    ids = [catalog.resolve(r) for r in refs] if refs else [a.id for a in catalog.list_aips()]
    todo = [(aip, *f) for aip in ids for f in scanned_pdfs(repo, aip)]
    result = AccessResult()
    root = access_root(repo)
    progress.start("access copies", len(todo), sum(t[3] for t in todo))
    allow_tools()
    for aip_id, path, version, size, sha512 in todo:
        manifest = read_manifest(root, aip_id)
        if manifest.get(path, {}).get("source_sha512") == sha512 and \
                (root / aip_id / path[5:]).is_file():
            result.current += 1
        else:
            try:
                made = _make(repo, root, aip_id, path, version, size, sha512)
            except PreserveError as e:
                result.failed.append({"aip": aip_id, "path": path, "error": e.message})
            else:
                manifest[path] = made
                _write_manifest(root, aip_id, manifest)
                result.made.append({"aip": aip_id, "path": path, **made})
        progress.advance(1, size)
    return result


def _make(repo: Repository, root: Path, aip_id: str, path: str, version: int, size: int,
          sha512: str) -> dict:
    check_relative(path)
    work = repo.staging / (f"{ACCESS_STAGING}{os.getpid()}-"
                           f"{hashlib.sha1(path.encode()).hexdigest()[:8]}")
    fstree.makedirs(work)
    try:
        source = fetch_stored(repo.primary_location(), aip_id, version, path, size, sha512,
                              work / "source.pdf", "no access copy was made from it")
        languages = _languages(repo, aip_id, source, work)
        out = work / "searchable.pdf"
        run = run_tool([sys.executable, "-m", "ocrmypdf", "--output-type", "pdfa-2",
                        "-l", "+".join(languages), "--jobs", "1", "--quiet", str(source),
                        str(out)], timeout=TIMEOUT, memory_mb=MEMORY_MB,
                       env={**os.environ, "OMP_THREAD_LIMIT": "1"})
        if run.returncode != 0 or not out.is_file():
            raise ToolFailure(f"OCRmyPDF could not make a searchable copy of "
                              f"{display(path)}: {run.summary()}")
        dest = root / aip_id / path[5:]
        fstree.makedirs(dest.parent)
        partial = dest.with_name(f".{dest.name}.partial")
        os.replace(out, partial)
        with open(partial, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        os.replace(partial, dest)
    finally:
        fstree.rmtree(work, ignore_errors=True)
    tools = f"OCRmyPDF {tool_version_of_ocrmypdf()}, tesseract {tool_version('tesseract')}"
    when = now_utc()
    event = Event("creation", when, "success",
                  f"access copy of {display(path)}: a searchable PDF/A-2b made by {tools}",
                  f"languages {'+'.join(languages)}; kept outside the AIP at "
                  f"{ACCESS_FOLDER}/{aip_id}/{path[5:]} (sha256 {digest})",
                  [(AGENT_PRESERVE, "executing program")], objects=[(path, "source")])
    record_event(repo, repo.primary_location(), ocfl.object_root(aip_id), aip_id, event,
                 "access-copy", [Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__,
                                       "preserve digital preservation repository")])
    return {"source_sha512": sha512, "sha256": digest, "languages": languages, "made": when}


def _languages(repo: Repository, aip_id: str, source: Path, work: Path) -> list[str]:
    """The policy's languages for the AIP's collection, else those of its first page."""
    chosen = repo.policy.text.languages_for(repo.catalog.get_aip(aip_id).collection)
    if chosen:
        return chosen
    prefix = work / "first"
    run = run_tool(["pdftoppm", "-r", "300", "-gray", "-png", "-singlefile", "-f", "1",
                    "-l", "1", str(source), str(prefix)], timeout=TIMEOUT, memory_mb=2048)
    if run.returncode != 0:
        raise ToolFailure(f"pdftoppm could not render the first page: {run.summary()}")
    return ocr_page(prefix.with_suffix(".png"), work, None, dpi=300).languages


@functools.cache
def tool_version_of_ocrmypdf() -> str:
    run = run_tool([sys.executable, "-m", "ocrmypdf", "--version"], timeout=60)
    return run.stdout.strip() or "unknown"


def read_manifest(root: Path, aip_id: str) -> dict:
    try:
        return json.loads((root / f"{aip_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_manifest(root: Path, aip_id: str, manifest: dict) -> None:
    fstree.makedirs(root)
    path = root / f"{aip_id}.json"
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(partial, path)
