"""What an audit finds and keeps: the kinds of problem, each Problem, the result of a run,
the replicas it visits, and the recorder that commits one replica's findings every few
seconds, so that an interrupted audit resumes after the last file it recorded."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.model import EventRecord, ReplicaAuditState
from preserve.errors import EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE

KINDS = ("corrupt", "truncated", "missing", "unexpected", "unreachable", "read-error", "stale",
         "inventory", "storage-root")


# Damage a good copy from another replica mends (an inventory's is reported as "inventory").
REPLACEABLE = ("corrupt", "truncated", "missing")


@dataclass
class Problem:
    aip: str
    version: int
    location: str
    path: str | None
    kind: str
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AuditResult:
    run_id: str
    kind: str
    started: str
    finished: str = ""
    replicas: int = 0
    files: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    resumed_from: str | None = None   # start of the interrupted run this one continued
    stopped: str | None = None        # why the run ended before its selection: "budget"
    selected_files: int = 0
    media_warnings: dict[str, list[str]] = field(default_factory=dict)  # per location audited

    @property
    def status(self) -> str:
        kinds = {p.kind for p in self.problems}
        if kinds - {"unreachable", "stale"}:
            return "damaged"
        if "unreachable" in kinds:
            return "unreachable"
        return "stale" if kinds else "ok"

    @property
    def exit_code(self) -> int:
        return {"ok": EXIT_OK, "damaged": EXIT_PROBLEMS, "stale": EXIT_PROBLEMS,
                "unreachable": EXIT_UNREACHABLE}[self.status]

    def to_dict(self) -> dict:
        return {"status": self.status, "run": self.run_id, "kind": self.kind,
                "started": self.started, "finished": self.finished,
                "resumed_from": self.resumed_from, "complete": self.stopped is None,
                "stopped": self.stopped, "replicas": self.replicas, "files": self.files,
                "bytes_read": self.bytes_read,
                "problems": [p.to_dict() for p in self.problems],
                "media_warnings": self.media_warnings}


@dataclass
class Visit:
    """One replica to audit: which of its payload files (None: all), and how deeply."""
    state: ReplicaAuditState
    kind: str
    paths: set[str] | None
    files: int
    nbytes: int

    @property
    def replica(self) -> tuple[str, int, str]:
        return (self.state.aip, self.state.version, self.state.location)


def has_record(path: str | None) -> bool:
    """Whether `path` is a content file with a catalog row (payload or tag file, whose
    checks are recorded file by file), not an inventory, a root file or a stray."""
    return path is not None and not path.startswith(("/", ocfl.STRAY)) and \
        path not in ocfl.VERSION_FILES


def _row(p: Problem) -> tuple:
    return (p.aip, p.version, p.location, p.path, p.kind, p.detail)


class Recorder:
    """What one replica's audit found, committed every few seconds, so that an interrupted
    audit resumes after the last file it recorded."""

    FLUSH_SECONDS = 2.0

    def __init__(self, repo, result: AuditResult, visit: Visit):
        self.repo, self.result, self.visit = repo, result, visit
        self.verified: list[str] = []
        self.failed: list[str] = []
        self.new: list[Problem] = []
        self.found: list[Problem] = []
        self.named: set[str | None] = set()
        self.structure_damaged = False
        self.checked = 0
        self.last_flush = time.monotonic()

    def problem(self, path, kind, detail) -> None:
        """One problem per file: the first found says it."""
        if path in self.named:
            return
        self.named.add(path)
        if path is not None and ocfl.is_inventory(path) and kind in REPLACEABLE:
            detail, kind = f"{kind}: {detail}", "inventory"  # its own kind (issue 9)
        s = self.visit.state
        p = Problem(s.aip, s.version, s.location, path, kind, detail)
        self.new.append(p)
        self.found.append(p)
        if has_record(path) and kind != "unexpected":
            self.failed.append(path)
        elif kind != "unreachable":
            self.structure_damaged = True

    def good(self, path) -> None:
        if has_record(path):
            self.verified.append(path)

    def checked_batch(self, files: int) -> None:
        self.checked += files
        if time.monotonic() - self.last_flush >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.repo.catalog.record_checks(self.result.run_id, self.visit.replica,
                                        now_utc(precise=True),
                                        self.verified, self.failed, [_row(p) for p in self.new])
        self.verified, self.failed, self.new = [], [], []
        self.last_flush = time.monotonic()

    def close(self, event: EventRecord) -> None:
        self.flush()
        self.repo.catalog.finish_replica_audit(self.visit.replica, self.result.started,
                                               self.structure_damaged, [event])
