"""The search index made from what the AIPs hold (issue 27): never from anything else.

Per AIP, from its head version: a row of its descriptive metadata (bag-info.txt: title,
creators, identifiers, description, rights, collection, its identifier), a row per
payload file (its name and format), and a row per page of each file's kept text
(`metadata/text/<payload path>.txt`, pages separated by form feeds; OCR pages have
ALTO and hOCR beside it). Every file read is checked against its recorded sha512 first.
The index is kept by the AIP's head version: an AIP whose head is newer than what the
index holds (a correction, a migration, extracted text, a rebuilt catalog) is indexed
again by `refresh` (search does it first), so no writer needs to know of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from preserve.catalog.search import PageRow
from preserve.domain import bag as bagfmt
from preserve.domain.kept_text import ALTO, TEXT, ocr_page_base, payload_of
from preserve.domain.progress import Progress, Silent
from preserve.domain.words import index_keys
from preserve.errors import PreserveError
from preserve.repository import Repository
from preserve.storage.versions import read_verified

# bag-info labels that say nothing a reader searches for.
NOT_SEARCHED = {"payload-oxum", "bag-size", "bagging-date", "bag-count", "bag-software-agent",
                "preserve-aip-version", "preserve-source", "source-bagging-date",
                "bagit-profile-identifier"}


@dataclass
class Refreshed:
    aips: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)  # AIPs left as they were indexed


def refresh(repo: Repository, progress: Progress | None = None) -> Refreshed:
    """Index again every AIP whose head version the index does not hold. An AIP whose
    kept text cannot be read whole is named and left as it was indexed (tried again
    next time); the others are indexed."""
    progress = progress or Silent()
    stale = repo.catalog.search_stale()
    done = Refreshed()
    if stale:
        progress.start("indexing", len(stale), len(stale))
        for aip_id in stale:
            try:
                done.rows += index_aip(repo, aip_id)
                done.aips += 1
            except PreserveError as e:  # damaged text: that AIP keeps its older rows
                done.problems.append(f"AIP {aip_id} not indexed again: {e.message}")
            progress.advance(1, 1)
    return done


def index_aip(repo: Repository, aip_id: str) -> int:
    """The AIP's rows in the index, replacing what it held; how many."""
    return repo.catalog.replace_search_rows(aip_id, aip_rows(repo, aip_id))


def aip_rows(repo: Repository, aip_id: str) -> list[PageRow]:
    catalog = repo.catalog
    aip = catalog.get_aip(aip_id)
    head, collection = aip.version, aip.collection
    location = repo.primary_location()
    files = list(catalog.state_files(aip_id, head))
    formats = {path: (puid, name) for path, puid, name in catalog.payload_formats(aip_id)}

    def read(path: str, held_in: int, size: int, digests: dict) -> bytes:
        return read_verified(location, aip_id, held_in, path, size, digests["sha512"],
                             "it was not indexed", "search again")

    rows: list[PageRow] = []
    tags = {path: (held_in, size, digests) for path, held_in, size, digests in files
            if not path.startswith("data/")}
    info, _ = bagfmt.parse_bag_info(read("bag-info.txt", *tags["bag-info.txt"])
                                    .decode("utf-8"))
    described = [f.value for f in info if f.label.lower() not in NOT_SEARCHED]
    about = "\n".join([*described, collection])
    rows.append(_row(aip_id, head, collection, "", 0, "aip", None, about))
    ocr = {ocr_page_base(path) for path in tags if path.endswith(ALTO)}
    for path, (held_in, size, digests) in sorted(tags.items()):
        payload = payload_of(path)
        if payload is None:
            continue
        text = read(path, held_in, size, digests).decode("utf-8", errors="replace")
        pages = text.split("\f")
        if pages and pages[-1] == "":
            pages.pop()
        kind = "ocr" if path[:-len(TEXT)] in ocr else "text"
        puid = formats.get(payload, (None, None))[0]
        rows += [_row(aip_id, head, collection, payload, n, kind, puid, page)
                 for n, page in enumerate(pages, 1) if page.strip()]
    for path, (puid, name) in sorted(formats.items()):
        label = f"{path[len('data/'):]}\n{name or ''} {puid or ''}".strip()
        rows.append(_row(aip_id, head, collection, path, 0, "file", puid, label))
    return rows


def _row(aip_id: str, version: int, collection: str, path: str, page: int, kind: str,
         puid: str | None, text: str) -> PageRow:
    return (aip_id, version, collection, path, page, kind, puid, text, index_keys(text))
