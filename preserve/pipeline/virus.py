"""Virus scanning with ClamAV (issue 26): `clamdscan` where a daemon runs and the system's
signatures are used, else `clamscan`, over a folder of files.

What it never does is call a file clean that was not scanned: a missing signature
database, or one older than policy allows, is a scan not done (said once, recorded as
such); a file too large for the engine's limits is reported by ClamAV itself
(`--alert-exceeds-max`) and recorded as not scanned, not as clean; a file the engine
could not read is named.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from preserve.errors import PreserveError
from preserve.system.tools import find_tool, run_tool, tool_version

SYSTEM_DATABASE = Path("/var/lib/clamav")
CLAMD_SOCKETS = (Path("/run/clamav/clamd.ctl"), Path("/var/run/clamav/clamd.ctl"))
LIMIT = "Heuristics.Limits.Exceeded"  # ClamAV's name for "too large to scan whole"
MEMORY_MB = 8192  # the official signatures take about 1.5 GB once loaded
SIGNATURE_FILES = re.compile(r".*\.(cvd|cld|cud|hdb|hsb|mdb|msb|ndb|ldb|cdb|yar|yara|ign2?|fp|sfp)$")


@dataclass
class Scan:
    done: bool
    why_not: str = ""
    engine: str = ""
    database: str = ""
    infected: dict[str, str] = field(default_factory=dict)  # path -> signature
    not_scanned: dict[str, str] = field(default_factory=dict)  # path -> why
    files: int = 0

    def describe(self) -> str:
        return f"{self.engine}; signatures: {self.database}"


@dataclass
class Database:
    path: Path
    version: str
    built: dt.datetime | None

    def age_days(self, today: dt.datetime) -> float | None:
        return (today - self.built).total_seconds() / 86400 if self.built else None


def database(where: Path | None) -> Database | None:
    """The signature database at `where` (a folder or one signature file; the system's
    by default): its version and build date, or None when there is none."""
    where = where or SYSTEM_DATABASE
    files = ([where] if where.is_file() else
             sorted(p for p in where.glob("*") if SIGNATURE_FILES.fullmatch(p.name))
             if where.is_dir() else [])
    if not files:
        return None
    official = [p for p in files if p.suffix in (".cvd", ".cld")]
    if official:
        return _official(where, official)
    newest = max(p.stat().st_mtime for p in files)
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.read_bytes())
    names = ", ".join(p.name for p in files)
    return Database(where, f"custom signatures {names} (sha256 {digest.hexdigest()[:16]})",
                    dt.datetime.fromtimestamp(newest, dt.UTC))


def _official(where: Path, files: list[Path]) -> Database:
    """The official databases' versions and the newest build time, from their headers
    ("ClamAV-VDB:<build time>:<version>:..." in the first 512 bytes)."""
    versions, built = [], None
    for p in files:
        with open(p, "rb") as f:
            head = f.read(512).decode("latin-1", "replace").split(":")
        if len(head) > 2 and head[0] == "ClamAV-VDB":
            versions.append(f"{p.stem} {head[2]}")
            when = _header_time(head[1])
            if when and (built is None or when > built):
                built = when
    return Database(where, ", ".join(versions) or "unknown version", built)


def _header_time(text: str) -> dt.datetime | None:
    try:  # "08 Nov 2025 04:25 -0500"
        return dt.datetime.strptime(text.strip(), "%d %b %Y %H-%M %z")
    except ValueError:
        try:
            return dt.datetime.strptime(text.strip(), "%d %b %Y %H:%M %z")
        except ValueError:
            return None


def scan_folder(folder: Path, *, database_path: Path | None, max_age_days: float,
                today: dt.datetime | None = None, timeout: float = 3600) -> Scan:
    """Scan every file under `folder`; paths in the result are relative to it."""
    today = today or dt.datetime.now(dt.UTC)
    if find_tool("clamscan") is None:
        return Scan(False, "ClamAV is not installed (Debian package clamav)")
    db = database(database_path)
    engine = f"ClamAV {tool_version('clamscan') or '(version unknown)'}"
    if db is None:
        where = database_path or SYSTEM_DATABASE
        return Scan(False, f"no ClamAV signature database in {where} (run freshclam, or "
                           "set ingest.virus_database in the policy)", engine)
    age = db.age_days(today)
    if age is not None and age > max_age_days:
        return Scan(False, f"the ClamAV signatures in {db.path} are {age:.0f} days old, "
                           f"older than policy allows ({max_age_days:g}): run freshclam",
                    engine, db.version)
    return _run(folder, db, database_path is None, engine, timeout)


def _daemon() -> bool:
    return find_tool("clamdscan") is not None and any(s.exists() for s in CLAMD_SOCKETS)


def _run(folder: Path, db: Database, system: bool, engine: str, timeout: float) -> Scan:
    limits = ["--alert-exceeds-max=yes", "--max-filesize=4000M", "--max-scansize=4000M",
              "--max-files=100000", "--max-recursion=64"]
    if system and _daemon():
        argv = ["clamdscan", "--fdpass", "--multiscan", "--no-summary", "--infected"]
        engine = f"ClamAV clamd {tool_version('clamdscan') or ''}".strip()
    else:
        argv = ["clamscan", "--recursive", "--no-summary", "--infected",
                *limits, *([] if system else [f"--database={db.path}"])]
    with tempfile.TemporaryDirectory(prefix="preserve-clamav-") as work:
        log = os.path.join(work, "log")  # every line, however many (run_tool keeps a tail)
        try:
            run = run_tool([*argv, f"--log={log}", str(folder)], timeout=timeout,
                           memory_mb=MEMORY_MB, isolated=True)
        except PreserveError as e:
            return Scan(False, f"ClamAV did not finish: {e.message}", engine, db.version)
        lines = _log_lines(log)
    scan = Scan(True, "", engine, db.version, files=_count(folder))
    for line in lines:
        path, _, said = line.rpartition(": ")
        if not path.startswith(str(folder)):
            continue
        rel = os.path.relpath(path, folder)
        if said.endswith(" FOUND"):
            signature = said[: -len(" FOUND")]
            if signature.startswith(LIMIT):
                scan.not_scanned[rel] = f"too large for the engine's limits ({signature})"
            else:
                scan.infected[rel] = signature
        elif said.endswith(" ERROR"):
            scan.not_scanned[rel] = said[: -len(" ERROR")]
    if run.returncode not in (0, 1) and not scan.infected and not scan.not_scanned:
        return Scan(False, f"ClamAV failed: {run.summary()}", engine, db.version)
    return scan


def _log_lines(log: str) -> list[str]:
    try:
        with open(log, encoding="utf-8", errors="surrogateescape") as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _count(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))
