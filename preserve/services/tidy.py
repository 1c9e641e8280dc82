"""What interrupted runs left behind, found and removed by the next run of any writer.

A kill, a power cut or a full disk can stop ingest, replicate, repair or export at any
instant. Each of them writes first where nothing counts yet (a staging folder named by
its process id, a location's .staging area) and makes its work visible in one last
step, so what such a run leaves is debris, never data: this module removes it, only
once the process that made it has ended, and says what it removed (red-team cases 47,
51, 59). Unfinished AIP records are resolved by ingest.recover.
"""

from __future__ import annotations

import os
import re

from preserve.infrastructure import fstree
from preserve.infrastructure.locks import owner_gone, pid_alive
from preserve.infrastructure.repository import Repository
from preserve.infrastructure.storage import LocalStorage
from preserve.infrastructure.tools import kill_orphaned_tools
from preserve.services.ingest import recover
from preserve.services.packed_bags import UNPACK_STAGING  # a packed bag's unpacking

REPAIR_STAGING = "repair-"
MIGRATE_STAGING = "migrate-"  # a migration's working folders (see services/migrate.py)
WORK_STAGING = (REPAIR_STAGING, MIGRATE_STAGING, UNPACK_STAGING)


def tidy(repo: Repository) -> list[str]:
    """Remove what earlier, ended runs left; a line per thing removed or resolved."""
    actions = recover(repo)
    actions += kill_orphaned_tools()  # before their working folders go (cases 45, 60)
    for path in ended_work(repo):
        fstree.rmtree(path, ignore_errors=True)
        actions.append(f"removed {path}, left by an interrupted {work_kind(path)}")
    for location in repo.locations.values():
        if isinstance(location, LocalStorage) and location.root.is_dir():
            actions += location.remove_leftovers()
    return actions


def work_kind(path) -> str:
    """What left a working folder: "repair", "migration" or "ingest of a packed bag"."""
    if path.name.startswith(UNPACK_STAGING):
        return "ingest of a packed bag"
    return "repair" if path.name.startswith(REPAIR_STAGING) else "migration"


def ended_work(repo: Repository) -> list:
    """Working folders of repairs and migrations whose process has ended."""
    return [repo.staging / entry for entry in sorted(os.listdir(repo.staging))
            if entry.startswith(WORK_STAGING) and owner_gone(entry)]


def remove_partial_exports(dest) -> list[str]:
    """'DEST.partial-<pid>' folders of exports to DEST whose process has ended (case 52)."""
    parent, name = os.path.split(os.path.abspath(dest))
    removed = []
    for entry in (os.listdir(parent) if os.path.isdir(parent) else []):
        rest = entry[len(name):]
        if entry.startswith(name) and re.fullmatch(r"\.partial-[0-9]+", rest) and \
                not pid_alive(int(rest[len(".partial-"):])):
            fstree.rmtree(os.path.join(parent, entry), ignore_errors=True)
            removed.append(f"removed {os.path.join(parent, entry)}, left by an interrupted "
                           "export")
    return removed
