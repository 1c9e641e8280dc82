"""A repair's restoration of one file, kept as an intent until its events are recorded.

Repair writes several good copies at once (an object store across a WAN costs a round
trip or more per file: one after another, 300 files took a minute). A run killed then
may have restored files whose PREMIS events it had not yet recorded. So before a good
copy is written, the restoration is kept in its working folder (staging/repair-*, an
intent, synced) with the identifier its replication event will have; the intent goes
with the folder once the events are recorded. A run that finds the folder of a run that
ended (recovery.tidy) finishes the record: if the event is not in the catalog and the
file at the location now matches the record, the restoration happened, and its events
are recorded, saying so; if it does not match, nothing was restored (the next audit
finds the damage again). Nothing restored is ever left without its event.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from preserve import AGENT_NAME, __version__
from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.fixity import hash_stream
from preserve.domain.premis import Agent, Event
from preserve.errors import PreserveError, StorageUnreachable
from preserve.storage.expected import expected_digests
from preserve.storage.object_log import event_record, record_event

INTENT = "restoring.json"  # in the restoration's working folder


def want(catalog, aip_id: str, version: int, path: str) -> dict[str, str]:
    """What the file must hash to: the catalog's record (content files, inventories, and
    the object root's files of the version that is the head where the damage is)."""
    return dict(expected_digests(catalog, aip_id, version, root=True).digests(path) or {})


def keep_intent(folder: Path, aip_id: str, version: int, location: str, path: str,
                kind: str, source: str) -> str:
    """Keep, before the write, what is about to be restored; the identifier its
    replication event will have."""
    event_id = str(uuid.uuid4())
    with open(folder / INTENT, "x", encoding="utf-8") as f:
        json.dump({"event": event_id, "aip": aip_id, "version": version,
                   "location": location, "path": path, "kind": kind, "source": source}, f)
        f.flush()
        os.fsync(f.fileno())
    return event_id


def verified_in_place(target, key: str, digests: dict[str, str], *,
                      unreachable: bool = False) -> bool:
    """Whether the file at `key` hashes to every recorded digest (with `unreachable`, a
    location that cannot be read raises StorageUnreachable instead of answering no)."""
    if not digests:
        return False
    try:
        with target.open(key) as f:
            _, found, _ = hash_stream(f, list(digests))
    except StorageUnreachable:
        if unreachable:
            raise
        return False
    except (OSError, PreserveError):
        return False
    return all(found[a] == d for a, d in digests.items())


def record_restoration(repo, storage, aip_id: str, version: int, location: str, path: str,
                       kind: str, outcome: str, detail: str, event_id: str | None = None,
                       *, documents=None) -> None:
    """The repair's events (the audit already recorded the failed fixity check): the
    replication and, once the restored copy has been read back, the fixity check that
    passed; in the catalog, and in the object's logs/ at the repaired location (a rebuilt
    catalog has them back). `storage`: that location, None if no longer configured;
    `documents`: an object_log.DocumentWriter that writes their documents."""
    agent = f"{AGENT_NAME}-{__version__}"
    success = outcome == "repaired"
    replication = Event("replication", now_utc(), "success" if success else "failure",
                        f"repair of {path} ({kind}) at location '{location}'", detail,
                        [(agent, "executing program")])
    if event_id is not None:
        replication.identifier = event_id
    events = [replication]
    if success:
        events.append(Event("fixity check", now_utc(), "success",
                            f"{path} at location '{location}' re-read after repair",
                            "matches the recorded digests", [(agent, "executing program")]))
    agents = [Agent(agent, AGENT_NAME, "software", __version__)]
    for event in events:
        if storage is None:  # a location no longer configured: the catalog alone
            repo.catalog.add_events([event_record(aip_id, event, None)])
        else:
            record_event(repo, storage, ocfl.object_root(aip_id), aip_id, event,
                         f"repair-{location}-v{version}", agents, documents=documents)


def finish_restoration(repo, folder: Path) -> tuple[list[str], bool]:
    """The working folder of a repair that ended: its restoration's events recorded if
    the file was restored and they were not (see the module). (A line if so, whether the
    folder may go: not while the location cannot be read, the intent kept for the next
    run.)"""
    try:
        intent = json.loads((folder / INTENT).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none kept (or killed as it was): nothing was written
        return [], True
    if repo.catalog.has_event(intent["event"]):
        return [], True  # recorded: killed as the folder was being removed
    aip_id, version, location, path = (intent["aip"], intent["version"], intent["location"],
                                       intent["path"])
    storage = repo.locations.get(location)
    if storage is None or location not in repo.catalog.replica_locations(aip_id, version):
        return [], True
    key = ocfl.key_of(repo.catalog.replica_key(aip_id, version, location), path)
    try:
        restored = verified_in_place(storage, key, want(repo.catalog, aip_id, version, path),
                                     unreachable=True)
    except StorageUnreachable:
        return [f"kept {folder}: an interrupted repair may have restored {path} at "
                f"'{location}', which cannot be read now to record it"], False
    if not restored:
        return [], True  # not restored: the damage is still there for the next audit
    record_restoration(repo, storage, aip_id, version, location, path, intent["kind"],
                       "repaired", f"restored from '{intent['source']}' and verified (its "
                       "events recorded after the repair that wrote it was interrupted)",
                       intent["event"])
    return [f"recorded the repair of {path} at '{location}' (AIP {aip_id} v{version}), "
            "which an interrupted repair had written"], True
