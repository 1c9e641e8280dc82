"""What formats the repository holds, how much is at risk, and identification again.

`report` answers the archivist's first question about obsolescence: per format held
(PRONOM PUID, or MIME type where siegfried named none), how many files and bytes,
the policy's risk and action, how many files still await migration, and whether the
pathway works on this machine (each tool found, with its version).

`reidentify` runs siegfried and libmagic again on the stored files (after a PRONOM
signature update, say): files whose PUID changed are reported, their catalog rows
take the new answer, and a PREMIS format identification event per AIP records old
and new (in the catalog and the object's logs/; the versions are not rewritten). The
policy is then applied to the new answer: a file may now be due for migration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.identify import identify_paths, siegfried_environment, siegfried_info
from preserve.domain.names import display
from preserve.domain.premis import Agent, Event
from preserve.domain.progress import Progress, Silent
from preserve.errors import FixityMismatch
from preserve.pipeline.file_verdicts import ENCRYPTED, INVALID, VALID
from preserve.planning.migrate import DEFERRED, UNPROVEN, format_policy, last_attempt, rule_of
from preserve.repository import Repository
from preserve.storage.object_log import record_event
from preserve.storage.versions import verified_local
from preserve.system.tools import tool_version

BATCH = 500


@dataclass
class FormatRow:
    puid: str | None
    name: str | None
    mime: str | None
    files: int = 0
    bytes: int = 0
    risk: str | None = None       # None: no rule of the policy names this format
    action: str | None = None
    rule: str | None = None
    target: list[str] = field(default_factory=list)
    pending: int = 0              # files the policy would migrate that have no derivative
    failed: int = 0               # of those, the last migration's derivative was wrong
    unproven: int = 0             # ... or could not be proven equal to the source
    deferred: int = 0             # ... or an archivist decided to leave it for now
    pathway: str | None = None
    tools: dict[str, str | None] = field(default_factory=dict)  # tool -> version (None: absent)
    # format validation's verdicts (issue 26); files with none are not checked
    valid: int = 0
    invalid: int = 0
    encrypted: int = 0

    @property
    def not_checked(self) -> int:
        return self.files - self.valid - self.invalid - self.encrypted

    @property
    def pathway_works(self) -> bool | None:
        return None if self.pathway is None else all(self.tools.values())

    def to_dict(self) -> dict:
        return {**asdict(self), "pathway_works": self.pathway_works,
                "not_checked": self.not_checked}


def report(repo: Repository, refs: list[str] | None = None,
           collection: str | None = None) -> list[FormatRow]:
    """One row per format held, the riskiest and largest first. Files, bytes and what
    awaits migration are summed in the database; single files are looked at only where
    a format's last migration attempts are to be told apart (failed, unproven, deferred:
    the AIPs with such attempts) or its rule depends on each file's streams (issue 25:
    the health report of a million files)."""
    policy = format_policy(repo)
    ids = [repo.catalog.resolve(r) for r in refs] if refs else None
    rows: dict[tuple, FormatRow] = {}
    derived = repo.catalog.payload_format_derived(ids, collection)
    migrated: set[tuple] = set()  # (puid, mime) of the formats the policy migrates
    video: set[tuple] = set()     # ... whose rule depends on the file's streams
    for puid, mime, fmt, files, size in repo.catalog.payload_format_groups(ids, collection):
        rule = policy.rule_for(puid, mime)
        if rule is not None and rule.streams == "video":
            video.add((puid, mime))
            continue
        row = _row(rows, policy, rule, puid, mime, fmt)
        row.files += files
        row.bytes += size
        if row.action == "migrate":
            row.pending += files - derived.get((puid, mime, fmt), 0)
            migrated.add((puid, mime))
    attempts = repo.catalog.migration_attempts()
    if video:
        _file_by_file(repo, policy, rows, ids, collection, video, attempts, count=True)
    tried = sorted(set(attempts) & set(ids) if ids is not None else attempts)
    if migrated and tried:
        _file_by_file(repo, policy, rows, tried, collection, migrated, attempts, count=False)
    _verdicts(repo, policy, rows, ids, collection)
    order = {"high": 0, "medium": 1, "low": 2, None: 3}
    return sorted((r for r in rows.values() if r.files),
                  key=lambda r: (order[r.risk], -r.bytes, r.puid or ""))


# Files validation found damaged or encrypted are at high risk whatever their format's
# usual risk: they get a row of their own (issue 26). The action is what an archivist does.
AT_RISK_ROWS = {INVALID: ("damaged (validation)", "replace from the producer"),
                ENCRYPTED: ("encrypted (validation)", "obtain the key")}


def _verdicts(repo, policy, rows: dict, ids, collection) -> None:
    """Each format's verdict counts; damaged and encrypted files moved to a high-risk row."""
    for puid, mime, fmt, status, files, size in repo.catalog.validation_groups(ids, collection):
        rule = policy.rule_for(puid, mime)
        row = rows.get((puid, None if puid else mime, rule.name if rule else None))
        if row is None:  # a rule by streams: the first row of the format
            row = next((r for k, r in rows.items() if k[:2] == (puid, None if puid else mime)
                        ), None) or _row(rows, policy, rule, puid, mime, fmt)
        if status not in AT_RISK_ROWS:
            if status == VALID:
                row.valid += files
            continue
        row.files -= files
        row.bytes -= size or 0
        if row.action == "migrate":  # a damaged file is not migrated: it awaits a good copy
            row.pending = max(0, row.pending - files)
        name, action = AT_RISK_ROWS[status]
        key = (puid, None if puid else mime, name)
        risky = rows.get(key) or rows.setdefault(key, FormatRow(puid, fmt, mime, risk="high",
                                                                 action=action, rule=name))
        risky.files += files
        risky.bytes += size or 0
        setattr(risky, status, getattr(risky, status) + files)


def _row(rows: dict, policy, rule, puid, mime, fmt) -> FormatRow:
    key = (puid, None if puid else mime, rule.name if rule else None)
    row = rows.get(key)
    if row is None:
        row = rows[key] = FormatRow(puid, fmt, mime)
        if rule is not None:
            row.risk, row.action, row.rule = rule.risk, rule.action, rule.name
            if rule.action == "migrate":
                row.target, row.pathway = list(rule.target.puids), rule.pathway
                row.tools = {p.tool: tool_version(p.tool) for name in rule.pathways
                             for p in policy.chain(name)}
    return row


def _file_by_file(repo, policy, rows, ids, collection, wanted: set[tuple], attempts,
                  *, count: bool) -> None:
    """The files of the formats `wanted` (of the AIPs `ids`): with `count`, each counted
    under its own rule (one that depends on its streams) and, to migrate without a
    derivative, as pending; always, how the last attempt at those ended."""
    puids = sorted({p for p, _ in wanted if p})
    mimes = sorted({m for p, m in wanted if not p and m})
    for (aip, _coll, path, version, size, _sha, puid, mime, fmt, made) in \
            repo.catalog.payload_for_policy(ids, collection, puids, mimes):
        if (puid, mime) not in wanted:
            continue
        if count:
            rule = rule_of(repo, policy, aip, version, path, puid, mime)
            row = _row(rows, policy, rule, puid, mime, fmt)
            row.files += 1
            row.bytes += size
            row.pending += row.action == "migrate" and made is None
        else:
            row = _row(rows, policy, policy.rule_for(puid, mime), puid, mime, fmt)
        if row.action == "migrate" and made is None:
            last = last_attempt(attempts.get(aip, ()), path)
            row.failed += bool(last) and last[1] == "failure"
            row.unproven += bool(last) and last[1] == UNPROVEN
            row.deferred += bool(last) and last[1] == DEFERRED


@dataclass
class Reidentified:
    aip: str
    path: str
    old_puid: str | None
    new_puid: str | None
    new_format: str | None
    now_due: bool  # the policy migrates the new format and the file has no derivative


@dataclass
class ReidentifyResult:
    files: int = 0
    changed: list[Reidentified] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.unreadable else 0

    def to_dict(self) -> dict:
        return {"files": self.files, "changed": [asdict(c) for c in self.changed],
                "unreadable": self.unreadable, "exit_code": self.exit_code}


def reidentify(repo: Repository, refs: list[str] | None = None,
               progress: Progress | None = None) -> ReidentifyResult:
    """Identify every stored payload file of the AIPs (all when `refs` is None) again,
    from the primary disk, each file's bytes checked against its sha512 first."""
    progress = progress or Silent()
    policy = format_policy(repo)
    catalog = repo.catalog
    ids = [catalog.resolve(r) for r in refs] if refs else None
    location = repo.primary_location()
    rows = list(catalog.payload_for_policy(ids))
    progress.start("identifying", len(rows), sum(r[4] for r in rows))
    siegfried_environment()
    result = ReidentifyResult()
    changes: dict[str, list[Reidentified]] = {}
    for start in range(0, len(rows), BATCH):
        batch, paths = [], []
        for row in rows[start:start + BATCH]:
            aip_id, _c, path, version, _size, sha512 = row[:6]
            stored = location.local_path(ocfl.key_of(
                ocfl.version_key(ocfl.object_root(aip_id), version), path))
            try:
                verified_local(stored, sha512, str(stored), "run 'preserve repair'")
            except FixityMismatch as e:  # a damaged or missing copy: named, never identified
                result.unreadable.append(f"AIP {aip_id} {display(path)}: {e.message}")
                continue
            batch.append(row)
            paths.append(str(stored))
        for row, found in zip(batch, identify_paths(paths), strict=True):
            aip_id, _c, path, version, _size, _sha, old, mime, _fmt, made = row
            result.files += 1
            if found.puid == old:
                continue
            catalog.set_identification(aip_id, version, path, found.puid, found.format,
                                       found.version, found.mime, found.basis, found.warning,
                                       found.confidence)
            rule = policy.rule_for(found.puid, found.mime)
            changes.setdefault(aip_id, []).append(Reidentified(
                aip_id, path, old, found.puid, found.format,
                bool(rule and rule.action == "migrate" and made is None)))
        progress.advance(len(rows[start:start + BATCH]),
                         sum(r[4] for r in rows[start:start + BATCH]))
    for aip_id, changed in changes.items():
        _record(repo, aip_id, changed)
        result.changed += changed
    return result


def _record(repo: Repository, aip_id: str, changed: list[Reidentified]) -> None:
    sf = siegfried_info()
    agent = f"siegfried-{sf['version']}"
    listed = "; ".join(f"{display(c.path)}: {c.old_puid or 'none'} -> {c.new_puid or 'none'}"
                       + (" (now due for migration)" if c.now_due else "") for c in changed)
    event = Event("format identification", now_utc(), "success",
                  f"files identified again with siegfried {sf['version']} ({sf['pronom']}); "
                  f"{len(changed)} file(s) changed PUID", listed,
                  [(AGENT_PRESERVE, "executing program"), (agent, "executing program")],
                  objects=[(c.path, "source") for c in changed])
    agents = [Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__),
              Agent(agent, "siegfried", "software", sf["version"], sf["pronom"])]
    record_event(repo, repo.primary_location(), ocfl.object_root(aip_id), aip_id, event,
                 "identification", agents)
