"""Access copies (DIP) made from the AIP (issue 28): never in the preservation versions,
rebuilt from the AIP at any time (`preserve access build [--all | AIP...] [--queue]`).

Every payload file of an AIP's head version whose kind the policy gives a copy
(`access.copies`: documents, images, sound, video; access/makers.py makes them) gets one,
made from the stored file (fetched and verified against its sha512 first), in the access
location: the storage location with role `access` (`preserve storage add NAME PATH --role
access`), else `access/` in the repository. A file that was migrated is represented by
its newest derivative, not twice.

Per AIP, a manifest (`<AIP>.json`) names per source: the source's sha512, the policy's
choice, and what was made: the files a reader may download (with their sha256), the
pages of the viewer (IIIF level-0 tile folders) and a thumbnail. The reading room opens
only what a manifest names. A second run makes only what is missing or stale (a new
version changed the file, the policy changed its choice, a file was lost); copies of
files no longer in the head version are removed.

A copy is written in a folder beside its place (`.staging/` in the access location),
then moved into place and named in the manifest: an interrupted run leaves no half copy
where the reading room looks. Each copy made is a PREMIS *creation* event (catalog,
signed log, the object's logs/).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.access import iiif
from preserve.access.makers import Made, kind_of, make
from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.names import check_relative, display
from preserve.domain.premis import Agent, Event
from preserve.domain.progress import Progress, Silent
from preserve.errors import PreserveError, ToolFailure
from preserve.parallel import default_workers, in_order
from preserve.pipeline.ocr import ocr_page
from preserve.pipeline.text_extraction import RENDER_DPI, render_page
from preserve.repository import Repository
from preserve.storage.object_log import record_event
from preserve.storage.recovery import ACCESS_STAGING, remove_ended_access_copies, tidy
from preserve.storage.versions import fetch_stored
from preserve.system import fstree
from preserve.system.tools import allow_tools, kill_all

ACCESS_FOLDER = "access"
MANIFEST_FORMAT = 2
STAGING = ".staging"  # in the access location: copies being made


@dataclass
class AccessResult:
    made: list[dict] = field(default_factory=list)
    current: int = 0  # copies already made from the same source, by the same choice
    removed: list[dict] = field(default_factory=list)  # of files no longer in the AIP
    failed: list[dict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "exit_code": self.exit_code}


@dataclass
class Source:
    aip_id: str
    path: str  # bag path, data/...
    version: int  # the version holding its content
    size: int
    sha512: str
    mime: str
    kind: str
    choice: str


def access_root(repo: Repository) -> Path:
    """Where access copies are kept: the location with role access, else `access.path`
    of preserve.yaml, else access/ in the repository."""
    if repo.access_path is not None:
        return repo.access_path
    configured = (repo.config.get("access") or {}).get("path")
    path = Path(configured) if configured else Path(ACCESS_FOLDER)
    return path if path.is_absolute() else repo.root / path


def sources(repo: Repository, aip_id: str) -> list[Source]:
    """The head version's payload files that get an access copy, by path."""
    catalog = repo.catalog
    head = catalog.get_aip(aip_id).version
    held = {path: version for path, version, _, _ in catalog.state_files(aip_id, head)}
    superseded = {source for _, source, _, _ in catalog.derivations(aip_id)}
    choices = repo.policy.access.copies
    out = []
    for f in catalog.files(aip_id, head):
        kind = kind_of(f.mime or f.magic_mime)
        if kind and choices[kind] != "none" and f.size and f.path not in superseded:
            out.append(Source(aip_id, f.path, held[f.path], f.size, f.digests["sha512"],
                              f.mime or f.magic_mime or "", kind, choices[kind]))
    return out


def is_current(root: Path, entry: dict | None, source: Source) -> bool:
    if not entry or entry.get("source_sha512") != source.sha512 or \
            entry.get("choice") != source.choice:
        return False
    folder = root / source.aip_id
    return all((folder / name).is_file() for name in entry.get("files", {})) and \
        all((folder / p["tiles"] / "info.json").is_file() for p in entry.get("pages", []))


def build(repo: Repository, refs: list[str] | None = None, *, workers: int | None = None,
          progress: Progress | None = None) -> AccessResult:
    """Make what is missing or stale of the AIPs' access copies (all AIPs when None)."""
    progress = progress or Silent()
    tidy(repo)
    catalog = repo.catalog
    root = access_root(repo)
    remove_ended_access_copies(root / STAGING)
    ids = [catalog.resolve(r) for r in refs] if refs else [a.id for a in catalog.list_aips()]
    result = AccessResult()
    todo: list[Source] = []
    changed: set[str] = set()  # AIPs whose IIIF manifest is to be written again
    for aip_id in ids:
        manifest = read_manifest(root, aip_id)
        if not iiif.manifest_path(root, aip_id).is_file() and iiif.canvases(manifest):
            changed.add(aip_id)
        wanted = sources(repo, aip_id)
        for source in wanted:
            if is_current(root, manifest.get(source.path), source):
                result.current += 1
            else:
                todo.append(source)
        gone = sorted(set(manifest) - {s.path for s in wanted})
        if gone:
            for path in gone:
                _remove(root / aip_id, manifest.pop(path))
                result.removed.append({"aip": aip_id, "path": path})
            write_manifest(root, aip_id, manifest)
            changed.add(aip_id)
    try:
        _make_all(repo, root, todo, result, changed, workers, progress)
    finally:  # what was made is shown in the viewer, even after an interruption
        for aip_id in sorted(changed):
            iiif.write_manifest(root, aip_id, read_manifest(root, aip_id))
    return result


def _make_all(repo: Repository, root: Path, todo: list[Source], result: AccessResult,
              changed: set[str], workers: int | None, progress: Progress) -> None:
    if not todo:
        return
    allow_tools()
    progress.start("access copies", len(todo), sum(s.size for s in todo))
    workers = workers or default_workers()
    jobs = max(1, workers // len(todo))  # one book alone: OCRmyPDF on every core

    def one(source: Source) -> tuple[Source, Made | None, str | None]:
        try:
            return source, _make(repo, root, source, jobs), None
        except PreserveError as e:
            return source, None, e.message

    try:  # tools run on `workers` threads; the catalog and manifests are written here
        for source, made, error in in_order(one, todo, lambda: False, workers):
            if made is None:
                result.failed.append({"aip": source.aip_id, "path": source.path,
                                      "error": error})
            else:
                when = now_utc()
                _record(repo, source, made, when)
                entry = {"kind": source.kind, "choice": source.choice,
                         "source_sha512": source.sha512, "made": when, "files": made.files,
                         "pages": made.pages, "thumbnail": made.thumbnail,
                         "player": made.player, "tools": made.tools,
                         "languages": made.languages}
                manifest = read_manifest(root, source.aip_id)
                old = manifest.get(source.path)
                manifest[source.path] = entry
                write_manifest(root, source.aip_id, manifest)
                if old:  # names the new copy no longer has (a choice changed)
                    _remove(root / source.aip_id, old, keep=entry)
                changed.add(source.aip_id)
                result.made.append({"aip": source.aip_id, "path": source.path,
                                    "kind": source.kind, "choice": source.choice,
                                    "files": sorted(entry["files"]),
                                    "pages": len(entry["pages"]),
                                    "languages": made.languages})
            progress.advance(1, source.size)
    except BaseException:
        kill_all()  # no tool is left running behind an interrupted run
        raise


def _make(repo: Repository, root: Path, source: Source, jobs: int) -> Made:
    """One source's copy: made in the staging folder, moved into place."""
    check_relative(source.path)
    name = source.path[5:]
    tag = f"{os.getpid()}-{hashlib.sha1(source.path.encode()).hexdigest()[:8]}"
    work = repo.staging / f"{ACCESS_STAGING}{tag}"
    out = root / STAGING / tag
    fstree.makedirs(work)
    fstree.makedirs(out)
    try:
        stored = fetch_stored(repo.primary_location(), source.aip_id, source.version,
                              source.path, source.size, source.sha512,
                              work / ("source" + Path(name).suffix.lower()),
                              "no access copy was made from it")
        made = make(source.kind, source.choice, source.mime, stored, name, out,
                    lambda: _languages(repo, source.aip_id, stored, work), jobs)
        for item in made.names():
            _move_into_place(out / item, root / source.aip_id / item)
    except ToolFailure as e:
        raise ToolFailure(f"AIP {source.aip_id}, {display(source.path)}: {e.message}") from e
    finally:
        fstree.rmtree(work, ignore_errors=True)
        fstree.rmtree(out, ignore_errors=True)
    return made


def _move_into_place(made: Path, dest: Path) -> None:
    fstree.makedirs(dest.parent)
    if dest.is_dir() and not dest.is_symlink():  # the pages of an older copy
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(made, dest)
        fstree.rmtree(old, ignore_errors=True)
    else:
        os.replace(made, dest)


def _record(repo: Repository, source: Source, made: Made, when: str) -> None:
    names = ", ".join(sorted(made.files)) or "(none)"
    pages = f"; {len(made.pages)} page(s) for the viewer" if made.pages else ""
    event = Event("creation", when, "success",
                  f"access copy of {display(source.path)}: {made.detail}, by "
                  f"{', '.join(made.tools)}",
                  f"kept outside the AIP, in the access location: {names}{pages}",
                  [(AGENT_PRESERVE, "executing program")], objects=[(source.path, "source")])
    record_event(repo, repo.primary_location(), ocfl.object_root(source.aip_id),
                 source.aip_id, event, "access-copy",
                 [Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__,
                        "preserve digital preservation repository")])


def _languages(repo: Repository, aip_id: str, source: Path, work: Path) -> list[str]:
    """The policy's OCR languages for the AIP's collection, else those of the first page."""
    chosen = repo.policy.text.languages_for(repo.catalog.get_aip(aip_id).collection)
    if chosen:
        return chosen
    return ocr_page(render_page(source, 1, work), work, None, dpi=RENDER_DPI).languages


def _remove(folder: Path, entry: dict, keep: dict | None = None) -> None:
    """The files of a manifest entry (but those `keep` also names)."""
    kept = set(_entry_names(keep)) if keep else set()
    for name in _entry_names(entry):
        if name in kept:
            continue
        target = folder / name
        if target.is_dir():
            fstree.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


def _entry_names(entry: dict) -> list[str]:
    pages = {p["tiles"].rsplit("/", 1)[0] for p in entry.get("pages", [])}
    return [*entry.get("files", {}), *([entry["thumbnail"]] if entry.get("thumbnail")
                                       else []), *pages]


def read_manifest(root: Path, aip_id: str) -> dict:
    """Per source path, what was made of it (empty: nothing yet, or an older format)."""
    try:
        data = json.loads((root / f"{aip_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return {}
    return data.get("copies") or {}


def write_manifest(root: Path, aip_id: str, copies: dict) -> None:
    fstree.makedirs(root)
    path = root / f"{aip_id}.json"
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps({"format": MANIFEST_FORMAT, "aip": aip_id,
                                   "copies": copies}, indent=1, sort_keys=True),
                       encoding="utf-8")
    os.replace(partial, path)
