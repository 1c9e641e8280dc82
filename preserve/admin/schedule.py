"""When audits are due, and how to run them on a schedule (cron or systemd)."""

from __future__ import annotations

import datetime as dt
import math
import re
import shutil
import sys
from pathlib import Path

from preserve.catalog.database import RECHECK
from preserve.domain.clock import parse_utc
from preserve.errors import ConfigError
from preserve.repository import Repository

_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_TIME = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_budget(text: str) -> tuple[int | None, float | None]:
    """'500GB' -> (bytes, None); '2h' -> (None, seconds)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*", text)
    if m:
        number, unit = float(m.group(1)), m.group(2).lower()
        if unit in _UNITS:
            return int(number * _UNITS[unit]), None
        if unit in _TIME:
            return None, number * _TIME[unit]
    raise ConfigError(f"budget {text!r}: give bytes (500GB, 2TiB) or time (2h, 30m, 3600s)")


def due_table(repo: Repository) -> list[dict]:
    """Per replica: when its least recently verified file was last verified, and when that
    file is next due ("now" also for a replica whose last audit found damage)."""
    now = dt.datetime.now(dt.UTC)
    rows = []
    for s in repo.catalog.replica_audit_states():
        rule = repo.policy.audit.rule_for(s.collection, s.location)
        next_due = now if s.oldest == RECHECK else (
            parse_utc(s.oldest) + dt.timedelta(days=rule.interval_days))
        rows.append({"aip": s.aip, "version": s.version, "collection": s.collection,
                     "location": s.location, "kind": rule.kind,
                     "interval_days": rule.interval_days, "files": s.files,
                     "last_audit": None if s.never_audited or s.oldest == RECHECK else s.oldest,
                     "damaged": s.oldest == RECHECK,
                     "next_due": next_due.strftime("%Y-%m-%d"), "due_now": next_due <= now})
    rows.sort(key=lambda r: (r["next_due"], r["aip"], r["location"]))
    return rows


def coverage_days(share: float | None, runs_per_day: float = 1.0) -> int | None:
    """With sampling, within how many days every file has been verified (nightly runs)."""
    return None if share is None else math.ceil(1 / share / runs_per_day)


def _command(root: Path) -> str:
    exe = shutil.which("preserve") or str(Path(sys.executable).with_name("preserve"))
    return f"{exe} --repo {root.resolve()} audit --due"


def _review_command(root: Path) -> str:
    return _command(root).replace(" audit --due", " rights review")


def cron_line(root: Path) -> str:
    """The audit every night at 02:17 (not on the hour, to spread load), and the rights
    review just after midnight UTC, when embargoes end and terms run out (each AIP whose
    access changed gets a PREMIS event); mail goes to the owner."""
    return (f"17 2 * * * {_command(root)} --json > {root.resolve()}/last-audit.json "
            "|| echo \"preserve audit: exit $? (1 damage or overdue, 3 unreachable): see "
            f"{root.resolve()}/last-audit.json\"\n"
            f"CRON_TZ=UTC\n5 0 * * * {_review_command(root)} --json > "
            f"{root.resolve()}/last-rights-review.json")


def systemd_units(root: Path) -> str:
    return f"""# /etc/systemd/system/preserve-audit.service
[Unit]
Description=preserve: fixity audit of what the policy says is due
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart={_command(root)}
Environment=PRESERVE_NO_PROGRESS=1
Nice=10
IOSchedulingClass=idle

# /etc/systemd/system/preserve-audit.timer
[Unit]
Description=Run the preserve fixity audit every night

[Timer]
OnCalendar=*-*-* 02:17:00
RandomizedDelaySec=30min
Persistent=true

[Install]
WantedBy=timers.target

# /etc/systemd/system/preserve-rights-review.service
[Unit]
Description=preserve: record each AIP whose access changed today (embargoes, terms)

[Service]
Type=oneshot
ExecStart={_review_command(root)}
Environment=PRESERVE_NO_PROGRESS=1

# /etc/systemd/system/preserve-rights-review.timer
[Unit]
Description=Review access rights every day just after midnight UTC

[Timer]
OnCalendar=*-*-* 00:05:00 UTC
Persistent=true

[Install]
WantedBy=timers.target
"""
