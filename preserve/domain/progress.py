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


class Share:
    """One item's share of a run's bar (a version copied: its files and bytes), advanced
    as its parts are done, never past its share; `finish` gives the rest (an item done
    whole, or failed)."""

    def __init__(self, progress: Progress, files: int, nbytes: int):
        self.progress, self.files, self.nbytes = progress, files, nbytes

    def start(self, phase, files, nbytes) -> None:
        pass

    def advance(self, files: int, nbytes: int) -> None:
        files, nbytes = min(files, self.files), min(nbytes, self.nbytes)
        self.files, self.nbytes = self.files - files, self.nbytes - nbytes
        if files or nbytes:
            self.progress.advance(files, nbytes)

    def finish(self) -> None:
        self.advance(self.files, self.nbytes)
