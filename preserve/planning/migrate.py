"""Format migration by policy: derivatives made by real tools, proven, added as a version.

For every stored payload file whose format the policy (policies/formats.yaml) marks
`migrate` and that has no derivative yet, `plan` names the derivative it would add
beside the source. `apply` then, for each such file, on all cores at once
(planning/conversion.py):

1. copies the stored source into a private working folder, checking its sha512 on the
   way (a derivative is never made from damaged bytes, and no tool ever runs inside
   storage: LibreOffice writes lock files beside what it opens);
2. runs the pathway's tool(s) under a timeout and a memory limit (tools.run_tool);
3. identifies the output again with siegfried: it must be one of the rule's target
   PUIDs, whatever the tool claims;
4. runs every check the rule asks for (planning/equivalence.py); the first that fails
   rejects the derivative.

The derivatives accepted for one AIP become one new version of it (new_version.
add_version: written atomically on the primary disk, then copied to every replica
location), with one PREMIS migration event per file linking source and outcome, and a
derivation relationship on each derivative. A rejected one changes nothing but the
record: a failed migration event, in the catalog and in the object's logs/. The
original is never touched. A run stopped at any point (Ctrl-C, kill) leaves each AIP
at its old version or its new one; running `migrate --apply` again does what is left.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import PurePosixPath

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.formats import FormatPolicy, FormatRule, load_format_policy
from preserve.domain.identify import siegfried_environment, siegfried_info
from preserve.domain.metadata import check_utf8
from preserve.domain.names import display
from preserve.domain.premis import Agent, Event
from preserve.domain.progress import Progress, Silent
from preserve.errors import BadArgument, PreserveError, ToolFailure
from preserve.parallel import default_workers
from preserve.planning.conversion import DEFERRED, UNPROVEN, Candidate, Outcome, convert, new_outcome
from preserve.planning.media_checks import stream_kinds
from preserve.repository import Repository
from preserve.storage.new_version import VersionChange, add_version, copy_missing_versions
from preserve.storage.object_log import record_event
from preserve.storage.recovery import MIGRATE_STAGING, tidy
from preserve.storage.versions import version_user
from preserve.system import fstree
from preserve.system.tools import allow_tools, kill_all, tool_version

FORMAT_POLICY = "formats.yaml"


def format_policy(repo: Repository) -> FormatPolicy:
    return load_format_policy(repo.root / "policies" / FORMAT_POLICY)


@dataclass
class MigrationResult:
    planned: int = 0
    migrated: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # failed: the derivative is wrong
    unproven: list[dict] = field(default_factory=list)  # not kept: no check could decide
    unchanged: list[dict] = field(default_factory=list)  # not tried again: nothing changed
    deferred: list[dict] = field(default_factory=list)  # left by an archivist's decision
    versions: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # versions not written, copies missing

    @property
    def exit_code(self) -> int:
        return 1 if self.rejected or self.unproven or self.problems else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "exit_code": self.exit_code}


# -- plan ------------------------------------------------------------------------------------

def plan(repo: Repository, refs: list[str] | None = None, collection: str | None = None,
         puid: str | None = None) -> list[Candidate]:
    """The files due for migration, in AIP and path order (computed afresh from the
    catalog each time: a file migrated by an earlier run is never planned again)."""
    policy = format_policy(repo)
    catalog = repo.catalog
    ids = [catalog.resolve(r) for r in refs] if refs else None
    out: list[Candidate] = []
    rows = catalog.payload_for_policy(ids, collection)
    for aip_id, group in groupby(rows, key=lambda r: r[0]):
        files = list(group)
        taken = {r[2] for r in files}
        derivatives = {d[2] for d in catalog.derivations(aip_id)}
        for (_, coll, path, version, size, sha512, file_puid, mime, fmt, made) in files:
            rule = rule_of(repo, policy, aip_id, version, path, file_puid, mime)
            if (rule is None or rule.action != "migrate" or made is not None
                    or path in derivatives or (puid and file_puid != puid)):
                continue
            name = derivative_name(path, rule.target.extension, taken)
            taken.add(name)
            out.append(Candidate(aip_id, coll, path, version, size, sha512, file_puid, fmt,
                                 rule, name))
    return out


def rule_of(repo: Repository, policy: FormatPolicy, aip_id: str, version: int, path: str,
            puid: str | None, mime: str | None) -> FormatRule | None:
    """The policy's rule for a stored file. Where the rule takes only files with a video
    stream (a container such as ASF holds video or sound alone under one PUID), the stored
    copy on the primary disk is asked which streams it holds (its headers only)."""
    rule = policy.rule_for(puid, mime)
    if rule is None or rule.streams != "video":
        return rule
    stored = repo.primary_location().local_path(
        ocfl.key_of(ocfl.version_key(ocfl.object_root(aip_id), version), path))
    return policy.rule_for(puid, mime, stream_kinds(stored))


def derivative_name(source: str, extension: str, taken: set[str]) -> str:
    """The derivative's bag path, beside its source: photo.bmp -> photo.png; where that is
    taken, photo.bmp.png; for a target of the source's own extension, report.pdf ->
    report-migrated.pdf (then -2, -3, ...)."""
    path = PurePosixPath(source)
    stem = str(path.with_suffix("")) if path.suffix else source
    options = [f"{stem}.{extension}"]
    if path.suffix.lower() != f".{extension}":
        options.append(f"{source}.{extension}")
    options += [f"{stem}-migrated.{extension}"]
    options += [f"{stem}-migrated-{n}.{extension}" for n in range(2, 1000)]
    for option in options:
        if option != source and option not in taken:
            return option
    raise PreserveError(f"no free name for the derivative of {display(source)}")


# -- apply -----------------------------------------------------------------------------------

def apply(repo: Repository, refs: list[str] | None = None, collection: str | None = None,
          puid: str | None = None, *, workers: int | None = None,
          progress: Progress | None = None, retry: bool = False) -> MigrationResult:
    """Migrate what `plan` names for the same selection: convert and prove files on
    `workers` threads (each runs tools, so both cores are busy), then add each AIP's
    accepted derivatives as its next version as soon as that AIP's files are done. The
    plan is made after what an interrupted run left is resolved (its version may have
    been published: then its files are not planned again). A file whose last migration
    was not kept is tried again only where something it depends on changed (the rule,
    a pathway, a tool's version), or with `retry`."""
    progress = progress or Silent()
    tidy(repo)
    result = MigrationResult()
    _finish_copies(repo, refs, result)
    candidates = plan(repo, refs, collection, puid)
    policy = format_policy(repo)
    if not retry:  # an attempt that would repeat itself is left, and said, not re-run
        unchanged = last_attempts(repo, policy, candidates)
        for c in candidates:
            last = unchanged.get((c.aip_id, c.source))
            if last is not None:
                (result.deferred if last.startswith(DEFERRED) else result.unchanged).append(
                    {**c.to_dict(), "last_outcome": last})
        candidates = [c for c in candidates if (c.aip_id, c.source) not in unchanged]
    result.planned = len(candidates)
    if not candidates:
        return result
    _check_tools(policy, candidates)
    allow_tools()
    siegfried_environment()
    workers = workers or default_workers()
    workroot = repo.staging / f"{MIGRATE_STAGING}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    fstree.makedirs(workroot)
    progress.start("migrating", len(candidates), sum(c.size for c in candidates))
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="migrate") as pool:
            try:
                for aip_id, outcomes in _convert_all(repo, policy, candidates, pool, workers,
                                                     workroot, progress):
                    _record(repo, aip_id, outcomes, result)
                    for o in outcomes:
                        fstree.rmtree(o.workdir, ignore_errors=True)
            except BaseException:
                kill_all()  # no tool is left running behind an interrupted run
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        fstree.rmtree(workroot, ignore_errors=True)
    return result


def _finish_copies(repo: Repository, refs: list[str] | None, result: MigrationResult) -> None:
    """Migration versions an interrupted run published but did not copy to every
    location are copied first: a re-run finishes the job it was given."""
    catalog = repo.catalog
    ids = [catalog.resolve(r) for r in refs] if refs else [a.id for a in catalog.list_aips()]
    for aip_id in ids:
        if not catalog.derivations(aip_id):
            continue
        head = catalog.get_aip(aip_id).version
        _, problems = copy_missing_versions(repo, aip_id, head)
        result.problems += [f"AIP {aip_id} v{head} not copied to {p}" for p in problems]


def _check_tools(policy: FormatPolicy, candidates: list[Candidate]) -> None:
    """Every tool the plan needs is installed: say so before anything starts."""
    for name in sorted({p for c in candidates for p in c.rule.pathways}):
        for pathway in policy.chain(name):
            if tool_version(pathway.tool) is None:
                raise ToolFailure(f"pathway '{name}' needs '{pathway.tool}', which is not "
                                  "installed on this machine",
                                  hint="install it (scripts/setup.sh installs the default "
                                       "tools), or leave those files out with --puid")


def _convert_all(repo, policy, candidates, pool, workers, workroot, progress
                 ) -> Iterator[tuple[str, list[Outcome]]]:
    """Outcomes of each AIP's files, AIP by AIP as each completes. Candidates come in AIP
    order and are submitted in that order, at most 2 x workers in flight (a huge plan
    never sits in memory as futures)."""
    pending: dict[Future, str] = {}
    results: dict[str, list[Outcome]] = {}
    submitted = 0
    while submitted < len(candidates) or pending:
        while submitted < len(candidates) and len(pending) < 2 * workers:
            c = candidates[submitted]
            pending[pool.submit(convert, repo, policy, c, workroot / str(submitted))] = c.aip_id
            submitted += 1
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            outcome = future.result()
            results.setdefault(pending.pop(future), []).append(outcome)
            progress.advance(1, outcome.candidate.size)
        upcoming = candidates[submitted].aip_id if submitted < len(candidates) else None
        for aip_id in list(results):
            if aip_id != upcoming and aip_id not in pending.values():
                yield aip_id, results.pop(aip_id)


def last_attempt(attempts, path: str) -> tuple[str, str] | None:
    """(detail, outcome) of the last migration of `path` that was not kept, among an
    AIP's `attempts` (Catalog.migration_attempts), if any: its event's detail begins with
    the file's name and " (" (see conversion.new_outcome)."""
    prefix = f"{display(path)} ("
    return next(((detail, outcome) for detail, outcome in reversed(attempts)
                 if detail.startswith(prefix)), None)


def last_attempts(repo: Repository, policy: FormatPolicy, candidates: list[Candidate]
                  ) -> dict[tuple[str, str], str]:
    """(AIP, source) -> outcome ("failure" or "unproven") of each candidate whose last
    migration was not kept and would run again with the same inputs (issue 22: every run
    repeated them, added an event per file, and exited 1 for ever)."""
    attempts = repo.catalog.migration_attempts()
    same = {}
    for c in candidates:
        last = last_attempt(attempts.get(c.aip_id, ()), c.source)
        if last and last[1] == DEFERRED:  # a decision stands until --retry
            same[(c.aip_id, c.source)] = last[0][len(f"{display(c.source)} ("):-1]
        elif last and last[0] == new_outcome(c, policy, len(c.rule.pathways) - 1,
                                             None).detail:
            same[(c.aip_id, c.source)] = last[1]
    return same


# -- defer -----------------------------------------------------------------------------------

def defer(repo: Repository, refs: list[str] | None, collection: str | None, puid: str | None,
          files: list[str] | None, reason: str) -> list[dict]:
    """Record an archivist's decision to leave planned files unmigrated for now (issue 22:
    files no tool here can migrate came back failed on every run): one PREMIS migration
    event per file, outcome "deferred", its detail naming who decided and why, with the
    person as the event's authorizer, in the catalog and the object's logs/. `--plan`
    shows it, `formats` counts it, `apply` leaves the file until --retry. `files` narrows
    the selection to these payload paths (data/... or as below data/); a name that is not
    planned for migration refuses the whole call before anything is recorded."""
    check_utf8("--reason", reason)
    if not reason.strip():
        raise BadArgument("a deferral needs a reason", hint="say why with --reason TEXT: "
                          "it is kept with the decision, for whoever reads it later")
    candidates = plan(repo, refs, collection, puid)
    if files:
        wanted = {f if f.startswith("data/") else f"data/{f}" for f in files}
        candidates = [c for c in candidates if c.source in wanted]
        unknown = sorted(wanted - {c.source for c in candidates})
        if unknown:
            shown = ", ".join(display(u) for u in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise BadArgument(f"not planned for migration in this selection: {shown}{more}; "
                              "nothing was deferred",
                              hint="'preserve migrate --plan' lists the files that are")
    person, address = version_user()
    authorizer = Agent(f"person-{person}", person, "person", None, address)
    when = now_utc()
    location = repo.primary_location()
    for aip_id, group in groupby(candidates, key=lambda c: c.aip_id):
        events = [Event("migration", when, DEFERRED,
                        f"{display(c.source)} (deferred by {person}: {reason})",
                        f"not migrated by decision; rule '{c.rule.name}' would make "
                        f"{display(c.derivative)}; 'preserve migrate --retry' migrates it",
                        [(authorizer.identifier, "authorizer"),
                         (AGENT_PRESERVE, "executing program")],
                        objects=[(c.source, "source")]) for c in group]
        agents = [authorizer, Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__)]
        for event in events:
            record_event(repo, location, ocfl.object_root(aip_id), aip_id, event, "deferral",
                         agents)
    return [{**c.to_dict(), "deferred_by": person, "reason": reason} for c in candidates]


# -- record ----------------------------------------------------------------------------------

def _agents(outcomes: list[Outcome]) -> list[Agent]:
    agents = {AGENT_PRESERVE: Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__,
                                    "preserve digital preservation repository")}
    sf = siegfried_info()
    agents["siegfried"] = Agent(f"siegfried-{sf['version']}", "siegfried", "software",
                                sf["version"], f"derivatives identified again; {sf['pronom']}")
    for o in outcomes:
        for tool, version in o.tools:
            agents.setdefault(tool, Agent(_agent_id(tool, version), tool, "software", version))
    return list(agents.values())


def _agent_id(tool: str, version: str) -> str:
    return f"{tool}-{version}"


def _event(o: Outcome, when: str) -> Event:
    c = o.candidate
    agents = [(AGENT_PRESERVE, "executing program")] + [
        (_agent_id(tool, version), "executing program") for tool, version in o.tools]
    objects = [(c.source, "source")] + ([(c.derivative, "outcome")] if o.accepted else [])
    if o.accepted:
        return Event("migration", when, "success", o.detail, o.proof, agents, objects=objects)
    if o.status == "unproven":  # PREMIS leaves eventOutcome's values to the repository
        return Event("migration", when, UNPROVEN, o.detail, f"derivative not kept: it could "
                     f"not be proven equal to the source ({o.reason}); nothing was changed",
                     agents, objects=objects)
    return Event("migration", when, "failure", o.detail,
                 f"derivative rejected: {o.reason}; nothing was changed", agents,
                 objects=objects)


def _record(repo: Repository, aip_id: str, outcomes: list[Outcome],
            result: MigrationResult) -> None:
    when = now_utc()
    location = repo.primary_location()
    root = ocfl.object_root(aip_id)
    for o in outcomes:
        if not o.accepted:
            event = _event(o, when)
            record_event(repo, location, root, aip_id, event, "migration", _agents([o]))
            (result.unproven if o.status == "unproven" else result.rejected).append(o.to_dict())
    accepted = [o for o in outcomes if o.accepted]
    if not accepted:
        return
    events = [_event(o, when) for o in accepted]
    rules = sorted({o.candidate.rule.name for o in accepted})
    message = (f"format migration: {len(accepted)} derivative(s) added beside their sources "
               f"({', '.join(rules)}); originals kept")
    change = VersionChange(
        message, events[0], _agents(accepted), events=events[1:],
        added=[(o.candidate.derivative, o.file) for o in accepted],
        derived={o.candidate.derivative: (o.candidate.source, e.identifier, o.candidate.rule.name)
                 for o, e in zip(accepted, events, strict=True)},
        identified={o.candidate.derivative: o.identification for o in accepted})
    try:
        done = add_version(repo, aip_id, change)
    except PreserveError as e:
        result.problems.append(f"AIP {aip_id}: {e.message}")
        return
    result.migrated += [o.to_dict() for o in accepted]
    result.versions.append({"aip": aip_id, "version": done.version,
                            "files_added": done.files_added, "replicas": done.replicas})
    result.problems += [f"AIP {aip_id} v{done.version} not copied to {p}"
                        for p in done.replication_problems]

