"""The repository's health in one report (issue 25): what it holds and how it grew, its
copies and their verification, formats by risk and what is left to migrate, its media,
restore drills, the event log's head, and the NDSA Levels of Digital Preservation v2.0
computed from that evidence (admin/ndsa.py).

Everything here comes from the catalog and the configuration, never from a live reading
(free space, SMART, reachability: `storage list` and the audits give those), and ages are
reckoned as of the newest time the catalog records: the same catalog gives the same
report, byte for byte, on any day (its figures equal those of `list`, `audit` and
`formats` on the same repository)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from preserve.admin.ndsa import assess
from preserve.planning.formats import report as formats_report
from preserve.repository import Repository
from preserve.storage.locations import location_file, location_statuses
from preserve.stores import LocalStorage

REPORT_FORMAT = 1


@dataclass
class Place:
    """Where a location's copies would burn or flood together: its `site`, else one site
    for every local disk of this repository and one per object store's endpoint and
    region (a guess, said as such in the evidence)."""
    name: str
    declared: bool


def place_of(repo: Repository, name: str, raw: dict) -> Place:
    if raw.get("site"):
        return Place(str(raw["site"]), True)
    location = repo.locations.get(name)
    if isinstance(location, LocalStorage) or raw.get("kind") == "local":
        return Place("this repository's site", False)
    settings = getattr(location, "settings", None)
    endpoint = (getattr(settings, "endpoint_url", None) or "AWS").rstrip("/")
    return Place(f"{endpoint} {getattr(settings, 'region', None) or ''}".strip(), False)


def location_files(repo: Repository) -> dict[str, dict]:
    """Every location's file, those in use and those retired, by name."""
    return {name: location_file(repo, name)
            for name in sorted({*repo.locations, *repo.retired})}


def build(repo: Repository) -> dict:
    """Every figure of the report, as JSON-ready data, in a stable order."""
    catalog = repo.catalog
    as_of = catalog.as_of()
    today = dt.date.fromisoformat(as_of[:10]) if as_of else dt.date(1970, 1, 1)
    interval = repo.policy.audit.default.interval_days
    cutoff = ((dt.datetime.fromisoformat(as_of.replace("Z", "+00:00"))
               - dt.timedelta(days=interval)).strftime("%Y-%m-%dT%H:%M:%SZ")
              if as_of else "~")
    raw = location_files(repo)
    places = {name: place_of(repo, name, cfg) for name, cfg in raw.items()}

    collections = [{"name": c, "aips": n, "files": f, "bytes": b}
                   for c, n, f, b in catalog.collections()]
    holdings = {
        "collections": collections, "aips": sum(c["aips"] for c in collections),
        "versions": catalog.stored_versions(), "files": sum(c["files"] for c in collections),
        "bytes": sum(c["bytes"] for c in collections),
        "growth": [{"month": m, "aips": n, "bytes": b} for m, n, b in catalog.growth()]}

    locations = []
    for s in location_statuses(repo, live=False, today=today):
        cfg = raw.get(s.name, {})
        lock = cfg.get("object_lock") or {}
        locations.append({
            "name": s.name, "kind": s.kind, "where": s.where, "media": s.media,
            "site": places[s.name].name, "site_declared": places[s.name].declared,
            "commissioned": s.commissioned, "age_years": s.age_years,
            "expected_lifetime_years": s.expected_lifetime_years, "in_policy": s.in_policy,
            "aip_versions": s.aip_versions, "bytes": s.bytes, "sole_copies": s.sole_copies,
            "below_policy": s.below_policy, "oldest_verified": s.oldest_verified,
            "object_lock": f"{lock.get('mode')} {lock.get('days')} days" if lock else None,
            "retired": s.retired, "retired_to": s.retired_to, "warnings": s.warnings})
    in_use = {n: places[n].name for n in repo.locations}
    copies = {"per_version": {str(k): v for k, v in catalog.copies_per_version().items()},
              "places_per_version": {str(k): v for k, v in
                                     sorted(catalog.places_per_version(in_use).items())},
              "policy_copies": repo.policy.copies,
              "policy_locations": list(repo.policy.locations[: repo.policy.copies]),
              "locations": locations}

    files, verified = catalog.file_coverage(cutoff)
    audits = [{"run": r[0], "kind": r[1], "started": r[2], "finished": r[3], "status": r[4],
               "replicas": r[5], "files": r[6], "bytes": r[7], "problems": r[8]}
              for r in catalog.last_audits()]
    repairs, repairs_failed = catalog.count_events_like("replication", "repair of")
    drills, drills_failed = catalog.count_events_like("validation", "restore drill")
    integrity = {
        "coverage": {"days": interval, "since": cutoff, "files": files, "verified": verified,
                     "share": round(verified / files, 4) if files else None},
        "audits": audits, "open_problems": audits[0]["problems"] if audits else None,
        "repairs": {"count": repairs, "failed": repairs_failed,
                    "recent": _events(catalog.events_like("replication", "repair of"))},
        "drills": {"count": drills, "failed": drills_failed,
                   "recent": _events(catalog.events_like("validation", "restore drill"))}}

    rows = formats_report(repo)
    counted = catalog.event_counts()
    migrations_refused = sum(n for t, o, n in counted if t == "migration" and o != "success")
    formats = {"rows": [r.to_dict() for r in rows],
               "to_migrate": sum(r.pending for r in rows),
               "migrated": catalog.derivations_count(), "refused": migrations_refused,
               "unidentified_files": sum(r.files for r in rows if not r.puid),
               "unrated_files": sum(r.files for r in rows if r.risk is None)}

    checkpoints = catalog.log_checkpoints()
    log = {"entries": catalog.log_size(),
           "checkpoint": {"size": checkpoints[-1][0], "root": checkpoints[-1][1],
                          "note": checkpoints[-1][2]} if checkpoints else None}
    events = [{"type": t, "outcome": o, "count": n} for t, o, n in counted]
    facts = {"format": REPORT_FORMAT, "as_of": as_of, "holdings": holdings, "copies": copies,
             "integrity": integrity, "formats": formats, "events": events, "log": log}
    facts["ndsa"] = assess(repo, facts, raw)
    return facts


def _events(rows) -> list[dict]:
    return [{"aip": a, "datetime": d, "outcome": o, "detail": t, "outcome_detail": od}
            for a, d, o, t, od in rows]
