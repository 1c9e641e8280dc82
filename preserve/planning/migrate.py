"""Format migration by policy: derivatives made by real tools, proven, added as a version.

For every stored payload file whose format the policy (policies/formats.yaml) marks
`migrate` and that has no derivative yet, `plan` names the derivative it would add
beside the source. `apply` then, for each such file, on all cores at once:

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

import hashlib
import json
import os
import re
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import Path, PurePosixPath

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.formats import (
    PLACEHOLDER_RE,
    FormatPolicy,
    FormatRule,
    Pathway,
    load_format_policy,
)
from preserve.domain.identify import (
    Identification,
    identify_paths,
    siegfried_environment,
    siegfried_info,
)
from preserve.domain.names import display
from preserve.domain.premis import Agent, Event
from preserve.domain.progress import Progress, Silent
from preserve.errors import FixityMismatch, PreserveError, ToolFailure
from preserve.parallel import default_workers
from preserve.pipeline.copying import copy_one
from preserve.planning.equivalence import verify
from preserve.planning.proof import CheckFailed
from preserve.repository import Repository
from preserve.storage.new_version import (
    VersionChange,
    add_version,
    copy_missing_versions,
    event_record,
)
from preserve.storage.object_log import store_log_event
from preserve.storage.recovery import MIGRATE_STAGING, tidy
from preserve.system import fstree
from preserve.system.tools import allow_tools, kill_all, run_tool, tool_version

FORMAT_POLICY = "formats.yaml"
_IDENTIFY = threading.Lock()  # siegfried (a Go runtime in this process) one call at a time


def format_policy(repo: Repository) -> FormatPolicy:
    return load_format_policy(repo.root / "policies" / FORMAT_POLICY)


@dataclass
class Candidate:
    """One stored file due for migration, and the derivative it would get."""
    aip_id: str
    collection: str
    source: str        # bag path
    version: int       # the version whose content holds it
    size: int
    sha512: str
    puid: str | None
    format: str | None
    rule: FormatRule
    derivative: str    # bag path of the file to add

    def to_dict(self) -> dict:
        return {"aip": self.aip_id, "collection": self.collection, "source": self.source,
                "size": self.size, "puid": self.puid, "format": self.format,
                "rule": self.rule.name, "pathway": self.rule.pathway,
                "fallback": list(self.rule.fallback),
                "target": list(self.rule.target.puids), "derivative": self.derivative,
                "checks": list(self.rule.checks)}


UNPROVEN = "unproven"  # a migration event's outcome: made, but not proven (nor disproven)


@dataclass
class Outcome:
    candidate: Candidate
    accepted: bool
    detail: str                      # what was run
    reason: str = ""                 # why it was rejected
    proof: str = ""                  # what was proved
    puid: str | None = None          # the derivative's PRONOM id
    identification: Identification | None = None
    file: Path | None = None
    tools: list[tuple[str, str]] = field(default_factory=list)  # (tool, version)
    seconds: float = 0.0
    workdir: Path | None = None
    status: str = "failed"           # "migrated", "failed" or "unproven"

    def to_dict(self) -> dict:
        out = {"aip": self.candidate.aip_id, "source": self.candidate.source,
               "derivative": self.candidate.derivative, "rule": self.candidate.rule.name,
               "accepted": self.accepted, "outcome": self.status, "puid": self.puid,
               "seconds": round(self.seconds, 2)}
        out["proof" if self.accepted else "reason"] = self.proof if self.accepted else self.reason
        return out


@dataclass
class MigrationResult:
    planned: int = 0
    migrated: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # failed: the derivative is wrong
    unproven: list[dict] = field(default_factory=list)  # not kept: no check could decide
    unchanged: list[dict] = field(default_factory=list)  # not tried again: nothing changed
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
            rule = policy.rule_for(file_puid, mime)
            if (rule is None or rule.action != "migrate" or made is not None
                    or path in derivatives or (puid and file_puid != puid)):
                continue
            name = derivative_name(path, rule.target.extension, taken)
            taken.add(name)
            out.append(Candidate(aip_id, coll, path, version, size, sha512, file_puid, fmt,
                                 rule, name))
    return out


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
        result.unchanged = [{**c.to_dict(), "last_outcome": unchanged[(c.aip_id, c.source)]}
                            for c in candidates if (c.aip_id, c.source) in unchanged]
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
            pending[pool.submit(_convert, repo, policy, c, workroot / str(submitted))] = c.aip_id
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


def _convert(repo: Repository, policy: FormatPolicy, c: Candidate, workdir: Path) -> Outcome:
    """Make and prove one derivative, by the rule's pathway or, when that one is refused,
    by each of its fallback pathways in turn; never raises for what a file or tool does
    wrong. Not kept, the outcome is "unproven" if any pathway made a derivative that a
    check could not decide on, else "failed"; its reason names every pathway tried."""
    outcome = None
    reasons: list[str] = []
    unproven = full = False
    try:
        fstree.makedirs(workdir)
        source = _fetch(repo, c, workdir)
    except (PreserveError, OSError) as e:
        outcome = _outcome(c, policy, 0, workdir)
        outcome.reason = e.message if isinstance(e, PreserveError) else \
            f"{e.strerror or e} ({e.filename or 'working folder'})"
        return _discard(outcome, workdir)
    for attempt, name in enumerate(c.rule.pathways):
        chain = policy.chain(name)
        outcome = _outcome(c, policy, attempt, workdir)
        _attempt(c, chain, source, workdir / f"try{attempt}", outcome)
        if outcome.accepted:
            return outcome
        unproven |= outcome.status == "unproven"
        reasons.append(f"pathway '{name}': {outcome.reason}" if len(c.rule.pathways) > 1
                       else outcome.reason)
        full = full or _filled(workdir)
        fstree.rmtree(workdir / f"try{attempt}", ignore_errors=True)  # room for the next
    outcome.status = "unproven" if unproven else "failed"
    outcome.reason = _without_workdir("; then ".join(reasons), workdir, c)
    return _discard(outcome, workdir, full)


def _without_workdir(reason: str, workdir: Path, c: Candidate) -> str:
    """A tool's message names the working copies; the archivist knows the stored file
    (issue 22: rejection reasons showed staging paths)."""
    for copy in sorted((workdir / "source").glob("source*"), key=lambda p: -len(str(p))):
        reason = reason.replace(str(copy), display(c.source))
        reason = re.sub(rf"(?<![\w/.]){re.escape(copy.name)}(?![\w.])", display(c.source),
                        reason)
    return reason.replace(str(workdir) + "/", "")


def _outcome(c: Candidate, policy: FormatPolicy, attempt: int, workdir: Path | None
             ) -> Outcome:
    """A new outcome of the rule's `attempt`-th pathway for `c`, its detail naming what
    decides the result: the file, the rule, the pathway's tools with their versions, and
    a digest of every setting the result depends on (what an unchanged attempt repeats)."""
    chain = policy.chain(c.rule.pathways[attempt])
    tools = [(p.tool, tool_version(p.tool) or "unknown") for p in chain]
    detail = (f"{display(c.source)} ({c.puid or c.format or 'unidentified'}) to "
              f"{display(c.derivative)} by rule '{c.rule.name}', pathway "
              + " then ".join(f"'{p.name}' ({tool} {version})"
                              for p, (tool, version) in zip(chain, tools, strict=True))
              + f"; inputs {_inputs_digest(c.rule, chain, tools)}")
    if attempt:
        detail += f" (after {', '.join(repr(n) for n in c.rule.pathways[:attempt])} refused)"
    return Outcome(c, False, detail, tools=tools, workdir=workdir)


def _inputs_digest(rule: FormatRule, chain: list, tools: list[tuple[str, str]]) -> str:
    """A short digest of what a migration's result depends on besides the file: the rule's
    target and checks, the pathways' settings, the tools' versions, preserve's version."""
    inputs = {"target": [list(rule.target.puids), rule.target.extension, rule.target.pdfa],
              "checks": list(rule.checks), "similarity": rule.text_similarity,
              "tolerance": rule.render_tolerance, "tools": tools, "preserve": __version__,
              "chain": [[p.tool, list(p.args), p.timeout_seconds, p.memory_mb] for p in chain]}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def last_attempt(attempts, path: str) -> tuple[str, str] | None:
    """(detail, outcome) of the last migration of `path` that was not kept, among an
    AIP's `attempts` (Catalog.migration_attempts), if any: its event's detail begins with
    the file's name and " (" (see _outcome)."""
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
        if last and last[0] == _outcome(c, policy, len(c.rule.pathways) - 1, None).detail:
            same[(c.aip_id, c.source)] = last[1]
    return same


def _attempt(c: Candidate, chain: list, source: Path, workdir: Path, outcome: Outcome) -> None:
    """Run one pathway (a chain of tools) and the rule's checks on what it made; the
    outcome says whether it was accepted, or failed, or could not be proven, and why."""
    rule = c.rule
    try:
        made = source
        for step, pathway in enumerate(chain):
            made, seconds = _run_pathway(pathway, made, workdir / f"step{step}",
                                         rule.target.extension)
            outcome.seconds += seconds
        with _IDENTIFY:
            found = identify_paths([str(made)])[0]
        outcome.puid, outcome.identification = found.puid, found
        if found.puid not in rule.target.puids:
            raise CheckFailed(f"the derivative is identified as {found.puid or 'unknown'} "
                              f"({found.format or 'no format'}), not as the target "
                              f"{' or '.join(rule.target.puids)}")
        proof = verify(rule, source, made, workdir / "checks",
                       timeout=max(p.timeout_seconds for p in chain))
        outcome.accepted, outcome.proof, outcome.file = True, \
            f"identified as {found.puid} ({found.format}); " + proof.summary(), made
        outcome.status = "migrated"
    except (CheckFailed, PreserveError) as e:
        outcome.reason = e.message if isinstance(e, PreserveError) else str(e)
        outcome.status = "unproven" if getattr(e, "unproven", False) else "failed"
    except OSError as e:
        outcome.reason = f"{e.strerror or e} ({e.filename or 'working folder'})"
    except Exception as e:  # a check that broke on this file: never accepted, not decided
        outcome.reason = f"the checks could not be completed ({type(e).__name__}: {e})"
        outcome.status = "unproven"


def _discard(outcome: Outcome, workdir: Path, full: bool = False) -> Outcome:
    """What the tools wrote goes now (it may have filled the disk: case 43, a tool that
    floods its output left no room for the record), and a full disk is said."""
    full = full or _filled(workdir)
    fstree.rmtree(workdir, ignore_errors=True)
    if full:
        outcome.reason = (f"no space left on the disk of the working folder ({workdir}): the "
                          f"tool filled it; what it wrote was removed. {outcome.reason}")
    return outcome


def _filled(folder: Path) -> bool:
    """Whether the disk of `folder` has (nearly) no room left."""
    try:
        return shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def _fetch(repo: Repository, c: Candidate, workdir: Path) -> Path:
    """The stored source, copied into the working folder under a plain name (tools choke
    on odd names), its sha512 checked on the way."""
    location = repo.primary_location()
    key = ocfl.key_of(ocfl.version_key(ocfl.object_root(c.aip_id), c.version), c.source)
    suffix = PurePosixPath(c.source).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""
    dest = workdir / "source" / f"source{suffix}"
    fstree.makedirs(dest.parent)
    with location.open(key, c.size) as stream:  # a regular file of its size, or damage
        _, digests, _ = copy_one(stream, str(dest), ["sha512"])
    if digests["sha512"] != c.sha512:
        raise FixityMismatch(f"the stored {display(c.source)} of AIP {c.aip_id} does not match "
                             "its recorded sha512: nothing was migrated from it",
                             hint="run 'preserve audit' and 'preserve repair' first")
    return dest


def _run_pathway(pathway: Pathway, source: Path, workdir: Path, extension: str
                 ) -> tuple[Path, float]:
    outdir = workdir / "out"
    fstree.makedirs(outdir)
    output = outdir / f"derivative.{extension}"
    values = {"input": str(source), "output": str(output), "outdir": str(outdir),
              "workdir": str(workdir), "profile": (workdir / "lo-profile").as_uri()}
    if any("{pdfa_def}" in a for a in pathway.args):
        values["pdfa_def"] = str(pdfa_definition(workdir))
    argv = [pathway.tool] + [PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)),
                                                  a) for a in pathway.args]
    run = run_tool(argv, timeout=pathway.timeout_seconds, memory_mb=pathway.memory_mb,
                   cwd=str(workdir))
    made = list(outdir.iterdir())
    if run.returncode != 0:
        raise ToolFailure(f"{pathway.tool} failed ({run.summary()})")
    odd = [p for p in made if not stat.S_ISREG(p.lstat().st_mode)]
    if odd:  # case 42: a link to the input passed every check, then broke the run
        raise ToolFailure(f"{pathway.tool} wrote {odd[0].name}, which is not a regular file "
                          "(a link, a folder or a device); only a file it wrote is kept")
    if not made:
        raise ToolFailure(f"{pathway.tool} reported success but wrote nothing "
                          f"({run.summary()})")
    if len(made) > 1:
        raise ToolFailure(f"{pathway.tool} wrote {len(made)} files where one was expected "
                          "(a multi-page or multi-frame source?)")
    if made[0].stat().st_size == 0:
        raise ToolFailure(f"{pathway.tool} wrote an empty file")
    return made[0], run.seconds


def pdfa_definition(workdir: Path) -> Path:
    """Ghostscript's PDFA_def.ps pointed at Ghostscript's own sRGB profile: without an
    output intent its PDF/A fails the colour rules (archivematica/Issues#1220)."""
    defs = sorted(Path("/usr/share/ghostscript").glob("*/lib/PDFA_def.ps"))
    profiles = sorted(Path("/usr/share/ghostscript").glob("*/iccprofiles/srgb.icc"))
    if not defs or not profiles:
        raise ToolFailure("Ghostscript's PDFA_def.ps or sRGB profile was not found under "
                          "/usr/share/ghostscript", hint="install the ghostscript package")
    text = defs[-1].read_text(encoding="latin-1")
    text = text.replace("(srgb.icc)", f"({profiles[-1]})")
    out = workdir / "PDFA_def.ps"
    out.write_text(text, encoding="latin-1")
    return out


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
            repo.catalog.add_events([event_record(aip_id, event, None)])
            store_log_event(location, root, aip_id, event, "migration", _agents([o]))
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

