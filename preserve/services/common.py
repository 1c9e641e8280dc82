"""Small things every service shares: the clock and the progress protocol."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Progress(Protocol):
    def start(self, phase: str, files: int, nbytes: int) -> None: ...
    def advance(self, files: int, nbytes: int) -> None: ...


class Silent:
    """A Progress that shows nothing (library use, tests, --json runs)."""

    def start(self, phase, files, nbytes):
        pass

    def advance(self, files, nbytes):
        pass
