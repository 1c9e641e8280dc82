"""A repository: configuration, catalog, storage locations and policies in one folder.

    <repo>/preserve.yaml       configuration (format version, default policy, and the
                               catalog's PostgreSQL address where it is shared)
    <repo>/catalog.sqlite      the catalog, unless it is on PostgreSQL
    <repo>/locations/*.yaml    storage locations ("local" is created by init)
    <repo>/policies/*.yaml     this repository's policies (copied from policies/ by init)
    <repo>/aips/               the default local location's store
    <repo>/keys/log-ed25519.pem the key that signs the event log's checkpoints
    <repo>/staging/            work area of running ingests
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from preserve.catalog import Catalog
from preserve.catalog.database import database_errors, is_server_url, safe_url
from preserve.domain.policy import Policy, load_policy
from preserve.domain.schema import LOCATION as LOCATION_KEYS
from preserve.domain.schema import check_keys, load_yaml
from preserve.errors import ConfigError
from preserve.stores import LocalStorage, Storage
from preserve.stores.base import ensure_ocfl_root
from preserve.stores.s3 import S3Storage
from preserve.stores.s3_settings import SECRET_KEYS, settings_from_yaml
from preserve.system.keys import create_key

CONFIG_NAME = "preserve.yaml"
REPOSITORY_FORMAT = 1
DEFAULT_POLICY = "default"
CATALOG_FILE = "catalog.sqlite"
# The event log's signing key (system/keys.py), outside every storage location.
LOG_KEY = "keys/log-ed25519.pem"


def default_root() -> Path:
    """--repo wins, then PRESERVE_REPO, then ./storage beside the current directory."""
    env = os.environ.get("PRESERVE_REPO")
    return Path(env) if env else Path.cwd() / "storage"


def bundled_policies() -> Path:
    """The default policies shipped with preserve (the checkout's policies/ folder)."""
    here = Path(__file__).resolve().parents[1] / "policies"
    if not here.is_dir():
        raise ConfigError(f"the default policies folder {here} is missing",
                          hint="reinstall preserve from its source checkout (pip install -e .)")
    return here


@dataclass
class LocationConfig:
    name: str
    kind: str
    file: Path
    settings: dict = field(default_factory=dict)


class Repository:
    def __init__(self, root: Path, *, rebuilding: bool = False, read_only: bool = False):
        """`read_only`: the catalog opened so that nothing can be written through it (the
        reading room)."""
        self.root = Path(root)
        config_path = self.root / CONFIG_NAME
        if not config_path.is_file():
            raise ConfigError(f"no preserve repository at {self.root} ({CONFIG_NAME} is missing)",
                              hint="run 'preserve init' (or pass --repo DIR / set PRESERVE_REPO)")
        try:
            self.config = load_yaml(config_path.read_text(encoding="utf-8"), config_path) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{config_path} is not valid YAML: {e}") from e
        if self.config.get("format") != REPOSITORY_FORMAT:
            raise ConfigError(f"{config_path}: repository format {self.config.get('format')!r} "
                              f"is not {REPOSITORY_FORMAT}, the one this preserve reads")
        self.catalog = Catalog(self.catalog_address, rebuilding=rebuilding, read_only=read_only)
        self.policy: Policy = load_policy(
            self.root / "policies" / f"{self.config.get('policy', DEFAULT_POLICY)}.yaml")
        self.retired: dict[str, dict] = {}  # locations emptied by `storage migrate --retire`
        self.access_path: Path | None = None  # the location with role access, if any
        self.locations = self._load_locations()
        for name in self.policy.locations:
            if name in self.retired:
                raise ConfigError(f"policy {self.policy.source} names location '{name}', "
                                  f"which was retired on {self.retired[name]['retired']}",
                                  hint="name the location its copies moved to "
                                       f"('{self.retired[name].get('retired_to', '?')}') instead")
            if name not in self.locations and \
                    (self.root / "locations" / f"{name}.yaml").is_file():
                raise ConfigError(f"policy {self.policy.source} names location '{name}', "
                                  "whose role is access: it keeps access copies, never "
                                  "preservation copies", hint="name a preservation location")
            if name not in self.locations:
                raise ConfigError(f"policy {self.policy.source} names location '{name}', "
                                  f"which has no file {self.root / 'locations' / (name + '.yaml')}")

    @property
    def catalog_address(self) -> str | Path:
        """The PostgreSQL URL recorded by `init --catalog` (shared mode), else the SQLite
        file beside the configuration."""
        return self.config.get("catalog") or self.root / CATALOG_FILE

    @property
    def log_key_path(self) -> Path:
        """The event log's signing key (`log_key` in preserve.yaml, relative to the
        repository unless absolute; keys/log-ed25519.pem when not named)."""
        return self.root / str(self.config.get("log_key") or LOG_KEY)

    @property
    def shared(self) -> bool:
        """Whether the catalog is on PostgreSQL, which the job queue needs."""
        return self.catalog.server

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    def _load_locations(self) -> dict[str, Storage]:
        out: dict[str, Storage] = {}
        folder = self.root / "locations"
        for file in sorted(folder.glob("*.yaml")):
            cfg = _read_location(file)
            if cfg.settings.get("retired"):  # emptied and given up: history, not storage
                self.retired[cfg.name] = cfg.settings
                continue
            if cfg.kind in LOCATION_KEYS:
                check_keys(file.read_text(encoding="utf-8"), LOCATION_KEYS[cfg.kind], file,
                           ignore=SECRET_KEYS)
            role = cfg.settings.get("role") or "preservation"
            if role == "access":  # access copies (issue 28): never preservation storage
                self.access_path = self._access_location(file, cfg)
                continue
            if role != "preservation":
                raise ConfigError(f"{file}: role {role!r} is not one preserve knows "
                                  "(preservation, the default, or access)")
            if cfg.kind == "local":
                path = Path(cfg.settings.get("path", cfg.name))
                if not path.is_absolute():
                    path = self.root / path
                out[cfg.name] = LocalStorage(cfg.name, path)
            elif cfg.kind == "s3":
                out[cfg.name] = S3Storage(cfg.name, settings_from_yaml(cfg.name, cfg.settings,
                                                                       file))
            else:
                raise ConfigError(f"{file}: storage kind {cfg.kind!r} is not one preserve "
                                  "knows (local, s3)")
        _refuse_shared_places(out, folder)
        return out

    def _access_location(self, file: Path, cfg) -> Path:
        """The folder of the location with role `access`: where access copies are kept,
        apart from every preservation copy (one such location; a local folder)."""
        if cfg.kind != "local":
            raise ConfigError(f"{file}: an access location must be a local folder (kind "
                              "local): the reading room serves its files")
        if self.access_path is not None:
            raise ConfigError(f"{file}: a second location with role access; keep one")
        path = Path(cfg.settings.get("path", cfg.name))
        return path if path.is_absolute() else self.root / path

    def primary_location(self) -> LocalStorage:
        """The first location of the replication policy: a local disk, where bags are built."""
        location = self.locations[self.policy.locations[0]]
        if not isinstance(location, LocalStorage):
            raise ConfigError(f"policy {self.policy.source}: the first location "
                              f"('{location.name}') must be a local disk; list object stores "
                              "after it")
        return location

    def replica_locations(self) -> list[Storage]:
        """The locations policy asks every AIP to be copied to, primary first."""
        return [self.locations[n] for n in self.policy.locations[: self.policy.copies]]

    def close(self) -> None:
        self.catalog.close()

    @classmethod
    def init(cls, root: Path, catalog: str | None = None) -> tuple[Repository, list[str]]:
        """Create what is missing of a repository at `root`; never overwrite anything. A
        place where no repository can be made (under a file, in /proc, read-only) is a
        configuration error naming it (red-team case 65), never an internal error.

        `catalog`: a postgresql:// URL (without its password) for a catalog shared by many
        machines; None keeps it in SQLite beside the configuration."""
        if catalog is not None and not is_server_url(catalog):
            raise ConfigError(f"--catalog {catalog!r} is not a postgresql:// address",
                              hint="leave it out for the SQLite catalog of one machine")
        address = safe_url(catalog) if catalog else None
        try:
            return cls._init(Path(root), address)
        except (OSError, *database_errors()) as e:
            if address and not isinstance(e, OSError):
                first = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
                raise ConfigError(f"cannot reach the catalog {address}: {first}; nothing was "
                                  "written", hint="check that the database server runs and "
                                  "that PGUSER/PGPASSWORD or ~/.pgpass let you in, then run "
                                  "init again") from e
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise ConfigError(f"cannot create a repository at {root}: {reason}",
                              hint="choose a folder you can write to with --repo or "
                                   "PRESERVE_REPO") from e

    @classmethod
    def _init(cls, root: Path, address: str | None) -> tuple[Repository, list[str]]:
        created: list[str] = []
        root.mkdir(parents=True, exist_ok=True)
        config = root / CONFIG_NAME
        if not config.exists():
            settings = {
                "format": REPOSITORY_FORMAT,
                "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
                "policy": DEFAULT_POLICY,
                "log_key": LOG_KEY,
            }
            if address:
                settings["catalog"] = address
            config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
            created.append(str(config))
        recorded = (load_yaml(config.read_text(encoding="utf-8")) or {}).get("catalog")
        if address and recorded != address:
            raise ConfigError(f"{config} already names the catalog {recorded or CATALOG_FILE}",
                              hint="a repository has one catalog: leave --catalog out, or "
                                   "init another folder")
        if recorded:
            from preserve.catalog.queue import ensure_schema

            try:
                if Catalog.create_if_missing(recorded):
                    created.append(f"catalog tables in {recorded}")
                if ensure_schema(recorded):
                    created.append(f"job queue tables in {recorded}")
            except BaseException:  # a server that cannot be reached: this init never
                if str(config) in created:  # happened (issue 22: its preserve.yaml blocked
                    config.unlink()         # a later plain init)
                raise
        elif not (root / CATALOG_FILE).exists():
            Catalog.create_if_missing(root / CATALOG_FILE)
            created.append(str(root / CATALOG_FILE))
        policies = root / "policies"
        policies.mkdir(exist_ok=True)
        for file in sorted(bundled_policies().glob("*.yaml")):
            if not (policies / file.name).exists():
                shutil.copyfile(file, policies / file.name)
                created.append(str(policies / file.name))
        locations = root / "locations"
        locations.mkdir(exist_ok=True)
        local = locations / "local.yaml"
        if not local.exists():
            local.write_text(yaml.safe_dump({
                "name": "local", "kind": "local", "path": "aips", "media": "hard disk",
                "commissioned": dt.date.today().isoformat(), "expected_lifetime_years": 5,
            }, sort_keys=False), encoding="utf-8")
            created.append(str(local))
        for sub in ("aips", "staging"):
            if not (root / sub).exists():
                (root / sub).mkdir()
                created.append(str(root / sub))
        repo = cls(root)
        if not repo.log_key_path.exists():
            create_key(repo.log_key_path)
            created.append(str(repo.log_key_path))
        local = repo.locations.get("local")
        if isinstance(local, LocalStorage) and local.root.is_dir():
            ensure_ocfl_root(local)  # an OCFL storage root from the start
        return repo, created


def _refuse_shared_places(locations: dict[str, Storage], folder: Path) -> None:
    """Two locations on the same bucket and prefix, the same folder, or one inside the
    other would count one copy twice (red-team case 84: the catalog claimed 3 copies where
    2 existed, and replicating to the second deleted the first's objects)."""
    placed = sorted((location.place(), name) for name, location in locations.items())
    for ((store, prefix), name), ((other_store, other_prefix), other) in zip(
            placed, placed[1:], strict=False):
        if store == other_store and other_prefix.startswith(prefix):
            how = "the same place" if prefix == other_prefix else f"a place inside '{name}'"
            raise ConfigError(f"locations '{name}' and '{other}' are {how} "
                              f"({locations[other].describe()}): one copy would count as two",
                              hint=f"remove {folder / (other + '.yaml')} or point it "
                                   "elsewhere: each location must be a separate copy")


def _read_location(file: Path) -> LocationConfig:
    try:
        data = load_yaml(file.read_text(encoding="utf-8"), file) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{file} is not valid YAML: {e}") from e
    if not isinstance(data, dict) or "kind" not in data:
        raise ConfigError(f"{file}: a location needs at least 'kind' (local)")
    given = data.get("name", file.stem)
    name = str(given)
    if name != file.stem:
        raise ConfigError(f"{file}: name {name!r} must match the file name {file.stem!r}",
                          hint=f"write it in quotes: name: '{file.stem}' (YAML reads "
                               "off, on, yes and no as true or false)"
                          if isinstance(given, bool | int | float) else None)
    return LocationConfig(name, str(data["kind"]), file, data)
