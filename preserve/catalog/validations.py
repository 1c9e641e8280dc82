"""What the checks of file content found (issue 26): format validation and virus scans,
the newest verdict of each file and check (the AIP's PREMIS events keep every one)."""

from __future__ import annotations

from collections.abc import Iterable

from preserve.catalog.database import PAYLOAD

VALIDATION = "validation"
VIRUS_CHECK = "virus check"
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

    def validation_by_format(self) -> list[tuple[str | None, str, int]]:
        """(PUID, status, files) over the payload of stored AIPs: the formats report's
        validation columns. A file with no verdict counts under "not checked"."""
        rows = self.execute(
            "SELECT f.puid, COALESCE(v.status, 'not checked'), COUNT(*) FROM files f "
            "JOIN aips a ON a.id = f.aip_id "
            "LEFT JOIN file_validations v ON v.aip_id = f.aip_id AND v.version = f.version "
            "AND v.path = f.path AND v.check_type = 'validation' "
            f"WHERE a.state = 'stored' AND {PAYLOAD} GROUP BY f.puid, v.status")
        return [tuple(r) for r in rows]

    def validation_counts(self, aip_id: str | None = None,
                          check_type: str = VALIDATION) -> dict[str, int]:
        """Files by status of one check, over one AIP or all."""
        sql = ("SELECT status, COUNT(*) FROM file_validations WHERE check_type = ?"
               + (" AND aip_id = ?" if aip_id else "") + " GROUP BY status")
        args = (check_type, aip_id) if aip_id else (check_type,)
        return {status: n for status, n in self.execute(sql, args)}
