"""The NDSA Levels of Digital Preservation v2.0 (2019), computed from evidence, not declared.

The matrix has five areas (storage, integrity, control, metadata, content) and four
levels (1 know your content, 2 protect, 3 monitor, 4 sustain). Each level of an area
lists activities (abridged here from the v2.0 matrix); each activity is scored from what
the report's facts and the configuration show: met, partly, or not met, with the evidence
and, where it falls short, what would meet it. An activity no repository software can
show (a write-blocker on original media, relationships with content creators) is
"outside": named, never counted. A cell is met when every activity it counts is met, not
met when none is even partly, else partly.
"""

from __future__ import annotations

MET, PARTLY, NOT_MET, OUTSIDE = "met", "partly", "not met", "outside"
AREAS = ("storage", "integrity", "control", "metadata", "content")
LEVELS = {1: "Know your content", 2: "Protect your content", 3: "Monitor your content",
          4: "Sustain your content"}


def _share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,}"


def _at_least(dist: dict[str, int], n: int) -> tuple[int, int]:
    """(versions with at least n, all versions) of a {count: versions} distribution."""
    total = sum(dist.values())
    return sum(v for k, v in dist.items() if int(k) >= n), total


def _by_count(have: int, total: int, what: str, missing: str) -> tuple[str, str, str]:
    if total and have == total:
        return MET, f"{what}: {_share(have, total)}", ""
    return (PARTLY if have else NOT_MET), f"{what}: {_share(have, total)}", missing


def assess(repo, facts: dict, location_files: dict[str, dict]) -> list[dict]:
    """The matrix: one entry per area and level, its activities scored."""
    copies, integrity = facts["copies"], facts["integrity"]
    holdings, formats = facts["holdings"], facts["formats"]
    used = [loc for loc in copies["locations"] if not loc["retired"]]
    per = copies["per_version"]
    places = copies["places_per_version"]
    aips = holdings["aips"]
    events = {(e["type"], e["outcome"]): e["count"] for e in facts["events"]}
    count = {t: sum(n for (tt, _), n in events.items() if tt == t) for t, _ in events}
    catalog = repo.catalog

    two, total = _at_least(per, 2)
    three, _ = _at_least(per, 3)
    two_places, _ = _at_least(places, 2)
    three_places, _ = _at_least(places, 3)
    media_named = [loc for loc in used if loc["media"]]
    sites_named = [loc for loc in used if loc["site_declared"]]
    lifetimes = [loc for loc in used if loc["commissioned"] and loc["expected_lifetime_years"]]
    aged = [loc["name"] for loc in used if loc["aip_versions"] and loc["age_years"] is not None
            and loc["expected_lifetime_years"]
            and loc["age_years"] >= loc["expected_lifetime_years"]]
    media_kinds = {(loc["media"] or loc["kind"]).lower() for loc in used if loc["aip_versions"]}
    locked = [loc["name"] for loc in used if loc["object_lock"]]
    coverage = integrity["coverage"]
    stale = coverage["files"] - coverage["verified"]
    site_note = ("" if len(sites_named) == len(used) else
                 " (a location without 'site' counts as one site with the other local disks, "
                 "or as its store's endpoint and region)")

    def storage():
        yield 1, "Two complete copies in separate locations", *_by_count(
            two, total, "AIP versions with two or more copies",
            "'preserve storage add' a second location, list it in the policy, "
            "'preserve replicate'")
        yield 1, "Document all storage media where content is stored", *_by_count(
            len(media_named), len(used), "locations whose medium is named (media:)",
            "name each location's medium in its locations/NAME.yaml")
        yield 1, "Put content into stable storage", MET, (
            "every AIP is an OCFL 1.1 object whose versions are BagIt bags, each copy "
            "verified before it is recorded"), ""
        yield 2, "Three complete copies", *_by_count(
            three, total, "AIP versions with three or more copies",
            "a third location in the policy (replication.copies: 3)")
        yield 2, "At least one copy in a separate geographic location", *_by_count(
            two_places, total, "AIP versions with copies in two or more places" + site_note,
            "a location at another site (e.g. an object store elsewhere), with site: named")
        yield 2, "Document storage and media, with what they need to work", *_by_count(
            len(lifetimes), len(used), "locations with a commissioned date and a service life",
            "commissioned: and a medium with a service life (policy media:) for each")
        yield 3, "At least one copy with a different disaster threat", *_by_count(
            two_places, total, "AIP versions held in two or more sites" + site_note,
            "copies at a site with another disaster threat, its site: named")
        yield 3, "At least one copy on a different storage media type", (
            MET if len(media_kinds) >= 2 else NOT_MET), (
            f"media holding copies: {', '.join(sorted(media_kinds)) or 'none'}"), (
            "" if len(media_kinds) >= 2 else "a location on another medium (tape, optical, "
            "an object store)")
        yield 3, "Track the obsolescence of storage and media", *_by_count(
            len(lifetimes), len(used), "locations whose age is tracked against a service life",
            "commissioned: and expected_lifetime_years (or a policy default) for each")
        yield 4, "At least three copies, each with a different disaster threat", *_by_count(
            three_places, total, "AIP versions held in three or more sites" + site_note,
            "a third site")
        yield 4, "Maximise storage diversification", (
            MET if len(media_kinds) >= 2 and three_places == total and total else
            PARTLY if len(media_kinds) >= 2 or two_places else NOT_MET), (
            f"{len(media_kinds)} media type(s); {_share(three_places, total)} versions in 3+ "
            "sites"), "copies on several media at three sites"
        yield 4, "Plan and execute actions against storage obsolescence", (
            NOT_MET if aged else MET if lifetimes else PARTLY), (
            f"locations past their service life still holding copies: {', '.join(aged)}"
            if aged else "no location holding copies is past its service life"), (
            "'preserve storage migrate' their copies to new media with --retire"
            if aged else "")

    def integrity_rows():
        ingested = count.get("ingestion", 0)
        yield 1, "Verify fixity information supplied with content, generate it if missing", \
            *_by_count(aips - catalog.aips_without_event("message digest calculation"), aips,
                       "AIPs whose digests were computed (and a supplied bag's verified) at "
                       "ingest", "re-ingest the AIPs without a digest event")
        yield 1, "Virus-check all content", *(
            (MET, f"virus check events: {count['virus check']:,}", "")
            if count.get("virus check") else
            (NOT_MET, "no virus check event recorded", "virus checks at ingest (issue 26)"))
        yield 2, "Verify fixity on every transfer and copy", *_by_count(
            total if total else 0, total, "AIP version copies recorded only once verified "
            "(replication, migration and repair verify before recording)", "")
        yield 2, "Use write-blockers with original media", OUTSIDE, (
            "done before ingest, outside preserve"), ""
        yield 2, "Back up fixity information, kept apart from the content", *_by_count(
            two, total, "versions whose manifests are in two or more copies (and in the "
            "catalog)", "a second copy of every AIP")
        yield 3, "Verify fixity at fixed intervals", *_by_count(
            coverage["verified"], coverage["files"],
            f"copies' files verified in the {coverage['days']:g} days the audit policy "
            "allows", f"{stale:,} file(s) overdue: 'preserve audit --due' from cron")
        yield 3, "Keep logs of fixity checks; audit on demand", (
            MET if count.get("fixity check") else NOT_MET), (
            f"fixity check events: {count.get('fixity check', 0):,}; 'preserve audit' on "
            "demand"), "" if count.get("fixity check") else "run 'preserve audit'"
        yield 4, "Verify fixity in response to events", MET, (
            "every copy, repair and migration is re-hashed before it is recorded; "
            f"{ingested:,} ingest(s) verified"), ""
        yield (4, "Replace or repair corrupted content",
               MET if two == total and total else PARTLY if two else NOT_MET,
               f"{integrity['repairs']['count']:,} repair(s) done; "
               f"{_share(two, total)} versions have a second copy to repair from",
               "" if two == total else "a second copy of every AIP")
        yield 4, "No one person can write to every copy", (
            MET if locked else NOT_MET), (
            f"write-once (Object Lock) at: {', '.join(locked)}" if locked
            else "no location is write-once"), (
            "" if locked else "an object store with Object Lock (storage add --lock-mode)")

    def control():
        logged = facts["log"]["entries"]
        anon = catalog.events_without_agent()
        drills = integrity["drills"]
        yield 1, "Decide who may read, write, move and delete content", PARTLY, (
            "only preserve writes the locations (its keys and configuration owner-only)"), (
            "rights and access as data (issue 28)")
        yield 2, "Document and apply those permissions", PARTLY, (
            "credentials come from the environment or a profile, never the configuration"), (
            "access rules as data (issue 28)")
        yield 3, "Log who did what, with the agents", (
            MET if logged and not anon else PARTLY if logged else NOT_MET), (
            f"{logged:,} signed event log entries; events without an agent: {anon:,}"), (
            "" if logged and not anon else "events without an agent predate the log")
        yield 4, "Review the logs periodically", (
            MET if coverage["files"] and coverage["verified"] == coverage["files"] else
            PARTLY if facts["integrity"]["audits"] else NOT_MET), (
            "every audit checks each copy's history against the signed log; "
            f"{len(facts['integrity']['audits'])} recent audit run(s), {drills['count']:,} "
            "restore drill(s)"), "'preserve log verify' and audits on schedule"

    def metadata():
        untitled = catalog.untitled_aips()
        yield 1, "Inventory of content and its storage locations", MET, (
            f"the catalog lists {aips:,} AIPs and every copy's location"), ""
        yield 1, "Back up the inventory, one copy apart from the content", *_by_count(
            two, total, "versions whose object (inventory, PREMIS, bag) is in two or more "
            "places, from which 'preserve catalog rebuild' restores the catalog",
            "a second location")
        yield 2, "Enough metadata to know what the content is", *_by_count(
            aips - untitled, aips, "AIPs with a title (plus technical and PREMIS metadata)",
            "'preserve describe' the untitled AIPs")
        yield 3, "Apply metadata standards; find and fill gaps", *_by_count(
            aips - catalog.aips_without_event("format identification"), aips,
            "AIPs described in PREMIS 3, BagIt and OCFL, formats identified",
            "'preserve reidentify' the AIPs without an identification")
        yield 4, "Record preservation actions and when they happened", *_by_count(
            aips - catalog.aips_without_event("ingestion"), aips,
            "AIPs whose PREMIS events record each action with its time", "")

    def content():
        rows = formats["rows"]
        held = sum(r["files"] for r in rows)
        yield 1, "Document file formats and how they were identified", *_by_count(
            held - formats["unidentified_files"], held,
            "files identified (siegfried PRONOM, libmagic), with the identification event",
            "formats preserve could not identify: add signatures or a rule by MIME type")
        yield 2, "Verify file formats", PARTLY, (
            "identified by signature; validation at ingest is to come"), (
            "format validation at ingest (issue 26)")
        yield 2, "Relationships with content creators", OUTSIDE, "outside preserve", ""
        yield 3, "Monitor for obsolescence", *_by_count(
            held - formats["unrated_files"], held, "files whose format the format policy "
            "rates for risk", "rules in policies/formats.yaml for the unrated formats")
        pending = formats["to_migrate"]
        yield 4, "Migrate, normalise or emulate so content stays usable", (
            MET if not pending else PARTLY if formats["migrated"] else NOT_MET), (
            f"{formats['migrated']:,} file(s) migrated; {pending:,} awaiting migration"), (
            "" if not pending else "'preserve migrate --apply'")

    sources = {"storage": storage(), "integrity": integrity_rows(), "control": control(),
               "metadata": metadata(), "content": content()}
    matrix = []
    for area in AREAS:
        cells: dict[int, list[dict]] = {n: [] for n in LEVELS}
        for level, activity, status, evidence, missing in sources[area]:
            cells[level].append({"activity": activity, "status": status,
                                 "evidence": evidence, "missing": missing})
        for level, activities in cells.items():
            matrix.append({"area": area, "level": level, "name": LEVELS[level],
                           "status": _cell(activities), "activities": activities})
    return matrix


def _cell(activities: list[dict]) -> str:
    scored = [a["status"] for a in activities if a["status"] != OUTSIDE]
    if scored and all(s == MET for s in scored):
        return MET
    return NOT_MET if all(s == NOT_MET for s in scored) else PARTLY


def level_reached(matrix: list[dict], area: str) -> int:
    """The highest level whose cell, and every cell below it, is met."""
    reached = 0
    for level in sorted(LEVELS):
        cell = next(c for c in matrix if c["area"] == area and c["level"] == level)
        if cell["status"] != MET:
            break
        reached = level
    return reached
