"""The clock: UTC instants as ISO 8601 text, the one form the catalog, PREMIS and the
object logs store and compare."""

from __future__ import annotations

import datetime as dt


def now_utc(precise: bool = False) -> str:
    """UTC, ISO 8601. `precise` adds microseconds, for audit records that order checks made
    within one second (both forms compare correctly as text, except inside one second)."""
    return dt.datetime.now(dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ" if precise else "%Y-%m-%dT%H:%M:%SZ")


def parse_utc(stamp: str) -> dt.datetime:
    """The inverse of now_utc, either form."""
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ" if "." in stamp
                                else "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
