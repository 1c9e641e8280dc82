"""`preserve search`: AIPs and files found by words, ranked, each with a snippet and its page.

The query goes through the language layer (domain/words.py) to the catalog's engine
(catalog/search.py: FTS5 or PostgreSQL, the same hits). Hits come a page at a time; a
file is shown once, at its best page. The snippet is cut here, from the page's own text,
around its first word that answers a query term, the words that answer marked: the same
on both engines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from preserve.catalog import Catalog
from preserve.domain.rights import Decision
from preserve.domain.words import keys, matches, query_terms, words
from preserve.errors import BadArgument

SNIPPET_WORDS = 12  # words either side of the first match
FETCH_FACTOR = 5  # pages fetched per hit asked for (a file's pages collapse into one)


@dataclass
class Hit:
    aip: str
    version: int
    collection: str
    path: str  # the payload file ('' for the AIP's own description)
    page: int  # 1... for text pages; 0 for a name or a description
    kind: str  # aip, file, text, ocr
    puid: str | None
    snippet: str | None  # the page's words around the first match, matches in [brackets];
    closed: bool = False  # None where rights close the AIP: nothing of it is shown
    opens_on: str | None = None

    def to_dict(self) -> dict:
        return {**asdict(self), "path": self.path or None, "page": self.page or None}


def search(catalog: Catalog, query: str, *, collection: str | None = None,
           puid: str | None = None, aip_id: str | None = None, limit: int = 20,
           rights: Callable[[str], Decision] | None = None) -> list[Hit]:
    """The best `limit` hits of `query`: every word of it must be found. `rights`: the
    decision for an AIP (access/rights.Decisions); a closed AIP's hits carry no snippet,
    so nothing of what rights close is shown."""
    terms = query_terms(query)
    if not terms:
        raise BadArgument(f"the query {query!r} has no words to search for",
                          hint="give a word, a name or a phrase")
    if limit < 1:
        raise BadArgument("--limit must be at least 1")
    rows = catalog.search_hits(terms, collection=collection, puid=puid, aip_id=aip_id,
                               limit=limit * FETCH_FACTOR)
    hits, seen = [], set()
    for aip, version, coll, path, page, kind, row_puid, text in rows:
        where = (aip, path)
        if where in seen:
            continue
        seen.add(where)
        decided = rights(aip) if rights else None
        if decided is not None and not decided.open:
            hits.append(Hit(aip, version, coll, path, page, kind, row_puid, None, True,
                            decided.opens_on))
        else:
            hits.append(Hit(aip, version, coll, path, page, kind, row_puid,
                            snippet(text, terms)))
        if len(hits) == limit:
            break
    return hits


def snippet(text: str, terms: list[tuple[str, ...]], width: int = SNIPPET_WORDS) -> str:
    """The words around the first that answers a term, every answering word in brackets.
    Words are looked at up to the first match and then across its window only."""
    found = list(words(text))
    if not found:
        return ""

    def hit(m) -> bool:
        k = keys(m.group())
        return any(matches(t, k) for t in terms)

    first = next((n for n, m in enumerate(found) if hit(m)), 0)
    start, end = max(0, first - width), min(len(found), first + width + 1)
    out, at = [], found[start].start()
    for m in found[start:end]:
        out.append(text[at:m.start()])
        out.append(f"[{m.group()}]" if hit(m) else m.group())
        at = m.end()
    body = " ".join("".join(out).split())
    return ("… " if start else "") + body + (" …" if end < len(found) else "")
