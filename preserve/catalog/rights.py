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
