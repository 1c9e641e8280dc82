"""The progress protocol: how a long operation reports its phases, files and bytes, so that
the CLI can draw a bar and a library caller or a --json run can show nothing."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, phase: str, files: int, nbytes: int) -> None: ...
    def advance(self, files: int, nbytes: int) -> None: ...


class Silent:
    """A Progress that shows nothing (library use, tests, --json runs)."""

    def start(self, phase, files, nbytes):
        pass

    def advance(self, files, nbytes):
        pass
