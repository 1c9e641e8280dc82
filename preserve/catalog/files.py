"""Files of AIP versions: their digests and identification, what formats are held, and
what was migrated from what."""

from __future__ import annotations

from collections.abc import Iterator

from preserve.catalog.database import DIGEST_COLUMNS, FILE_COLUMNS, IN_STATE, PAYLOAD, and_where, row_digests
from preserve.domain.model import FileRecord


class Files:
    """Files: one part of the Catalog (preserve.catalog), on its connection."""

    def files(self, aip_id: str, version: int) -> Iterator[FileRecord]:
        """The payload files of the bag of `version` (whichever version holds each)."""
        cur = self.stream(f"SELECT {', '.join('f.' + c for c in FILE_COLUMNS)} FROM files f "
                              f"WHERE {IN_STATE} AND {PAYLOAD} ORDER BY f.path",
                              (aip_id, version))
        for row in cur:
            d = dict(zip(FILE_COLUMNS, row, strict=True))
            yield FileRecord(digests=row_digests([d.pop(k) for k in DIGEST_COLUMNS]), **d)

    def file_digests(self, aip_id: str, version: int, path: str) -> dict[str, str] | None:
        """The digests recorded for one content file of `version` (bag path), or None."""
        row = self.execute(f"SELECT {', '.join(DIGEST_COLUMNS)} FROM files WHERE aip_id = ? "
                              "AND version = ? AND path = ?", (aip_id, version, path)).fetchone()
        return None if row is None else row_digests(row)

    def holders(self, sha256: str) -> list[tuple[str, int, str]]:
        """(AIP, version, bag path) of every stored file with this sha256: whether a file
        offered for ingest is held already, and where."""
        return [tuple(r) for r in self.execute(
            "SELECT f.aip_id, f.version, f.path FROM files f JOIN aips a ON a.id = f.aip_id "
            "WHERE f.sha256 = ? AND a.state = 'stored' ORDER BY f.aip_id, f.version, f.path",
            (sha256.lower(),))]

    def format_counts(self, aip_id: str | None = None) -> list[tuple[str | None, str | None, int, int]]:
        sql = ("SELECT f.puid, f.format, COUNT(*), CAST(SUM(f.size) AS BIGINT) FROM files f JOIN aips a "
               f"ON a.id = f.aip_id WHERE a.state = 'stored' AND {PAYLOAD}")
        args: tuple = ()
        if aip_id:
            sql += " AND f.aip_id = ?"
            args = (aip_id,)
        sql += " GROUP BY f.puid, f.format ORDER BY COUNT(*) DESC, f.puid"
        return [tuple(r) for r in self.execute(sql, args)]

    def payload_for_policy(self, aip_ids: list[str] | None = None,
                           collection: str | None = None,
                           puids: list[str] | None = None,
                           mimes: list[str] | None = None) -> Iterator[tuple]:
        """(AIP, collection, path, version holding it, size, sha512, puid, mime, format, the
        derivative made from it or None) of every stored payload file, by AIP and path (of
        `puids`, or, unidentified, of `mimes`, where either is given)."""
        sql = ("SELECT f.aip_id, a.collection, f.path, f.version, f.size, f.sha512, f.puid, "
               "f.mime, f.format, (SELECT d.derivative FROM derivations d JOIN versions w ON "
               "w.aip_id = d.aip_id AND w.version = d.version AND w.state = 'stored' "
               "WHERE d.aip_id = f.aip_id AND d.source = f.path ORDER BY d.version LIMIT 1) "
               "FROM files f JOIN aips a ON a.id = f.aip_id JOIN versions v ON "
               "v.aip_id = f.aip_id AND v.version = f.version AND v.state = 'stored' "
               f"WHERE a.state = 'stored' AND {PAYLOAD}")
        where, args = and_where({"f.aip_id": aip_ids, "a.collection": collection})
        if puids is not None or mimes is not None:
            ask = [f"f.puid IN ({', '.join('?' * len(puids))})"] if puids else []
            if mimes:
                ask.append(f"(f.puid IS NULL AND f.mime IN ({', '.join('?' * len(mimes))}))")
            where += f" AND ({' OR '.join(ask) or '1 = 0'})"
            args = [*args, *(puids or []), *(mimes or [])]
        yield from self.execute(sql + where + " ORDER BY f.aip_id, f.path", args)

    def payload_format_groups(self, aip_ids: list[str] | None = None,
                              collection: str | None = None) -> list[tuple]:
        """(puid, mime, format, files, bytes) of the stored payload by identification: the
        formats report sums in the database and looks at single files only where a rule
        needs them. For the whole repository, the file rows whose version is stored (a
        semi-join both databases hash: under a second for a million rows, where a join
        per row took three on PostgreSQL). Grouped by MIME type first: grouped by PUID
        first, SQLite walks the PUID index and reads every row out of order."""
        group = "GROUP BY f.mime, f.puid, f.format"
        head = "SELECT f.puid, f.mime, f.format, COUNT(*), CAST(SUM(f.size) AS BIGINT) "
        if aip_ids is None and collection is None:
            rows = self.execute(
                f"{head}FROM files f WHERE {PAYLOAD} AND EXISTS (SELECT 1 FROM versions w "
                "WHERE w.aip_id = f.aip_id AND w.version = f.version AND w.state = 'stored') "
                "AND f.aip_id NOT IN (SELECT id FROM aips WHERE state <> 'stored') "
                f"{group}")
        else:
            where, args = and_where({"f.aip_id": aip_ids, "a.collection": collection})
            rows = self.execute(
                f"{head}FROM files f JOIN aips a ON a.id = f.aip_id JOIN versions v ON "
                "v.aip_id = f.aip_id AND v.version = f.version AND v.state = 'stored' WHERE "
                f"a.state = 'stored' AND {PAYLOAD}{where} {group}", args)
        return sorted((tuple(r) for r in rows), key=_identity)

    def payload_format_derived(self, aip_ids: list[str] | None = None,
                               collection: str | None = None) -> dict[tuple, int]:
        """{(puid, mime, format): stored payload files a migration has derived a file
        from}; only the AIPs that hold a derivation are looked into."""
        where, args = and_where({"f.aip_id": aip_ids, "a.collection": collection})
        return {tuple(r[:3]): r[3] for r in self.execute(
            "SELECT f.puid, f.mime, f.format, COUNT(*) FROM files f JOIN aips a ON a.id = "
            "f.aip_id JOIN versions v ON v.aip_id = f.aip_id AND v.version = f.version AND "
            f"v.state = 'stored' WHERE a.state = 'stored' AND {PAYLOAD}{where} AND f.aip_id IN "
            "(SELECT aip_id FROM derivations) AND EXISTS (SELECT 1 FROM derivations d JOIN "
            "versions w ON w.aip_id = d.aip_id AND w.version = d.version AND w.state = "
            "'stored' WHERE d.aip_id = f.aip_id AND d.source = f.path) "
            "GROUP BY f.puid, f.mime, f.format", args)}

    def derivations(self, aip_id: str) -> list[tuple[int, str, str, str]]:
        """(version, source, derivative, rule) of each migration of a stored version."""
        return [tuple(r) for r in self.execute(
            "SELECT d.version, d.source, d.derivative, d.rule FROM derivations d JOIN versions v "
            "ON v.aip_id = d.aip_id AND v.version = d.version AND v.state = 'stored' "
            "WHERE d.aip_id = ? ORDER BY d.version, d.source", (aip_id,))]

    def set_identification(self, aip_id: str, version: int, path: str, puid, format_name,
                           format_version, mime, basis, warning, confidence) -> None:
        """A payload file identified again (reidentify): its row takes the new answer."""
        with self.transaction() as db:
            db.execute("UPDATE files SET puid = ?, format = ?, format_version = ?, mime = ?, "
                       "basis = ?, warning = ?, confidence = ? WHERE aip_id = ? AND version = ? "
                       "AND path = ?", (puid, format_name, format_version, mime, basis, warning,
                                        confidence, aip_id, version, path))


def _identity(group: tuple) -> tuple:
    """A format group's place in the report: by PUID, MIME type, name; none last."""
    return tuple((value is None, value or "") for value in group[:3])
