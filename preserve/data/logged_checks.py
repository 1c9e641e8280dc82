"""Checks of file content recorded outside any version (validate-files, issue 26), applied
to a catalog rebuilt from storage: each logged validation event whose logs/ document
carries an event per file gives those files' verdicts back, in the order they were logged
(a later verdict replaces an earlier one, as it did when recorded)."""

from __future__ import annotations

import hashlib

from preserve.domain import ocfl
from preserve.domain.file_checks import VALIDATION, VIRUS_CHECK, read_check_rows
from preserve.errors import PreserveError


def apply_logged_checks(catalog, reachable: dict, entries: list[dict], problems: list[dict]
                        ) -> int:
    """Apply the per-file verdicts of every logged check's document; return how many
    verdicts. A document that cannot be read, or is not the one logged, is a problem named
    (the verdicts the versions' PREMIS gave stay)."""
    applied = 0
    for entry in entries:
        where = entry.get("record")
        if entry.get("kind") != "event" or entry.get("type") not in (VALIDATION, VIRUS_CHECK) \
                or not isinstance(where, dict) or "file" not in where:
            continue
        aip = entry["aip"]
        storage = reachable.get(where.get("location"))
        if storage is None:
            continue
        data = _read(storage, ocfl.object_root(aip) + where["file"])
        if data is None or hashlib.sha256(data).hexdigest() != where.get("sha256"):
            problems.append({"kind": "unreadable", "aip": aip, "location": storage.name,
                             "detail": f"{where['file']} (the verdicts of a validate-files "
                                       "run) cannot be read or is not the one logged"})
            continue
        rows = read_check_rows(data.decode("utf-8", "replace"))
        if not rows:
            continue
        versions = dict(catalog.execute(
            "SELECT path, MAX(version) FROM files WHERE aip_id = ? GROUP BY path", (aip,)))
        catalog.record_validations(aip, [
            (versions[r.path], r.path, r.check_type, r.status, r.detail, r.tools, r.checked,
             r.event) for r in rows if r.path in versions])
        applied += len(rows)
    return applied


def _read(storage, key: str) -> bytes | None:
    try:
        with storage.open(key) as f:
            return f.read()
    except (PreserveError, OSError):
        return None
