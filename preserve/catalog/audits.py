"""Audits: runs, the check of each replica file, the problems found, and when each copy
was last verified."""

from __future__ import annotations

from collections.abc import Iterator

from preserve.catalog.database import (
    LAST_CHECK,
    RECHECK,
    VERIFIED,
    and_where,
    insert_events,
    insert_problems,
    log_replica,
    queue_log_entry,
    set_checked,
)
from preserve.domain.model import EventRecord, ReplicaAuditState


class Audits:
    """Audits: one part of the Catalog (preserve.catalog), on its connection."""

    def start_audit(self, run_id: str, started: str, kind: str, scope: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO audit_runs VALUES (?, ?, NULL, ?, 'running', 0, 0, 0, ?)",
                       (run_id, started, kind, scope))

    def unfinished_audit(self, scope: str) -> tuple[str, str] | None:
        """(run id, start) of the latest audit with this scope that never finished (Ctrl-C,
        a kill, a crash, a budget spent), if nothing with the same scope finished since."""
        row = self.execute(
            "SELECT id, started, status FROM audit_runs WHERE scope = ? "
            "ORDER BY started DESC, id DESC LIMIT 1", (scope,)).fetchone()
        return (row[0], row[1]) if row and row[2] in ("running", "interrupted") else None

    def record_checks(self, run_id: str, replica: tuple[str, int, str], when: str,
                      verified: list[str], failed: list[str], problems: list[tuple]) -> None:
        """Files just checked at one replica, with the problems found: committed together
        and often, so that an interrupted audit resumes after the last file it recorded."""
        with self.transaction() as db:
            insert_problems(db, run_id, problems)
            set_checked(db, replica, [(path, when) for path in verified] +
                         [(path, RECHECK) for path in failed], log=False)

    def finish_replica_audit(self, replica: tuple[str, int, str], since: str,
                             damaged_structure: bool, events: list[EventRecord]) -> None:
        """Close one replica's audit. When every file has been verified since `since` (the
        run's start), the per-file rows fold into the replica's last audit; damage outside
        the payload (an unexpected file, a tag file) makes the whole replica due again."""
        with self.transaction() as db:
            insert_events(db, events)
            oldest = db.execute(
                f"SELECT MIN({VERIFIED}) FROM replicas r JOIN files f ON f.aip_id = r.aip_id "
                "AND f.version = r.version LEFT JOIN file_checks c ON c.aip_id = r.aip_id AND "
                "c.version = r.version AND c.location = r.location AND c.path = f.path WHERE "
                "r.aip_id = ? AND r.version = ? AND r.location = ? AND "
                "(c.checked IS NULL OR c.checked != '')", replica).fetchone()[0]
            if oldest is None or oldest >= since:
                db.execute("UPDATE replicas SET last_audit = ? WHERE aip_id = ? AND version = ? "
                           "AND location = ?", (oldest or since, *replica))
                db.execute("DELETE FROM file_checks WHERE aip_id = ? AND version = ? AND "
                           "location = ? AND checked != ''", replica)
            if damaged_structure:
                db.execute("UPDATE replicas SET last_audit = ? WHERE aip_id = ? AND version = ? "
                           "AND location = ?", (RECHECK, *replica))
            last = db.execute("SELECT last_audit FROM replicas WHERE aip_id = ? AND version = ? "
                              "AND location = ?", replica).fetchone()
            checks = db.execute("SELECT path, checked FROM file_checks WHERE aip_id = ? AND "
                                "version = ? AND location = ? ORDER BY path", replica).fetchall()
            # the replica's rows as the audit leaves them (after a full pass: none)
            log_replica(db, replica, "audited", last_audit=last[0] if last else None,
                        checks=[list(c) for c in checks])

    def record_audit_problems(self, run_id: str, problems: list[tuple]) -> None:
        with self.transaction() as db:
            insert_problems(db, run_id, problems)

    def mark_verified(self, replica: tuple[str, int, str], paths: list[str], when: str) -> None:
        """Files re-read and found good outside an audit (after a repair)."""
        with self.transaction() as db:
            set_checked(db, replica, [(path, when) for path in paths])

    def finish_audit(self, run_id: str, finished: str, status: str, replicas: int, files: int,
                     nbytes: int) -> None:
        """`status` "interrupted" leaves the run open for the next one with the same scope."""
        with self.transaction() as db:
            db.execute("UPDATE audit_runs SET finished = ?, status = ?, replicas = replicas + ?, "
                       "files = files + ?, bytes = bytes + ? WHERE id = ?",
                       (finished, status, replicas, files, nbytes, run_id))
            run = db.execute("SELECT * FROM audit_runs WHERE id = ?", (run_id,)).fetchone()
            problems = db.execute("SELECT * FROM audit_problems WHERE run_id = ? ORDER BY "
                                  "aip_id, version, location, path, kind, detail",
                                  (run_id,)).fetchall()
            queue_log_entry(db, None, {"kind": "audit-run", "run": list(run),
                                       "problems": [list(p) for p in problems]})

    def audit_problems(self, run_id: str) -> list[tuple]:
        """Every problem a run recorded (a resumed run included), each once; a payload file
        found damaged counts only while it still awaits a good check (RECHECK): one repaired
        or verified good since is not reported again."""
        return [tuple(r) for r in self.execute(
            "SELECT p.aip_id, p.version, p.location, p.path, p.kind, MIN(p.detail) "
            "FROM audit_problems p WHERE p.run_id = ? AND (p.path IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM files f WHERE f.aip_id = p.aip_id AND f.version = p.version AND "
            "f.path = p.path) OR EXISTS (SELECT 1 FROM file_checks c WHERE c.aip_id = p.aip_id "
            "AND c.version = p.version AND c.location = p.location AND c.path = p.path AND "
            "c.checked = '')) GROUP BY p.aip_id, p.version, p.location, p.path, p.kind "
            "ORDER BY p.aip_id, p.version, p.location, p.path, p.kind", (run_id,))]

    def replica_audit_states(self, since: str = "~", *, aips: list[str] | None = None,
                             location: str | None = None) -> list[ReplicaAuditState]:
        """Every verified replica of a stored AIP (of `aips`, at `location`, when given): its
        files, bytes, when its least recently verified file was last verified, and how many
        files were verified since `since`. An audit of one AIP copy (a job) reads only its
        rows, not the whole catalog's."""
        where, args = and_where({"r.aip_id": aips, "r.location": location})
        args = [since, *args]
        rows = self.execute(
            "SELECT r.aip_id, r.version, r.location, r.key, a.collection, r.stored, "
            f"r.last_audit, COUNT(f.path), CAST(COALESCE(SUM(f.size), 0) AS BIGINT), "
            f"MIN({LAST_CHECK}), CAST(COALESCE(SUM(CASE WHEN {VERIFIED} >= ? THEN 1 ELSE 0 "
            "END), 0) AS BIGINT) FROM replicas r JOIN aips a ON "
            "a.id = r.aip_id LEFT JOIN files f ON f.aip_id = r.aip_id AND f.version = r.version "
            "LEFT JOIN file_checks c ON c.aip_id = r.aip_id AND c.version = r.version AND "
            f"c.location = r.location AND c.path = f.path WHERE a.state = 'stored'{where} "
            "GROUP BY r.aip_id, r.version, r.location, r.key, a.collection, r.stored, r.last_audit "
            "ORDER BY 10, r.aip_id, r.location", args)
        return [ReplicaAuditState(*r) for r in rows]

    def replica_file_checks(self, replica: tuple[str, int, str],
                            before: str) -> Iterator[tuple[str, int, str]]:
        """(path, size, last verified) of a replica's files not verified since `before`,
        least recently verified first."""
        yield from self.stream(
            f"SELECT f.path, f.size, {LAST_CHECK} AS last FROM replicas r JOIN files f ON "
            "f.aip_id = r.aip_id AND f.version = r.version LEFT JOIN file_checks c ON "
            "c.aip_id = r.aip_id AND c.version = r.version AND c.location = r.location AND "
            "c.path = f.path WHERE r.aip_id = ? AND r.version = ? AND r.location = ? AND "
            f"{VERIFIED} < ? ORDER BY last, f.path", (*replica, before))

    def all_file_checks(self, before: str) -> Iterator[tuple[str, int, str, str, int, str]]:
        """(aip, version, location, path, size, last verified) of every replica file not
        verified since `before`, least recently verified first: the order sampling takes."""
        yield from self.stream(
            f"SELECT r.aip_id, r.version, r.location, f.path, f.size, {LAST_CHECK} AS last "
            "FROM replicas r JOIN aips a ON a.id = r.aip_id JOIN files f ON "
            "f.aip_id = r.aip_id AND f.version = r.version LEFT JOIN file_checks c ON "
            "c.aip_id = r.aip_id AND c.version = r.version AND c.location = r.location AND "
            f"c.path = f.path WHERE a.state = 'stored' AND {VERIFIED} < ? "
            "ORDER BY last, r.aip_id, r.version, r.location, f.path", (before,))
