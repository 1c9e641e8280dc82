"""The things we talk about: AIPs, their files, replicas and events (OAIS vocabulary)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from preserve.errors import EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE


class Verdict:
    """The status and exit code of a result that has `problems` (damage outranks all) and
    `unreachable` locations: "ok" 0, "problems" 1, "unreachable" 3."""

    problems: list
    unreachable: dict | list

    @property
    def status(self) -> str:
        if self.problems:
            return "problems"
        return "unreachable" if self.unreachable else "ok"

    @property
    def exit_code(self) -> int:
        return {"ok": EXIT_OK, "problems": EXIT_PROBLEMS,
                "unreachable": EXIT_UNREACHABLE}[self.status]

@dataclass
class FileRecord:
    path: str  # bag path, "data/...", exactly as named
    size: int
    digests: dict[str, str]  # sha256/sha512 (fixity of record) and xxh3_128 (fast audits)
    puid: str | None = None
    format: str | None = None
    format_version: str | None = None
    mime: str | None = None
    basis: str | None = None
    warning: str | None = None
    confidence: str | None = None
    magic_mime: str | None = None
    magic_description: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AipSummary:
    id: str
    collection: str
    title: str | None
    created: str
    version: int
    files: int
    bytes: int
    source: str | None = None
    locations: list[str] = field(default_factory=list)
    package_digest: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EventRecord:
    id: str
    aip_id: str
    type: str
    datetime: str
    outcome: str
    detail: str
    outcome_detail: str | None
    agent: str | None
    version: int | None = None  # the AIP version it made (ingest, describe, migration)
    # where its PREMIS document is kept outside a version: JSON {"location", "file",
    # "sha256"} of the object's logs/ record (object_log.store_log_event)
    record: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ReplicaAuditState:
    """One replica as the audit planner sees it. `oldest` is when its least recently verified
    file was last verified ("" when damage found earlier awaits repair); `verified_since` counts
    the files verified since the start of the run being resumed."""
    aip: str
    version: int
    location: str
    key: str
    collection: str
    stored: str
    last_audit: str | None
    files: int
    bytes: int
    oldest: str
    verified_since: int

    @property
    def never_audited(self) -> bool:
        """No audit yet: its oldest check is its storing (padded to the audit form)."""
        return self.last_audit is None and self.oldest[:19] == self.stored[:19]
