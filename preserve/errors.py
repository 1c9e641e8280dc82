"""Typed errors. Each carries what a person needs to act, and maps to one exit code.

The CLI turns these into a one-paragraph message and the contract's exit code
(DESIGN.md): 1 problems found, 2 usage or configuration, 3 storage unreachable
or tool failure. Anything else escaping is a bug, reported as exit 3, never 0.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130


class PreserveError(Exception):
    """Base class: a failure with a message meant for the archivist."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(PreserveError):
    """A repository, location or policy file is missing or malformed."""


class BadArgument(PreserveError):
    """A value given on the command line cannot be used as it is."""


class SourceRefused(PreserveError):
    """The submitted source cannot be ingested as it is (links, collisions, unsafe archive)."""

    exit_code = EXIT_PROBLEMS

    def __init__(self, message: str, items: list[str] | None = None, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.items = items or []


class BagInvalid(PreserveError):
    """A bag (given to ingest, or read back from storage) failed validation."""

    exit_code = EXIT_PROBLEMS

    def __init__(self, message: str, findings: list | None = None, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.findings = findings or []


class FixityMismatch(PreserveError):
    """Bytes read do not match a recorded digest."""

    exit_code = EXIT_PROBLEMS


class RightsRefused(PreserveError):
    """Rights close what was asked for (an export of a closed AIP)."""

    exit_code = EXIT_PROBLEMS


class NotFound(PreserveError):
    """An AIP, location or path the user named does not exist."""

    exit_code = EXIT_USAGE


class StorageUnreachable(PreserveError):
    """A storage location cannot be reached. Never reported as missing data."""

    exit_code = EXIT_UNREACHABLE


class NoSpace(StorageUnreachable):
    """A disk filled up (or a quota ran out): nothing half-written was kept."""


class ToolFailure(PreserveError):
    """An external tool (identification, conversion) crashed or timed out."""

    exit_code = EXIT_UNREACHABLE


class Busy(PreserveError):
    """Another run holds what this one needs (an audit meeting another audit): try later."""

    exit_code = EXIT_UNREACHABLE
