"""What the ingest job records of its checks of content (issue 26): the format validator's
verdict of each file (a PREMIS validation event per file, spooled to a temporary file
since a SIP may hold millions, and a catalog row), the virus scan of the staged payload,
the summary events, and the refusal of a SIP that policy `strict` does not let in.

A part of the ingest job (ingest/ingest.py), like its record (record.py)."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from preserve import AGENT_PRESERVE
from preserve.domain.clock import now_utc
from preserve.domain.file_checks import (
    VALIDATION,
    VIRUS_CHECK,
    tool_agent,
    validation_event,
    virus_event,
)
from preserve.domain.names import display
from preserve.domain.premis import Agent, Event, event_xml
from preserve.errors import SourceRefused
from preserve.pipeline.file_verdicts import AT_RISK, ENCRYPTED, INVALID, NOT_CHECKED, Checked
from preserve.pipeline.virus import Scan, scan_folder

FLAGGED_KEPT = 1000  # files not valid listed in the result one by one; the rest counted
INFECTED = "infected"
NOT_SCANNED = "not scanned"


class ContentChecks:
    """The content-checking part of the ingest job (ingest.ingest._Job): it reads the
    job's policy, bag, catalog and AIP id."""

    def _start_checks(self) -> None:
        self.validated: Counter = Counter()  # verdict -> files
        self.flagged: list[dict] = []  # files not valid, the first FLAGGED_KEPT
        self.check_tools: set[str] = set()
        self.validation_rows: list[tuple] = []
        self.virus_scan: Scan | None = None
        # closed once the PREMIS is written (or by the garbage collector if the ingest fails)
        self.file_events = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115

    def _file_checked(self, path: str, checked: Checked | None) -> None:
        """One file's verdict (None: its format has no validator, or validation is off)."""
        if checked is None:
            return
        when = now_utc()
        event = validation_event(path, checked.status, checked.findings, checked.tools,
                                 checked.method, when, AGENT_PRESERVE)
        self.file_events.write(event_xml(event, self.aip_id))
        self.validated[checked.status] += 1
        self.check_tools.update(checked.tools)
        self.validation_rows.append((self.version, path, VALIDATION, checked.status,
                                     checked.detail(), ", ".join(checked.tools), when,
                                     event.identifier))
        if checked.status in (*AT_RISK, NOT_CHECKED):
            self._flag(path, checked.status, checked.findings)

    def _flag(self, path: str, status: str, findings: list[str]) -> None:
        if len(self.flagged) < FLAGGED_KEPT:
            self.flagged.append({"path": path, "status": status, "findings": findings})

    def _store_verdicts(self) -> None:
        """The verdicts so far into the catalog (called with each batch of file rows)."""
        self.repo.catalog.record_validations(self.aip_id, self.validation_rows)
        self.validation_rows = []

    def _scan_for_viruses(self) -> None:
        """ClamAV over the staged payload, once the copy is whole."""
        policy = self.policy
        if policy.virus == "off":
            return
        db = Path(policy.virus_database) if policy.virus_database else None
        if db is not None and not db.is_absolute():
            db = self.repo.root / db
        self.virus_scan = scan = scan_folder(
            self.bag / "data", database_path=db,
            max_age_days=policy.virus_database_max_age_days,
            timeout=600 + self.total_bytes / 10e6)
        when = now_utc()
        for rel, signature in sorted(scan.infected.items()):
            self._virus_row("data/" + rel, INFECTED, signature, when)
        for rel, why in sorted(scan.not_scanned.items()):
            self._virus_row("data/" + rel, NOT_SCANNED, why, when)
        self._store_verdicts()

    def _virus_row(self, path: str, status: str, detail: str, when: str) -> None:
        scan = self.virus_scan
        event = virus_event(path, status, detail, scan.describe(), when)
        self.file_events.write(event_xml(event, self.aip_id))
        self.validation_rows.append((self.version, path, VIRUS_CHECK, status, detail,
                                     scan.describe(), when, event.identifier))
        self._flag(path, status, [detail])

    def _refuse_by_policy(self) -> None:
        """`strict`: a SIP with a damaged, encrypted or infected file is refused whole."""
        problems = []
        if self.policy.validate == "strict" and any(self.validated[s] for s in AT_RISK):
            problems += [f"{display(f['path'][5:])}: {f['status']}: {'; '.join(f['findings'])}"
                         for f in self.flagged if f["status"] in AT_RISK]
        scan = self.virus_scan
        if self.policy.virus == "strict" and scan is not None:
            if not scan.done:
                problems.append(f"the virus check could not be done: {scan.why_not}")
            problems += [f"{display(rel)}: infected: {sig}" for rel, sig in
                         sorted(scan.infected.items())]
        if problems:
            raise SourceRefused(f"{self.source.origin} is refused by policy (strict): "
                                f"{len(problems)} problem(s); nothing was stored", problems,
                                hint="repair or remove these files in the source, or set "
                                     "ingest.validate / ingest.virus to 'on' to store them "
                                     "marked")

    def _check_events(self, when: str) -> list[Event]:
        """The AIP-level summary of each check (the catalog's events: one each, not one
        per file)."""
        events = []
        if self.policy.validate != "off":
            counts = ", ".join(f"{n} {status}" for status, n in sorted(self.validated.items()))
            unchecked = self.file_count - sum(self.validated.values())
            worst = ("failure" if self.validated[INVALID] else
                     "warning" if self.validated[ENCRYPTED] or self.validated[NOT_CHECKED]
                     else "success")
            events.append(Event(
                "validation", when, worst,
                "format validation of every file whose format has a validator, each "
                "decoded whole in a sandbox; a validation event per file follows"
                + (f" ({', '.join(sorted(self.check_tools))})" if self.check_tools else ""),
                (counts or "no file validated")
                + f"; {unchecked} file(s) of formats without a validator",
                [(AGENT_PRESERVE, "executing program")]))
        scan = self.virus_scan
        if scan is not None:
            if not scan.done:
                events.append(Event("virus check", when, "not done",
                                    "virus check of the payload not done: no file was "
                                    "scanned", scan.why_not,
                                    [(AGENT_PRESERVE, "executing program")]))
            else:
                events.append(Event(
                    "virus check", when, "failure" if scan.infected else "success",
                    f"virus check of every payload file by {scan.describe()}",
                    f"{scan.files} file(s) scanned: {len(scan.infected)} infected, "
                    f"{len(scan.not_scanned)} not scanned whole",
                    [(tool_agent(scan.engine), "executing program")]))
        return events

    def _check_agents(self) -> list[Agent]:
        tools = set(self.check_tools)
        if self.virus_scan is not None and self.virus_scan.engine:
            tools.add(self.virus_scan.engine)
        agents = []
        for tool in sorted(tools):
            name, _, version = tool.partition(" ")
            agents.append(Agent(tool_agent(tool), name, "software", version or None,
                                "validates content" if tool in self.check_tools
                                else "virus scanner"))
        return agents

    def check_summary(self) -> dict:
        """The result's account of both checks."""
        scan = self.virus_scan
        return {
            "validation": {"policy": self.policy.validate, **dict(self.validated),
                           "no validator": self.file_count - sum(self.validated.values())
                           if self.policy.validate != "off" else self.file_count},
            "flagged": self.flagged,
            "virus": None if scan is None else {
                "done": scan.done, "why_not": scan.why_not, "engine": scan.engine,
                "database": scan.database, "files": scan.files,
                "infected": scan.infected, "not_scanned": scan.not_scanned},
        }
