"""What bag validation reports: findings, each with a stable code (E… for a violated MUST,
which makes the bag invalid; W… for a violated SHOULD or a risk), the file and the line;
kept on disk past a few thousand, so a bag of millions of bad lines costs no memory."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice

from preserve.domain.bag import SUPPORTED_VERSIONS
from preserve.domain.names import display
from preserve.system.scratch import scratch_database


@dataclass
class Finding:
    severity: str  # "error" or "warning"
    code: str
    message: str
    file: str | None = None
    line: int | None = None

    def to_dict(self) -> dict:
        return {"severity": self.severity, "code": self.code, "message": self.message,
                "file": self.file, "line": self.line}

    def location(self) -> str:
        if self.file is None:
            return ""
        return f"{display(self.file)}:{self.line}" if self.line else display(self.file)


class Findings:
    """Every finding of a validation, in report order (errors first, then by file, line and
    code), in bounded memory: past SPILL findings they go to a scratch database, which
    sorts them on disk (a manifest of a million lines naming missing files gives a million
    findings: red-team case 13 took 1.8 GB). Counts by severity and code stay in memory."""

    SPILL = 5000

    def __init__(self) -> None:
        self._memory: list[Finding] = []
        self._db: sqlite3.Connection | None = None
        self._database = None
        self.count = {"error": 0, "warning": 0}
        self.by_code: dict[str, int] = {}

    def add(self, finding: Finding) -> None:
        self.count[finding.severity] += 1
        self.by_code[finding.code] = self.by_code.get(finding.code, 0) + 1
        self._memory.append(finding)
        if len(self._memory) >= self.SPILL:
            self._spill()

    def _spill(self) -> None:
        if self._db is None:
            self._database = scratch_database(
                "CREATE TABLE findings(severity TEXT, code TEXT, message TEXT, file TEXT, "
                "line INTEGER)")
            self._db = self._database.__enter__()
        self._db.executemany("INSERT INTO findings VALUES (?, ?, ?, ?, ?)",
                             ((f.severity, f.code, f.message, f.file, f.line)
                              for f in self._memory))
        self._memory = []

    def __len__(self) -> int:
        return self.count["error"] + self.count["warning"]

    def __iter__(self) -> Iterator[Finding]:
        if self._db is None:
            yield from sorted(self._memory, key=_report_order)
            return
        self._spill()
        for row in self._db.execute(
                "SELECT severity, code, message, file, line FROM findings ORDER BY "
                "severity != 'error', coalesce(file, ''), coalesce(line, 0), code"):
            yield Finding(*row)

    def first(self, severity: str, limit: int) -> list[Finding]:
        """The first `limit` findings of one severity, in report order."""
        return list(islice((f for f in self if f.severity == severity), limit))

    def close(self) -> None:
        if self._database is not None:
            self._database.__exit__(None, None, None)
            self._database = self._db = None


def _report_order(f: Finding) -> tuple:
    return f.severity != "error", f.file or "", f.line or 0, f.code


@dataclass
class ValidationReport:
    bag: str
    version: str | None = None
    encoding: str | None = None  # the declared tag-file encoding, once it is known to work
    findings: Findings = field(default_factory=Findings)
    tag_files: list[tuple[str, int]] = field(default_factory=list)  # (path, size), sorted
    payload_files: int = 0
    payload_bytes: int = 0
    files_hashed: int = 0
    bytes_hashed: int = 0
    algorithms: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """Every error (a list: for a report of any size, use findings.first)."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def valid(self) -> bool:
        return not self.findings.count["error"]

    @property
    def before_1_0(self) -> bool:
        """Declares a draft version (0.93 to 0.97), whose rules are more lenient."""
        return self.version in SUPPORTED_VERSIONS and self.version != "1.0"

    def summary(self) -> dict:
        """Everything but the findings themselves (which may be millions: stream them)."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("findings", "tag_files")}
        d["valid"] = self.valid
        d["errors"] = self.findings.count["error"]
        d["warnings"] = self.findings.count["warning"]
        d["findings_by_code"] = dict(sorted(self.findings.by_code.items()))
        return d

    def to_dict(self) -> dict:
        return {**self.summary(), "findings": [f.to_dict() for f in self.findings]}


class Collector:
    def __init__(self, report: ValidationReport):
        self.report = report

    def error(self, code: str, message: str, file: str | None = None, line: int | None = None):
        self.report.findings.add(Finding("error", code, message, file, line))

    def warning(self, code: str, message: str, file: str | None = None, line: int | None = None):
        self.report.findings.add(Finding("warning", code, message, file, line))
