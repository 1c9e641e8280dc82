"""Small things every service shares: the clock, the progress protocol, and the object's
log of events that make no version."""

from __future__ import annotations

import datetime as dt
import io
from contextlib import suppress
from typing import Protocol

from preserve.domain import ocfl
from preserve.domain.premis import Agent, Event, PremisWriter
from preserve.errors import PreserveError


def now_utc(precise: bool = False) -> str:
    """UTC, ISO 8601. `precise` adds microseconds, for audit records that order checks made
    within one second (both forms compare correctly as text, except inside one second)."""
    return dt.datetime.now(dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ" if precise else "%Y-%m-%dT%H:%M:%SZ")


def parse_utc(stamp: str) -> dt.datetime:
    """The inverse of now_utc, either form."""
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ" if "." in stamp
                                else "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


class Progress(Protocol):
    def start(self, phase: str, files: int, nbytes: int) -> None: ...
    def advance(self, files: int, nbytes: int) -> None: ...


class Silent:
    """A Progress that shows nothing (library use, tests, --json runs)."""

    def start(self, phase, files, nbytes):
        pass

    def advance(self, files, nbytes):
        pass


def store_log_event(storage, object_root: str, aip_id: str, event: Event, label: str,
                    agents: list[Agent] | None = None) -> None:
    """Keep an event that changes no version (an audit, a rejected migration, a new
    identification) as a PREMIS document in the object's logs/, where OCFL puts what is
    not content: `<time>-<label>-<event id>.xml`. A store that cannot be written to
    loses only this copy: the catalog keeps the event whatever happens here."""
    buffer = io.StringIO()
    PremisWriter(buffer, aip_id).finish([event], agents or [])
    stamp = event.datetime.replace(":", "").replace("-", "")
    key = f"{object_root}{ocfl.LOGS}/{stamp}-{label}-{event.identifier}.xml"
    with suppress(PreserveError, OSError):  # logs/ a file or a link: audit names it
        storage.put_bytes(key, buffer.getvalue().encode("utf-8"))
