"""The full-text search index (issue 27), one question for two engines.

Rows carry their words' search keys (domain/words.py). A query is terms that must all
match, each a few keys any of which a row must hold or (three letters and more) begin
with. SQLite asks FTS5 (`"key"*` prefix queries, ranked by bm25); PostgreSQL asks a
GIN index of the keys as lexemes, taken literally (`array_to_tsvector`; no parser, no
dictionary) and stored, with `'key':*` prefixes, ranked by ts_rank. The same keys and the same rule
give both the same hits; only their order among equals may differ.
"""

from __future__ import annotations

from collections.abc import Iterable

from preserve.catalog.database import PAYLOAD, and_where
from preserve.domain.words import is_prefix

# (aip id, version, collection, path, page, kind, puid, text, keys)
PageRow = tuple[str, int, str, str, int, str, str | None, str, str]
# (aip id, version, collection, path, page, kind, puid, text)
Hit = tuple[str, int, str, str, int, str, str | None, str]
# Rows a query ranks at most: the first that match, in the order they were indexed.
RANKED = 2000
MAX_ID = 2**63 - 1
COLUMNS = "p.aip_id, p.version, p.collection, p.path, p.page, p.kind, p.puid, p.text"


class Search:
    """Search: one part of the Catalog (preserve.catalog), on its connection."""

    def replace_search_rows(self, aip_id: str, rows: Iterable[PageRow]) -> int:
        """An AIP's rows, replacing what the index held of it, in one transaction."""
        rows = list(rows)
        columns = "aip_id, version, collection, path, page, kind, puid, text, keys"
        with self.transaction() as db:
            db.execute("DELETE FROM search_pages WHERE aip_id = ?", (aip_id,))
            if self.server:
                db.executemany(f"INSERT INTO search_pages ({columns}, tsv) VALUES (?, ?, ?, ?, "
                               "?, ?, ?, ?, ?, array_to_tsvector(string_to_array(?, ' ')))",
                               [(*r, r[-1]) for r in rows])
            else:
                db.executemany(f"INSERT INTO search_pages ({columns}) VALUES (?, ?, ?, ?, ?, "
                               "?, ?, ?, ?)", rows)
        return len(rows)

    def search_stale(self) -> list[str]:
        """Stored AIPs whose head version the index does not hold: a version added since
        (a correction, a migration, extracted text), or never indexed."""
        return [r[0] for r in self.execute(
            "SELECT a.id FROM aips a JOIN (SELECT aip_id, MAX(version) AS head FROM versions "
            "WHERE state = 'stored' GROUP BY aip_id) v ON v.aip_id = a.id LEFT JOIN "
            "search_pages p ON p.aip_id = a.id AND p.kind = 'aip' WHERE a.state = 'stored' "
            "AND (p.version IS NULL OR p.version <> v.head) ORDER BY a.id")]

    def payload_formats(self, aip_id: str) -> list[tuple[str, str | None, str | None]]:
        """(bag path, puid, format name) of the AIP's stored payload files."""
        return [tuple(r) for r in self.execute(
            "SELECT f.path, f.puid, f.format FROM files f JOIN versions v ON v.aip_id = "
            "f.aip_id AND v.version = f.version AND v.state = 'stored' WHERE f.aip_id = ? "
            f"AND {PAYLOAD} ORDER BY f.path", (aip_id,))]

    def kept_text(self, aip_ids: list[str] | None = None) -> dict[str, set[str]]:
        """{AIP: the bag paths of the text files it keeps (metadata/text/...)}."""
        where, args = and_where({"f.aip_id": aip_ids})
        kept: dict[str, set[str]] = {}
        for aip, path in self.stream(
                "SELECT f.aip_id, f.path FROM files f JOIN versions v ON v.aip_id = f.aip_id "
                "AND v.version = f.version AND v.state = 'stored' WHERE "
                f"substr(f.path, 1, 14) = 'metadata/text/'{where}", args):
            kept.setdefault(aip, set()).add(path)
        return kept

    def search_counts(self) -> dict[str, int]:
        """Rows of the index by kind."""
        return {kind: n for kind, n in self.execute(
            "SELECT kind, COUNT(*) FROM search_pages GROUP BY kind")}

    def search_hits(self, terms: list[tuple[str, ...]], *, collection: str | None = None,
                    puid: str | None = None, aip_id: str | None = None,
                    limit: int = 200) -> list[Hit]:
        """The best `limit` rows holding every term, best first: ranked among the first
        RANKED rows that match (in the order they were indexed), so that a word on most
        pages costs what a rarer one does."""
        if not terms:
            return []
        where, args = and_where({"p.collection": collection, "p.puid": puid,
                                 "p.aip_id": aip_id})
        if self.server:  # "+ 0": the GIN index finds the rows, never a walk in id order
            return [tuple(r) for r in self.execute(
                "WITH q AS (SELECT CAST(? AS tsquery) AS q), m AS MATERIALIZED (SELECT p.id "
                f"FROM search_pages p, q WHERE p.tsv @@ q.q{where} ORDER BY p.id + 0 LIMIT ?) "
                f"SELECT {COLUMNS} FROM m JOIN search_pages p ON p.id = m.id, q "
                "ORDER BY ts_rank(p.tsv, q.q) DESC, p.aip_id, p.path, p.page LIMIT ?",
                [tsquery(terms), *args, RANKED, limit])]
        match = fts5_query(terms)
        last = self.execute(  # the RANKED-th match: those after it are not ranked
            "SELECT p.id FROM search_fts JOIN search_pages p ON p.id = search_fts.rowid "
            f"WHERE search_fts MATCH ?{where} ORDER BY p.id LIMIT 1 OFFSET ?",
            [match, *args, RANKED - 1]).scalar()
        return [tuple(r) for r in self.execute(
            f"SELECT {COLUMNS} FROM search_fts JOIN search_pages p ON p.id = search_fts.rowid "
            f"WHERE search_fts MATCH ? AND search_fts.rowid <= ?{where} "
            "ORDER BY bm25(search_fts), p.aip_id, p.path, p.page LIMIT ?",
            [match, last if last is not None else MAX_ID, *args, limit])]


def fts5_query(terms: list[tuple[str, ...]]) -> str:
    """The terms as an FTS5 query: `("k1"* OR "k2"*) AND ...` (keys are letters and
    digits only, so quoting is all they need)."""
    return " AND ".join("(" + " OR ".join(f'"{k}"' + ("*" if is_prefix(k) else "")
                                          for k in term) + ")" for term in terms)


def tsquery(terms: list[tuple[str, ...]]) -> str:
    """The terms as a PostgreSQL tsquery, lexemes taken literally: `('k1':* | 'k2') & ...`."""
    return " & ".join("(" + " | ".join(f"'{k}'" + (":*" if is_prefix(k) else "")
                                       for k in term) + ")" for term in terms)
