"""What a format validator says of one file (issue 26): a status, the first findings, and
the tools that looked. Shared by the validators (which run in a sandboxed child process,
validator_run.py) and the stage that starts them and records their verdicts
(validating.py).

Identification is not validation: siegfried names a format from a few signature bytes,
so a truncated JPEG, a PDF whose cross-reference table is broken or a file whose header
claims PDF/A without conforming is identified as what it claims. Only a decode of the
whole file says whether it is what it claims, and whether it can be migrated tomorrow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VALID = "valid"
INVALID = "invalid"        # damaged, truncated, or not what its header claims
ENCRYPTED = "encrypted"    # readable only with a key preserve does not hold
NOT_CHECKED = "not checked"  # no validator ran to the end (tool missing, timed out)
STATUSES = (VALID, INVALID, ENCRYPTED, NOT_CHECKED)
AT_RISK = (INVALID, ENCRYPTED)  # counted as high risk in the formats report
FINDINGS_KEPT = 5  # of each file, in its event and its catalog row
FINDING_CHARS = 300


@dataclass
class Checked:
    status: str = VALID
    findings: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)  # "qpdf 11.3.0", "Pillow 11.0.0"
    method: str = ""  # what was done, for the PREMIS event's detail

    def fail(self, finding: str) -> None:
        """A finding that makes the file invalid (encryption stays the stronger word only
        where nothing else is wrong)."""
        self.status = INVALID
        self.note(finding)

    def encrypted(self, finding: str) -> None:
        if self.status != INVALID:
            self.status = ENCRYPTED
        self.note(finding)

    def note(self, finding: str) -> None:
        finding = " ".join(str(finding).split())  # cut to FINDING_CHARS once named (shown)
        if finding and finding not in self.findings and len(self.findings) < FINDINGS_KEPT:
            self.findings.append(finding)

    def shown(self, path: str, name: str) -> Checked:
        """The verdict with the file's working path replaced by its name (a bag path) in
        its findings, each cut to FINDING_CHARS."""
        self.findings = [f.replace(path, name)[:FINDING_CHARS] if name else f[:FINDING_CHARS]
                         for f in self.findings]
        return self

    def to_dict(self) -> dict:
        return {"status": self.status, "findings": self.findings, "tools": self.tools,
                "method": self.method}

    @classmethod
    def from_dict(cls, d: dict) -> Checked:
        return cls(d["status"], list(d.get("findings") or []), list(d.get("tools") or []),
                   d.get("method") or "")

    def detail(self) -> str:
        """One line for a catalog row or a report: the findings, or the method."""
        return "; ".join(self.findings) if self.findings else self.method


def not_checked(why: str, tools: list[str] | None = None) -> Checked:
    return Checked(NOT_CHECKED, [why], tools or [])
