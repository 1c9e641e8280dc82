"""One file's migration, in a worker thread: its stored bytes copied into a private working
folder (sha512 checked on the way), the rule's pathway (then each fallback) run under the
tool sandbox, the output identified again, and every check the rule asks for run on it.
Never raises for what a file or a tool does wrong: the Outcome says what happened, and
planning/migrate.py turns the outcomes of one AIP into its new version and events."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from preserve import __version__
from preserve.domain.formats import PLACEHOLDER_RE, FormatPolicy, FormatRule, Pathway
from preserve.domain.identify import Identification, identify_paths
from preserve.domain.names import display
from preserve.errors import PreserveError, ToolFailure
from preserve.planning.equivalence import verify
from preserve.planning.proof import CheckFailed
from preserve.repository import Repository
from preserve.storage.versions import fetch_stored, plain_suffix
from preserve.system import fstree
from preserve.system.tools import run_tool, tool_version


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
DEFERRED = "deferred"  # ... and an archivist's decision not to migrate the file yet


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


_IDENTIFY = threading.Lock()  # siegfried (a Go runtime in this process) one call at a time


def convert(repo: Repository, policy: FormatPolicy, c: Candidate, workdir: Path) -> Outcome:
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
        outcome = new_outcome(c, policy, 0, workdir)
        outcome.reason = e.message if isinstance(e, PreserveError) else \
            f"{e.strerror or e} ({e.filename or 'working folder'})"
        return _discard(outcome, workdir)
    for attempt, name in enumerate(c.rule.pathways):
        chain = policy.chain(name)
        outcome = new_outcome(c, policy, attempt, workdir)
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


def new_outcome(c: Candidate, policy: FormatPolicy, attempt: int, workdir: Path | None
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
    """The stored source, copied into the working folder under a plain name, its sha512
    checked on the way."""
    return fetch_stored(repo.primary_location(), c.aip_id, c.version, c.source, c.size,
                        c.sha512, workdir / "source" / f"source{plain_suffix(c.source)}",
                        "nothing was migrated from it")


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
