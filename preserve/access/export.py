"""Export: write an AIP version out of storage as a BagIt bag, verified on the way out.

The bag of version N is the OCFL version's logical state: each of its files is read
from the version whose content/ holds it, every byte hashed as it is copied and
compared with the digests the catalog recorded for it (payload and tag files alike),
so a file swapped in storage, its inventory rewritten to match, is still caught.
The bag appears at DEST only when all of it verified: it is written to a
sibling "DEST.partial-<pid>" folder and renamed at the end.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from preserve.domain import bag as bagfmt
from preserve.domain import ocfl
from preserve.domain.bag import EMPTY_DIRS_FILE
from preserve.domain.fixity import hash_stream, write_all
from preserve.domain.names import check_relative, decode_manifest_path, display
from preserve.domain.progress import Progress, Silent
from preserve.errors import ConfigError, FixityMismatch, NotFound, StorageUnreachable
from preserve.repository import Repository
from preserve.storage.recovery import remove_partial_exports
from preserve.stores import LocalStorage
from preserve.system import fstree
from preserve.system.space import full_disk_named, require_space


@dataclass
class ExportResult:
    aip_id: str
    version: int
    destination: str
    files: int
    bytes: int
    location: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def export(repo: Repository, ref: str, dest: Path, *, version: int | None = None,
           location: str | None = None, progress: Progress | None = None,
           override_rights: str | None = None) -> ExportResult:
    """Write a version out as a bag, every byte verified. An AIP rights close is refused
    unless `override_rights` says why: the reason, the user and the rule overridden are
    then recorded as a PREMIS event before a byte is written."""
    progress = progress or Silent()
    catalog = repo.catalog
    aip_id = catalog.resolve(ref)
    _rights_allow(repo, aip_id, override_rights)
    summary = catalog.get_aip(aip_id)
    version = summary.version if version is None else version  # 0 is no version (case 29)
    if not 1 <= version <= summary.version:
        raise NotFound(f"AIP {aip_id} has version{'s 1 to' if summary.version > 1 else ''} "
                       f"{summary.version}, not {version}", hint="'preserve show' lists them")
    locations = catalog.replica_locations(aip_id, version)
    if location and location not in locations:
        raise NotFound(f"AIP {aip_id} v{version} has no replica at location '{location}'",
                       hint=f"replicas: {', '.join(locations)}")
    name = location or next((n for n in locations if n in repo.locations), None)
    if name is None:
        raise StorageUnreachable(f"none of the locations holding AIP {aip_id} "
                                 f"({', '.join(locations)}) is configured here")
    storage = repo.locations[name]
    storage.check_reachable()
    root = ocfl.object_of(catalog.replica_key(aip_id, version, name))

    dest = _destination(repo, Path(dest))
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} already exists and is not empty; choose a new destination")
    remove_partial_exports(dest)  # what a killed export to DEST left
    partial = dest.parent / f"{dest.name}.partial-{os.getpid()}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    fstree.rmtree(partial, ignore_errors=True)

    needed = catalog.version_info(aip_id, version)["bytes"]
    where = f"the disk of {dest.parent}"
    require_space(dest.parent, needed, where)
    try:
        with full_disk_named(where, needed):
            files, nbytes = _copy_verified(catalog, storage, root, aip_id, version, partial,
                                           progress)
        try:
            if dest.exists():
                dest.rmdir()  # the empty folder given as DEST
            os.rename(partial, dest)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise ConfigError(f"{dest} was filled while this export ran (another export to "
                              "it finished first); nothing of this one was kept",
                              hint="choose a new destination") from e
    except BaseException:
        fstree.rmtree(partial, ignore_errors=True)
        raise
    return ExportResult(aip_id, version, str(dest), files, nbytes, name)


def _destination(repo: Repository, dest: Path) -> Path:
    """DEST as given, once it is known to be no link (an export never writes through one:
    case 30) and outside the repository and every local storage location (an export into
    the storage root, an object's next version folder or staging/ was accepted, then
    blocked that AIP's next version or was removed as debris: case 31)."""
    if os.path.islink(dest):
        raise ConfigError(f"{dest} is a symbolic link; an export is written to a real folder "
                          "only", hint="give the folder the link points to, or a new one")
    above = dest.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise ConfigError(f"{dest} cannot be made: {above} is a file, not a folder",
                          hint="choose a destination inside a folder")
    real = os.path.realpath(dest)
    kept = [("the repository", repo.root)] + [
        (f"storage location '{name}'", loc.root) for name, loc in repo.locations.items()
        if isinstance(loc, LocalStorage)]
    for what, root in kept:
        root = os.path.realpath(root)
        if os.path.commonpath([root, real]) == root:
            raise ConfigError(f"{dest} is inside {what} ({root}); an export goes outside "
                              "what preserve keeps", hint="choose a folder elsewhere")
    return dest


def _copy_verified(catalog, storage, root: str, aip_id: str, version: int, partial: Path,
                   progress) -> tuple[int, int]:
    """Write every file of the bag of `version` into `partial`, each read from the version
    whose content holds it and hashed on the way against the catalog's digests. The
    files are streamed from the catalog: memory does not grow with their number."""
    info = catalog.version_info(aip_id, version)
    progress.start("export", info["files"], info["bytes"])
    problems: list[str] = []
    files = nbytes = 0
    for rel, held_in, size, want in catalog.state_files(aip_id, version):
        check_relative(rel)
        target = os.path.join(partial, rel)  # a string: pathlib would intern every name
        fstree.makedirs(os.path.dirname(target))
        key = ocfl.key_of(ocfl.version_key(root, held_in), rel)
        try:
            with storage.open(key, size) as src, open(target, "xb") as out:
                size, digests, _ = hash_stream(src, list(want), sink=write_all(out.write))
        except FileNotFoundError:
            problems.append(f"{display(rel)!r} is missing from storage (v{held_in})")
            continue
        except FixityMismatch as e:  # not a regular file, or not of its recorded size
            problems.append(f"{display(rel)!r} (v{held_in}): {e.message}")
            continue
        files += 1
        nbytes += size
        progress.advance(1, size)
        for algorithm, digest in want.items():
            if digests[algorithm] != digest:
                problems.append(f"{display(rel)!r} (v{held_in}): {algorithm} is "
                                f"{digests[algorithm]}, expected {digest}")
                break
        if len(problems) > 1000:
            break
    if problems:
        raise FixityMismatch("the stored AIP did not verify; nothing was exported:\n  "
                             + "\n  ".join(problems[:50]),
                             hint="run an audit; restore the AIP from another replica")
    empty = partial / EMPTY_DIRS_FILE
    if empty.is_file():
        for line in bagfmt.split_lines(empty.read_text(encoding="utf-8")):
            rel = decode_manifest_path(line)
            check_relative(rel)
            fstree.makedirs(partial / rel)
    return files, nbytes


def _rights_allow(repo: Repository, aip_id: str, override: str | None) -> None:
    from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
    from preserve.access.rights import decision
    from preserve.domain.clock import now_utc
    from preserve.domain.premis import Agent, Event
    from preserve.errors import RightsRefused
    from preserve.storage.object_log import record_event
    from preserve.storage.versions import version_user

    decided = decision(repo, aip_id)
    if decided.open:
        return
    if override is None or not override.strip():
        raise RightsRefused(
            f"AIP {aip_id} is closed by its rights: {decided.chain[-1]}",
            hint="'preserve rights explain' says why; --override-rights REASON exports it "
                 "anyway, recorded with your name")
    user, _ = version_user()
    person = f"user-{user}"
    event = Event("dissemination", now_utc(), "success",
                  "export of an AIP its rights close, rights overridden: "
                  + "; ".join(decided.chain), override.strip(),
                  [(AGENT_PRESERVE, "executing program"), (person, "authorizer")])
    agents = [Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__,
                    "preserve digital preservation repository"), Agent(person, user, "person")]
    location = repo.primary_location()
    record_event(repo, location, ocfl.object_root(aip_id), aip_id, event, "rights-override",
                 agents)
