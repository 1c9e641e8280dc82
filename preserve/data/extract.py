"""`preserve extract`: the text of what is stored, kept in the AIP (issue 27).

Text is extracted once and kept **inside the AIP**, as RODA keeps it: a re-index, a
catalog rebuilt from storage or an exchange package never extracts or OCRs again. For
each stored payload file with text to give (pipeline/text_extraction.py) and none kept
yet, on `workers` threads (each runs tools: both cores busy):

1. the stored file is copied to a private working folder, its sha512 checked on the way
   (no tool runs inside storage, none reads damaged bytes);
2. its text is extracted page by page; pages without a text layer, and scans, are read
   by OCR, the language by the collection's policy or detected per page;
3. per AIP, once its files are done, one new version (storage/new_version) adds, per
   file, `metadata/text/<payload path>.txt` (pages separated by form feeds) and, for
   each OCR page, `…page-NNNN.alto.xml` (ALTO, word positions) and `…page-NNNN.hocr`,
   with a PREMIS event per file naming the method, the tools and their versions, the
   language models and, per OCR page, the language and why it was chosen.

A run stopped at any point leaves each AIP at its old version or its new one; running
`extract` again does what is left. A file whose extraction fails is named, and tried
again by the next run.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import Path

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.domain.clock import now_utc
from preserve.domain.kept_text import ALTO, HOCR, TEXT_PREFIX, text_path
from preserve.domain.premis import Agent, Event
from preserve.domain.progress import Progress, Silent
from preserve.errors import PreserveError
from preserve.parallel import default_workers, in_order
from preserve.pipeline.ocr import model_id
from preserve.pipeline.text_extraction import Extracted, extract, text_kind
from preserve.repository import Repository
from preserve.storage.new_version import VersionChange, add_version
from preserve.storage.recovery import EXTRACT_STAGING, tidy
from preserve.storage.versions import fetch_stored, plain_suffix
from preserve.system import fstree
from preserve.system.tools import allow_tools, kill_all

EVENT_TYPE = "metadata extraction"  # PREMIS event type (id.loc.gov vocabulary)


@dataclass
class Candidate:
    aip_id: str
    collection: str
    path: str  # bag path of the payload file
    version: int  # the version holding it
    size: int
    sha512: str
    mime: str
    kind: str


@dataclass
class FileText:
    candidate: Candidate
    extracted: Extracted | None = None
    error: str | None = None
    workdir: Path | None = None
    when: str = ""


@dataclass
class ExtractResult:
    planned: int = 0
    extracted: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return sum(e["pages"] for e in self.extracted)

    @property
    def ocr_pages(self) -> int:
        return sum(e["ocr_pages"] for e in self.extracted)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.problems else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "pages": self.pages, "ocr_pages": self.ocr_pages,
                "exit_code": self.exit_code}


def plan(repo: Repository, refs: list[str] | None = None) -> list[Candidate]:
    """Every stored payload file of the AIPs (all when None) with text to give and none
    kept yet, by AIP and path."""
    catalog = repo.catalog
    ids = [catalog.resolve(r) for r in refs] if refs else None
    kept = catalog.kept_text(ids)
    collections = {a.id: a.collection for a in catalog.list_aips()}
    out = []
    for aip, path, version, size, sha512, _puid, mime, magic_mime in \
            catalog.payload_to_validate(ids):
        kind = text_kind(mime or magic_mime, path)
        if kind and size and text_path(path) not in kept.get(aip, ()):
            out.append(Candidate(aip, collections.get(aip, ""), path, version, size, sha512,
                                 mime or magic_mime or "", kind))
    return out


def extract_stored(repo: Repository, refs: list[str] | None = None, *,
                   workers: int | None = None, progress: Progress | None = None
                   ) -> ExtractResult:
    """Extract what `plan` names and add it to each AIP as its next version."""
    progress = progress or Silent()
    tidy(repo)
    result = ExtractResult()
    candidates = plan(repo, refs)
    result.planned = len(candidates)
    if not candidates:
        return result
    allow_tools()
    policy = repo.policy.text
    workers = workers or default_workers()
    workroot = repo.staging / f"{EXTRACT_STAGING}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    fstree.makedirs(workroot)
    progress.start("extracting text", len(candidates), sum(c.size for c in candidates))
    numbered = list(enumerate(candidates))

    def one(item: tuple[int, Candidate]) -> FileText:
        n, c = item
        return _extract_one(repo, c, workroot / str(n), policy.languages_for(c.collection))

    try:
        done = in_order(one, numbered, lambda: False, workers)
        for aip_id, texts in groupby(_advancing(done, progress), key=lambda t: t.candidate.aip_id):
            texts = list(texts)
            _record(repo, aip_id, texts, result)
            for t in texts:
                fstree.rmtree(t.workdir, ignore_errors=True)
    except BaseException:
        kill_all()  # no tool is left running behind an interrupted run
        raise
    finally:
        fstree.rmtree(workroot, ignore_errors=True)
    return result


def _advancing(done, progress: Progress):
    for t in done:
        progress.advance(1, t.candidate.size)
        yield t


def _extract_one(repo: Repository, c: Candidate, workdir: Path,
                 languages: list[str] | None) -> FileText:
    fstree.makedirs(workdir)
    out = FileText(c, workdir=workdir)
    try:
        source = fetch_stored(repo.primary_location(), c.aip_id, c.version, c.path, c.size,
                              c.sha512, workdir / f"source{plain_suffix(c.path)}",
                              "no text was taken from it")
        out.extracted = extract(c.kind, source, workdir, c.mime, languages)
        source.unlink()
    except PreserveError as e:
        out.error = e.message
    except (OSError, ValueError) as e:  # an image Pillow cannot open, a folder gone
        out.error = f"{type(e).__name__}: {e}"
    out.when = now_utc()
    return out


def _record(repo: Repository, aip_id: str, texts: list[FileText],
            result: ExtractResult) -> None:
    """One version of the AIP with the text of each file done; failures named."""
    for t in texts:
        if t.error:
            result.failed.append({"aip": aip_id, "path": t.candidate.path, "error": t.error})
    good = [t for t in texts if t.extracted is not None]
    if not good:
        return
    metadata, events, agents = [], [], _agents(good)
    for t in good:
        files = _write_text_files(t)
        metadata += files
        events.append(_event(t, [rel for rel, _ in files]))
    pages = sum(len(t.extracted.pages) for t in good)
    ocr = sum(len(t.extracted.ocr) for t in good)
    summary = Event(EVENT_TYPE, now_utc(), "success",
                    f"full text extracted from {len(good)} file(s), {pages} page(s), "
                    f"{ocr} read by OCR; kept under {TEXT_PREFIX}",
                    None, [(AGENT_PRESERVE, "executing program")])
    change = VersionChange(f"full text: {len(good)} file(s), {pages} page(s) ({ocr} by OCR)",
                           summary, agents, events=events, metadata=metadata)
    try:
        done = add_version(repo, aip_id, change)
    except PreserveError as e:
        result.problems.append(f"AIP {aip_id}: {e.message}")
        return
    for t in good:
        result.extracted.append({"aip": aip_id, "path": t.candidate.path,
                                 "method": t.extracted.method, "pages": len(t.extracted.pages),
                                 "ocr_pages": len(t.extracted.ocr),
                                 "languages": _languages(t.extracted)})
    result.versions.append({"aip": aip_id, "version": done.version,
                            "files": len(good), "replicas": done.replicas})
    result.problems += [f"AIP {aip_id} v{done.version} not copied to {p}"
                        for p in done.replication_problems]


def _write_text_files(t: FileText) -> list[tuple[str, Path]]:
    """The text, ALTO and hOCR files of one payload file, in its working folder."""
    out = t.workdir / "kept"
    fstree.makedirs(out)
    text = out / "text.txt"
    text.write_text(t.extracted.text, encoding="utf-8", newline="\n")
    files = [(text_path(t.candidate.path), text)]
    for number, page in sorted(t.extracted.ocr.items()):
        for suffix, data in ((ALTO, page.alto), (HOCR, page.hocr)):
            local = out / f"page-{number}{suffix}"
            local.write_bytes(data)
            files.append((text_path(t.candidate.path, number, suffix), local))
    return files


def _languages(e: Extracted) -> list[str]:
    return sorted({lang for page in e.ocr.values() for lang in page.languages})


def _event(t: FileText, outcome_paths: list[str]) -> Event:
    e = t.extracted
    agents = [(AGENT_PRESERVE, "executing program")] + [
        (f"{tool}-{version}", "executing program") for tool, version in e.tools]
    detail = f"full text extraction ({e.method}) by {', '.join(t for t, _ in e.tools) or 'preserve'}"
    lines = [f"{len(e.pages)} page(s), {sum(len(p) for p in e.pages)} characters"]
    if e.ocr:
        models = ", ".join(model_id(lang) for lang in _languages(e))
        lines.append(f"OCR models: {models}")
        lines += [f"page {n}: {'+'.join(p.languages)} ({p.basis})"
                  for n, p in sorted(e.ocr.items())]
    objects = [(t.candidate.path, "source"), *((p, "outcome") for p in outcome_paths[:1])]
    return Event(EVENT_TYPE, t.when, "success", detail, "; ".join(lines), agents,
                 objects=objects)


def _agents(texts: list[FileText]) -> list[Agent]:
    agents = {AGENT_PRESERVE: Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__,
                                    "preserve digital preservation repository")}
    for t in texts:
        for tool, version in t.extracted.tools:
            agents.setdefault(tool, Agent(f"{tool}-{version}", tool, "software", version))
    return list(agents.values())
