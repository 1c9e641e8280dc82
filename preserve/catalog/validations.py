"""What the checks of file content found (issue 26): format validation and virus scans,
the newest verdict of each file and check (the AIP's PREMIS events keep every one)."""

from __future__ import annotations

from collections.abc import Iterable

from preserve.catalog.database import and_where
from preserve.domain.file_checks import VALIDATION

# (version, bag path, check type, status, detail, tools, datetime, event id)
ValidationRow = tuple[int, str, str, str, str | None, str | None, str, str | None]


class Validations:
    """Validations: one part of the Catalog (preserve.catalog), on its connection."""

    def record_validations(self, aip_id: str, rows: Iterable[ValidationRow]) -> None:
        """Record verdicts, each replacing the file's earlier verdict of that check."""
        rows = [(aip_id, *r) for r in rows]
        if not rows:
            return
        with self.transaction() as db:
            db.executemany("DELETE FROM file_validations WHERE aip_id = ? AND version = ? "
                           "AND path = ? AND check_type = ?", [r[:4] for r in rows])
            db.executemany("INSERT INTO file_validations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           rows)

    def validations(self, aip_id: str, check_type: str | None = None
                    ) -> list[tuple[int, str, str, str, str | None, str | None, str]]:
        """(version, path, check type, status, detail, tools, checked) of an AIP's files."""
        sql = ("SELECT version, path, check_type, status, detail, tools, checked "
               "FROM file_validations WHERE aip_id = ?")
        args: tuple = (aip_id,)
        if check_type:
            sql += " AND check_type = ?"
            args += (check_type,)
        return [tuple(r) for r in self.execute(sql + " ORDER BY path, check_type", args)]

    def validation_groups(self, aip_ids: list[str] | None = None,
                          collection: str | None = None) -> list[tuple]:
        """(puid, mime, format, status, files, bytes) of the stored payload's format
        verdicts: the formats report's validation counts (a file with no verdict is not
        checked). Driven by the verdicts, so its cost grows with them, not with files."""
        where, args = and_where({"f.aip_id": aip_ids, "a.collection": collection})
        return [tuple(r) for r in self.execute(
            "SELECT f.puid, f.mime, f.format, v.status, COUNT(*), CAST(SUM(f.size) AS BIGINT) "
            "FROM file_validations v JOIN files f ON f.aip_id = v.aip_id AND f.version = "
            "v.version AND f.path = v.path JOIN aips a ON a.id = f.aip_id JOIN versions w ON "
            "w.aip_id = f.aip_id AND w.version = f.version AND w.state = 'stored' "
            f"WHERE v.check_type = 'validation' AND a.state = 'stored'{where} "
            "GROUP BY f.puid, f.mime, f.format, v.status", args)]

    def validation_counts(self, aip_id: str | None = None,
                          check_type: str = VALIDATION) -> dict[str, int]:
        """Files by status of one check, over one AIP or all."""
        sql = ("SELECT status, COUNT(*) FROM file_validations WHERE check_type = ?"
               + (" AND aip_id = ?" if aip_id else "") + " GROUP BY status")
        args = (check_type, aip_id) if aip_id else (check_type,)
        return {status: n for status, n in self.execute(sql, args)}

    def payload_to_validate(self, aip_ids: list[str] | None = None) -> list[tuple]:
        """(AIP, path, version holding it, size, sha512, puid, mime, libmagic's mime) of
        every stored payload file of the AIPs (all when None), by AIP and path."""
        where, args = and_where({"f.aip_id": aip_ids})
        return [tuple(r) for r in self.execute(
            "SELECT f.aip_id, f.path, f.version, f.size, f.sha512, f.puid, f.mime, "
            "f.magic_mime FROM files f JOIN aips a ON a.id = f.aip_id JOIN versions v ON "
            "v.aip_id = f.aip_id AND v.version = f.version AND v.state = 'stored' "
            f"WHERE a.state = 'stored' AND substr(f.path, 1, 5) = 'data/'{where} "
            "ORDER BY f.aip_id, f.path", args)]
