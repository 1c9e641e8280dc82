"""What interrupted runs left behind, found and removed by the next run of any writer.

A kill, a power cut or a full disk can stop ingest, replicate, repair or export at any
instant. Each of them writes first where nothing counts yet (a staging folder named by
its process id, a location's .staging area) and makes its work visible in one last
step, so what such a run leaves is debris, never data: this module removes it, only
once the process that made it has ended, and says what it removed (red-team cases 47,
51, 59). Unfinished AIP records and versions are resolved here too (recover,
resolve_versions): every writer calls tidy() first, and this module imports no operation.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.repository import Repository
from preserve.storage.object_log import complete_documents
from preserve.storage.restorations import finish_restoration
from preserve.stores import LocalStorage
from preserve.system import fstree
from preserve.system.locks import OWN_STAGING, owner_gone, pid_alive
from preserve.system.tools import kill_orphaned_tools

UNPACK_STAGING = "unpack-"  # a packed bag's unpacking: unpack-<pid>-<hex>
REPAIR_STAGING = "repair-"
MIGRATE_STAGING = "migrate-"  # a migration's working folders (see planning/migrate.py)
EXTRACT_STAGING = "extract-"  # full text's (data/extract.py)
ACCESS_STAGING = "access-"  # an access copy's (access/copies.py)
WORK_STAGING = (REPAIR_STAGING, MIGRATE_STAGING, UNPACK_STAGING, EXTRACT_STAGING,
                ACCESS_STAGING)
_WORK_KINDS = {UNPACK_STAGING: "ingest of a packed bag", REPAIR_STAGING: "repair",
               MIGRATE_STAGING: "migration", EXTRACT_STAGING: "text extraction",
               ACCESS_STAGING: "access copy"}


def tidy(repo: Repository) -> list[str]:
    """Remove what earlier, ended runs left; a line per thing removed or resolved."""
    actions = recover(repo)
    actions += complete_documents(repo)  # events recorded, their documents not yet written
    actions += kill_orphaned_tools()  # before their working folders go (cases 45, 60)
    for path in ended_work(repo):
        if path.name.startswith(REPAIR_STAGING):  # what it restored has its events first
            lines, finished = finish_restoration(repo, path)
            actions += lines
            if not finished:
                continue
        fstree.rmtree(path, ignore_errors=True)
        actions.append(f"removed {path}, left by an interrupted {work_kind(path)}")
    for location in repo.locations.values():
        if isinstance(location, LocalStorage) and location.root.is_dir():
            actions += location.remove_leftovers()
    return actions


def work_kind(path) -> str:
    """What left a working folder: "repair", "migration", "ingest of a packed bag"..."""
    return next(kind for prefix, kind in _WORK_KINDS.items() if path.name.startswith(prefix))


def ended_work(repo: Repository) -> list:
    """Working folders of repairs and migrations whose process has ended."""
    return [repo.staging / entry for entry in sorted(os.listdir(repo.staging))
            if entry.startswith(WORK_STAGING) and owner_gone(entry)]


def remove_ended_access_copies(folder) -> list[str]:
    """'<pid>-<hex>' folders of access copies being made (access/copies.py, in the access
    location's .staging/) whose run has ended."""
    return _remove_ended(folder, r"([0-9]+)-[0-9a-f]+", "access copy")


def remove_partial_exports(dest) -> list[str]:
    """'DEST.partial-<pid>' folders of exports to DEST whose process has ended (case 52)."""
    parent, name = os.path.split(os.path.abspath(dest))
    return _remove_ended(parent, re.escape(name) + r"\.partial-([0-9]+)", "export")


def _remove_ended(parent, pattern: str, what: str) -> list[str]:
    """Folders in `parent` named by `pattern` (its group: the pid of the run that made
    it) whose run has ended, removed: a line each."""
    removed = []
    for entry in (sorted(os.listdir(parent)) if os.path.isdir(parent) else []):
        match = re.fullmatch(pattern, entry)
        if match and not pid_alive(int(match.group(1))):
            fstree.rmtree(os.path.join(parent, entry), ignore_errors=True)
            removed.append(f"removed {os.path.join(parent, entry)}, left by an interrupted "
                           f"{what}")
    return removed


def recover(repo: Repository) -> list[str]:
    """Resolve what an interrupted ingest left behind; return a line per action taken.

    A staging folder whose owner process is gone is removed. A "staging"
    catalog row becomes "stored" if its bag reached storage intact (the tag
    manifest's digest matches the one recorded before publishing), and is
    removed otherwise.
    """
    actions = []
    repo.staging.mkdir(exist_ok=True)
    for lock in repo.staging.glob("*.lock"):
        if not OWN_STAGING.fullmatch(lock.name) or lock_alive(lock):
            continue  # a running ingest's, or not preserve's at all: never removed
        aip_id = lock.stem
        fstree.rmtree(repo.staging / aip_id, ignore_errors=True)
        lock.unlink(missing_ok=True)
        actions.append(f"removed the staging folder of interrupted ingest {aip_id}")
    for aip_id in repo.catalog.pending():
        if (repo.staging / f"{aip_id}.lock").exists():
            continue  # another ingest is still running
        location = repo.primary_location()
        version = 1
        try:
            info = repo.catalog.version_info(aip_id, version)
        except Exception:
            info = None
        root = ocfl.object_root(aip_id)
        key = ocfl.version_key(root, version)
        inventory = root + ocfl.INVENTORY
        if info is not None and location.stat(inventory) is not None:
            with location.open(inventory) as f:
                digest = hashlib.file_digest(f, "sha512").hexdigest()
            if digest == info["inventory_sha512"]:
                repo.catalog.mark_stored(aip_id, version, location.name, key, now_utc())
                actions.append(f"completed the catalog record of AIP {aip_id} (its bag was "
                               "already stored)")
                continue
        repo.catalog.discard_aip(aip_id)
        location.remove_empty_folders(root)  # a kill between mkdir and rename (case 47)
        actions.append(f"discarded the unfinished catalog record of AIP {aip_id}")
    return actions + resolve_versions(repo)


def resolve_versions(repo: Repository) -> list[str]:
    """Finish or undo later versions (describe, migration) whose run ended before
    recording them stored. The object root's inventory decides: naming the new version,
    it was published (the catalog is completed); naming the one before, it was not (its
    folder, which nothing references, is removed with its rows)."""
    actions = []
    catalog = repo.catalog
    for aip_id, version in catalog.pending_versions():
        if lock_alive(repo.staging / f"{aip_id}.v{version}.lock"):
            continue  # its run is still going
        location = repo.primary_location()
        root = ocfl.object_root(aip_id)
        key = ocfl.version_key(root, version)
        try:
            with location.open(root + ocfl.INVENTORY) as f:
                digest = hashlib.file_digest(f, "sha512").hexdigest()
        except FileNotFoundError:
            digest = None
        if digest == catalog.version_info(aip_id, version)["inventory_sha512"]:
            location.put_bytes(root + ocfl.SIDECAR, ocfl.sidecar(digest))  # if not yet
            catalog.mark_stored(aip_id, version, location.name, key, now_utc())
            actions.append(f"completed the catalog record of AIP {aip_id} v{version} (it was "
                           "already stored)")
        elif digest == catalog.version_info(aip_id, version - 1)["inventory_sha512"]:
            location.delete_prefix(key)
            catalog.discard_version(aip_id, version)
            actions.append(f"removed the unfinished version {version} of AIP {aip_id}")
        else:
            actions.append(f"AIP {aip_id} v{version} is unfinished and its object's root "
                           "inventory names neither it nor the version before: left for "
                           "'preserve audit' and 'preserve repair'")
    for aip_id, version in catalog.orphan_versions():
        if lock_alive(repo.staging / f"{aip_id}.v{version}.lock"):
            continue  # a run is writing it: its files are recorded before the version
        if catalog.discard_orphan_rows(aip_id, version):  # (red-team case 55)
            actions.append(f"removed the file records of AIP {aip_id} v{version}, a version "
                           "never staged")
    return actions


def lock_alive(lock: Path) -> bool:
    """Whether the run that wrote this staging lock (its pid first) still runs. A lock
    read while its writer is writing it is empty: it is alive while young (red-team case
    55: a describe's tidy took a running describe's empty lock for a dead one's, removed
    its staging folder and completed its version under it)."""
    try:
        return pid_alive(int(lock.read_text().split()[0]))
    except FileNotFoundError:
        return False
    except (ValueError, IndexError):
        try:
            return time.time() - lock.stat().st_mtime < LOCK_WRITING_SECONDS
        except OSError:
            return False


LOCK_WRITING_SECONDS = 60  # how long an unreadable lock is taken for one being written


DRILL_SCRATCH = "preserve-drill-"  # a restore drill's folder in the system's temporary folder


def remove_ended_drills(scratch) -> list[str]:
    """'preserve-drill-<pid>-<hex>' folders under `scratch` (the system's temporary
    folder) whose drill has ended: a killed drill leaves its restored copy there."""
    return _remove_ended(scratch, re.escape(DRILL_SCRATCH) + r"([0-9]+)-[0-9a-f]+",
                         "restore drill")
