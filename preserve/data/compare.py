"""Two catalogs compared table by table: what one holds that the other does not.

The catalog is an index that must be rebuildable from storage alone (issue 24); a
rebuild is proved by comparing it with the catalog it replaces, and a restored backup
by comparing it with the live one. Either may be SQLite or PostgreSQL, so rows are
not merged in either database's own order (their collations differ): both sides go,
one row at a time, into a scratch database on disk, keyed by the table's primary key,
and SQL there finds the rows only one side holds and those whose key is on both sides
with other values. Memory stays flat whatever the size of the catalogs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from preserve.catalog import Catalog
from preserve.errors import BadArgument
from preserve.system.scratch import scratch_database

EXAMPLES = 5  # rows shown per kind of difference and table; the rest are counted

_SCHEMA = """
CREATE TABLE rows(side INTEGER NOT NULL, key TEXT NOT NULL, row TEXT NOT NULL);
"""


@dataclass
class TableDifference:
    table: str
    rows: tuple[int, int]                 # rows in this catalog, in the other
    only_here: int = 0
    only_there: int = 0
    changed: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.only_here or self.only_there or self.changed)


@dataclass
class CatalogDiff:
    here: str
    there: str
    ignored: list[str]
    tables: list[TableDifference] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return all(t.same for t in self.tables)

    @property
    def exit_code(self) -> int:
        return 0 if self.same else 1

    def to_dict(self) -> dict:
        return {"same": self.same, "here": self.here, "there": self.there,
                "ignored": self.ignored,
                "tables": [{**asdict(t), "same": t.same} for t in self.tables]}


def compare(here: Catalog, there: Catalog, ignore: list[str] | None = None, *,
            index: bool = False) -> CatalogDiff:
    """Every table of the catalog schema, row by row. `ignore`: TABLE.COLUMN names left
    out of the comparison (a surrogate number each catalog assigns, say). The search
    index (a table marked derived: made from the AIPs when a search needs it, so one
    catalog may hold it and the other not yet) only with `index`."""
    from preserve.catalog.tables import metadata

    ignored = sorted(set(ignore or []))
    known = {f"{n}.{c.name}" for n, t in metadata.tables.items() for c in t.columns}
    unknown = [i for i in ignored if i not in known]
    if unknown:
        raise BadArgument(f"--ignore {', '.join(unknown)}: no such column in the catalog",
                          hint="name a column as TABLE.COLUMN, e.g. events.seq")
    result = CatalogDiff(here.describe(), there.describe(), ignored)
    for name, table in sorted(metadata.tables.items()):
        if table.info.get("derived") and not index:
            result.ignored.append(f"{name} (an index made from the AIPs: --index compares it)")
            continue
        if table.info.get("store_answers"):  # learned again by the next quick audit
            result.ignored.append(f"{name} (what the object stores answered, not a record)")
            continue
        columns = [c.name for c in table.columns if f"{name}.{c.name}" not in ignored
                   and not c.info.get("surrogate")]  # a number each catalog gives its rows
        key = [c.name for c in table.primary_key.columns if c.name in columns] or columns
        result.tables.append(_compare_table(here, there, name, columns, key))
    return result


def _compare_table(here: Catalog, there: Catalog, name: str, columns: list[str],
                   key: list[str]) -> TableDifference:
    select = f"SELECT {', '.join(columns)} FROM {name}"
    at = [columns.index(k) for k in key]
    with scratch_database(_SCHEMA) as db:
        counts = []
        for side, catalog in enumerate((here, there)):
            counts.append(0)

            def rows(catalog=catalog, side=side):
                for row in catalog.stream(select):
                    counts[side] += 1
                    values = [_plain(v) for v in row]
                    yield side, _text([values[i] for i in at]), _text(values)

            db.executemany("INSERT INTO rows VALUES (?, ?, ?)", rows())
        db.execute("CREATE INDEX by_key ON rows(key, side)")
        diff = TableDifference(name, (counts[0], counts[1]))
        # per key: the rows each side holds under it (several where the table has no key)
        per_key = ("SELECT key, group_concat(CASE side WHEN 0 THEN row END, char(10)) AS a, "
                   "group_concat(CASE side WHEN 1 THEN row END, char(10)) AS b, "
                   "sum(side = 0) AS na, sum(side = 1) AS nb FROM "
                   "(SELECT * FROM rows ORDER BY key, side, row) GROUP BY key")
        for key_text, a, b, na, nb in db.execute(per_key):
            if na and nb and a == b:
                continue
            if na and nb and na == nb == 1:
                diff.changed += 1
                kind = f"changed {_columns_apart(columns, a, b)}"
            elif na > nb:
                diff.only_here += 1
                kind = "only here"
            else:
                diff.only_there += 1
                kind = "only there"
            if len(diff.examples) < EXAMPLES:
                diff.examples.append(f"{kind}: {dict(zip(key, json.loads(key_text), strict=True))}")
    return diff


def _columns_apart(columns: list[str], a: str, b: str) -> str:
    """The columns whose values differ between two versions of one row."""
    left, right = json.loads(a), json.loads(b)
    return ", ".join(c for c, x, y in zip(columns, left, right, strict=True) if x != y)


def _plain(value):
    """A value as both drivers give it, compared by what it is: text, a number or None
    (PostgreSQL's BIGINT and SQLite's INTEGER are the same number)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def _text(values: list) -> str:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))
