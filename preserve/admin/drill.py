"""Restore drills: is what the repository holds really restorable, today, from each copy?

An audit proves that stored bytes still hash as recorded; a drill does what a disaster
would ask: it exports randomly chosen AIP version copies (an AIP version at one location)
to a scratch folder as bags, every byte checked against the catalog on the way out
(access/export.py), then validates each bag on its own terms (RFC 8493, every manifest
digest recomputed) and the OCFL object it came from (ocfl-py, on a disk), and records
the result as a PREMIS validation event in the catalog
and the object's logs/, whatever it was (issue 25; APTrust's restore tests). The copies
restored are removed; a killed drill's are removed by the next one.
"""

from __future__ import annotations

import os
import random
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.access.export import export
from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.premis import Agent, Event
from preserve.domain.progress import Progress, Silent
from preserve.errors import (
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_UNREACHABLE,
    BadArgument,
    PreserveError,
    StorageUnreachable,
)
from preserve.ingest.validation import validate_bag
from preserve.repository import Repository
from preserve.storage.object_log import record_event
from preserve.storage.recovery import DRILL_SCRATCH, remove_ended_drills
from preserve.stores import LocalStorage
from preserve.system import fstree


@dataclass
class Drill:
    aip: str
    version: int
    location: str
    restored: bool
    files: int = 0
    bytes: int = 0
    problem: str = ""
    unreachable: bool = False  # the location could not be reached: nothing was judged
    ocfl: str = ""  # what ocfl-py said of the object the copy is in


@dataclass
class DrillResult:
    drills: list[Drill] = field(default_factory=list)
    copies: int = 0  # version copies the drill chose from

    @property
    def exit_code(self) -> int:
        """0 every copy restored; 1 one is not restorable; else 3, a location unreachable."""
        if any(not d.restored and not d.unreachable for d in self.drills):
            return EXIT_PROBLEMS
        return EXIT_UNREACHABLE if any(d.unreachable for d in self.drills) else EXIT_OK

    def to_dict(self) -> dict:
        return {"copies": self.copies, "drilled": len(self.drills),
                "failed": sum(not d.restored for d in self.drills),
                "drills": [d.__dict__ for d in self.drills], "exit_code": self.exit_code}


def drill(repo: Repository, sample: int = 3, *, location: str | None = None,
          seed: int | None = None, progress: Progress | None = None) -> DrillResult:
    """Restore `sample` version copies chosen at random (of `location` only, if given)."""
    if sample < 1:
        raise BadArgument("a drill restores at least one copy", hint="give --sample 1 or more")
    if location is not None and location not in repo.locations:
        raise BadArgument(f"no location '{location}'", hint="'preserve storage list' names them")
    progress = progress or Silent()
    scratch = tempfile.gettempdir()
    remove_ended_drills(scratch)
    copies = [(aip, version, name) for aip, version, name, _key in repo.catalog.replicas()
              if location in (None, name) and name in repo.locations]
    chosen = random.Random(seed).sample(copies, min(sample, len(copies)))
    result = DrillResult(copies=len(copies))
    progress.start("restoring", len(chosen), 0)
    for aip, version, name in chosen:
        result.drills.append(_restore(repo, aip, version, name, Path(scratch)))
        progress.advance(1, result.drills[-1].bytes)
    return result


def _restore(repo: Repository, aip: str, version: int, name: str, scratch: Path) -> Drill:
    folder = scratch / f"{DRILL_SCRATCH}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    drill = Drill(aip, version, name, restored=False)
    try:
        done = export(repo, aip, folder / "bag", version=version, location=name)
        drill.files, drill.bytes = done.files, done.bytes
        report = validate_bag(folder / "bag", check_fixity=True)
        try:
            errors = report.errors
        finally:
            report.findings.close()
        if errors:
            drill.problem = "; ".join(f"{f.code} {f.location()}: {f.message}"
                                      for f in errors[:5])
        else:
            drill.ocfl = _validate_object(repo, aip, name)
            drill.restored = not drill.ocfl.startswith("invalid")
            if not drill.restored:
                drill.problem = drill.ocfl
    except PreserveError as e:
        drill.problem = e.message
        drill.unreachable = isinstance(e, StorageUnreachable)
    finally:
        fstree.rmtree(folder, ignore_errors=True)
    _record(repo, drill)
    return drill


def _validate_object(repo: Repository, aip: str, name: str) -> str:
    """The OCFL object the copy belongs to, validated by ocfl-py (every version's
    inventory, every digest), where it is on a disk; said, never silently skipped,
    where it cannot be."""
    location = repo.locations[name]
    if not isinstance(location, LocalStorage):
        return "OCFL object not validated (ocfl-py reads objects on a disk)"
    try:
        from ocfl.validator import Validator
    except ImportError:
        return "OCFL object not validated (ocfl-py is not installed)"
    path = location.root / ocfl.object_root(aip)
    validator = Validator(log_warnings=False, check_digests=True)
    if validator.validate_object(str(path)):
        return "OCFL object valid (ocfl-py)"
    return f"invalid OCFL object (ocfl-py): {str(validator.log).strip()[:300]}"


def _record(repo: Repository, drill: Drill) -> None:
    """The drill's PREMIS event, in the catalog and in the logs/ of the object at the
    location drilled, as an audit's (a store that cannot be written to loses only that
    copy: the catalog keeps it)."""
    detail = (f"restore drill: v{drill.version} exported from '{drill.location}' as a bag "
              "(every byte checked against the record) and validated (RFC 8493, every "
              "manifest digest recomputed)")
    outcome = (f"{drill.files} file(s), {drill.bytes} bytes restored and valid; {drill.ocfl}"
               if drill.restored else f"not restorable: {drill.problem}")
    event = Event("validation", now_utc(), "success" if drill.restored else "failure", detail,
                  outcome, [(AGENT_PRESERVE, "executing program")])
    root = ocfl.object_of(repo.catalog.replica_key(drill.aip, drill.version, drill.location))
    record_event(repo, repo.locations[drill.location], root, drill.aip, event,
                 f"drill-{drill.location}-v{drill.version}",
                 [Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__)], drill.version)
