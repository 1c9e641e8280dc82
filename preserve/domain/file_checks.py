"""The PREMIS events of checks of one file's content (issue 26), written and read back in
one place: a format validation (its outcome is the verdict: valid, invalid, encrypted,
not checked) and a virus check of one file (infected, or not scanned whole).

The catalog's file_validations rows are made from what these events say, so that a
catalog rebuilt from storage alone (data/rebuild.py) gets the same rows back from the
versions' PREMIS and the objects' logs/ documents:
    eventDetail         "format validation by <tools>: <method>" ("virus check by <engine>")
    eventOutcome        the verdict (validation); "failure" / "not done" (virus check)
    eventOutcomeDetail  the findings, "; "-joined (validation); "<status>: <detail>" (virus)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from preserve.domain.premis import Event, decode_name

VALIDATION = "validation"
VIRUS_CHECK = "virus check"
VALIDATION_BY = "format validation by "
VIRUS_BY = "virus check by "


@dataclass
class CheckRow:
    path: str  # bag path
    check_type: str
    status: str
    detail: str | None
    tools: str
    checked: str
    event: str


def tool_agent(tool: str) -> str:
    """A tool's PREMIS agent identifier: "qpdf 11.3.0" -> "qpdf-11.3.0"."""
    return "-".join(tool.split())


def validation_event(path: str, status: str, findings: list[str], tools: list[str],
                     method: str, when: str, implementer: str) -> Event:
    return Event(VALIDATION, when, status,
                 f"{VALIDATION_BY}{', '.join(tools) or 'preserve'}: {method}",
                 "; ".join(findings) or None,
                 [(tool_agent(t), "executing program") for t in tools]
                 + [(implementer, "implementer")], objects=[(path, "source")])


def virus_event(path: str, status: str, detail: str, engine: str, when: str) -> Event:
    return Event(VIRUS_CHECK, when, "failure" if status == "infected" else "not done",
                 f"{VIRUS_BY}{engine}", f"{status}: {detail}",
                 [(tool_agent(engine.split(';')[0]), "executing program")],
                 objects=[(path, "source")])


def check_row(event: Event) -> CheckRow | None:
    """The catalog row an event of one file's check makes (None: not such an event)."""
    if len(event.objects) != 1:
        return None
    path = event.objects[0][0]
    if event.type == VALIDATION and event.detail.startswith(VALIDATION_BY):
        tools, _, method = event.detail[len(VALIDATION_BY):].partition(": ")
        return CheckRow(path, VALIDATION, event.outcome, event.outcome_detail or method,
                        "" if tools == "preserve" else tools, event.datetime,
                        event.identifier)
    if event.type == VIRUS_CHECK and event.detail.startswith(VIRUS_BY) \
            and event.outcome_detail:
        status, _, detail = event.outcome_detail.partition(": ")
        return CheckRow(path, VIRUS_CHECK, status, detail, event.detail[len(VIRUS_BY):],
                        event.datetime, event.identifier)
    return None


_EVENT = re.compile(r"<premis:event>(.*?)</premis:event>", re.S)


def _field(block: str, name: str) -> str | None:
    m = re.search(f"<premis:{name}>([^<]*)</premis:{name}>", block)
    return _unescape(m.group(1)) if m else None


def _unescape(escaped: str) -> str:
    if "&" in escaped:
        escaped = escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return decode_name(escaped) if "%" in escaped else escaped


def read_check_rows(premis_text: str) -> list[CheckRow]:
    """The per-file check events of a PREMIS document preserve wrote (premis.event_xml's
    layout), as catalog rows, in document order."""
    rows = []
    for block in _EVENT.findall(premis_text):
        kind = _field(block, "eventType")
        if kind not in (VALIDATION, VIRUS_CHECK) or "bag path" not in block:
            continue
        paths = [_unescape(v) for v in re.findall(
            r"<premis:linkingObjectIdentifierType>bag path</premis:linkingObjectIdentifierType>"
            r"\s*<premis:linkingObjectIdentifierValue>([^<]*)<", block)]
        event = Event(kind, _field(block, "eventDateTime") or "",
                      _field(block, "eventOutcome") or "", _field(block, "eventDetail") or "",
                      _field(block, "eventOutcomeDetailNote"),
                      identifier=_field(block, "eventIdentifierValue") or "",
                      objects=[(p, "source") for p in paths])
        row = check_row(event)
        if row is not None:
            rows.append(row)
    return rows
