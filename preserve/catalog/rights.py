"""Rights statements (issue 28): the newest one of each AIP governs (domain/rights.py)."""

from __future__ import annotations

from preserve.domain.rights import RightsStatement


class Rights:
    """Rights: one part of the Catalog (preserve.catalog), on its connection."""

    def rights_statement(self, aip_id: str) -> RightsStatement | None:
        """The AIP's governing statement: the newest of its stored versions'."""
        row = self.execute(
            "SELECT r.body FROM rights_statements r JOIN versions v ON v.aip_id = r.aip_id "
            "AND v.version = r.version AND v.state = 'stored' WHERE r.aip_id = ? "
            "ORDER BY r.version DESC, r.recorded DESC LIMIT 1", (aip_id,)).fetchone()
        return RightsStatement.from_json(row[0]) if row else None

    def rights_history(self, aip_id: str) -> list[tuple[int, RightsStatement]]:
        """(version, statement) of every statement recorded for the AIP, oldest first."""
        return [(v, RightsStatement.from_json(body)) for v, body in self.execute(
            "SELECT r.version, r.body FROM rights_statements r JOIN versions v ON v.aip_id = "
            "r.aip_id AND v.version = r.version AND v.state = 'stored' WHERE r.aip_id = ? "
            "ORDER BY r.version, r.recorded", (aip_id,))]

    def aips_with_rights(self) -> list[str]:
        """Stored AIPs that have a rights statement."""
        return [r[0] for r in self.execute(
            "SELECT DISTINCT r.aip_id FROM rights_statements r JOIN aips a ON a.id = r.aip_id "
            "WHERE a.state = 'stored' ORDER BY r.aip_id")]

    def last_decisions(self, prefix: str) -> dict[str, str]:
        """{AIP: the state its last review event recorded} (events whose detail begins
        with `prefix`, then the state)."""
        out: dict[str, str] = {}
        for aip_id, detail in self.execute(
                "SELECT aip_id, detail FROM events WHERE type = 'policy assignment' AND "
                "substr(detail, 1, ?) = ? ORDER BY seq", (len(prefix), prefix)):
            out[aip_id] = detail[len(prefix):].split(" ", 1)[0]
        return out
