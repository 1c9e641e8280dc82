"""Storage locations for people: define one, see them all, check one works."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from preserve.domain import ocfl
from preserve.domain.schema import load_yaml
from preserve.errors import ConfigError, PreserveError
from preserve.repository import Repository
from preserve.stores.s3_settings import CHECKSUM_BEHAVIOURS, check_endpoint

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class LocationStatus:
    name: str
    kind: str
    where: str
    media: str | None
    commissioned: str | None
    age_years: float | None
    expected_lifetime_years: float | None
    reachable: bool
    problem: str | None
    aip_versions: int
    bytes: int
    in_policy: bool
    free_bytes: int | None = None  # a disk's free space (an object store: None)
    smart: str = "unknown"  # "passed", "FAILED", or "unknown" (no device, no smartctl)
    sole_copies: int = 0  # AIP versions whose only verified copy is here
    below_policy: int = 0  # AIP versions here with fewer verified copies than policy asks
    oldest_verified: str | None = None  # its least recently verified copy, last verified
    warnings: list[str] = field(default_factory=list)
    retired: str | None = None  # the day `storage migrate --retire` emptied it...
    retired_to: str | None = None  # ... moving its copies there


    def to_dict(self) -> dict:
        return asdict(self)


def add_location(repo: Repository, name: str, url: str, *, endpoint_url: str | None = None,
                 region: str | None = None, addressing_style: str | None = None,
                 storage_class: str | None = None, lock_mode: str | None = None,
                 lock_days: int | None = None, checksum: str | None = None,
                 profile: str | None = None, media: str | None = None,
                 lifetime_years: float | None = None, role: str | None = None) -> str:
    """Write locations/NAME.yaml for a path or an s3://bucket/prefix URL; return its path.
    Role `access`: the folder of access copies (a local path), never preservation storage."""
    if not NAME_RE.match(name):
        raise ConfigError(f"location name {name!r}: use letters, digits, '.', '_' or '-'")
    file = repo.root / "locations" / f"{name}.yaml"
    if file.exists():
        raise ConfigError(f"location '{name}' already exists ({file}); edit that file instead")
    data: dict = {"name": name}
    if role not in (None, "preservation", "access"):
        raise ConfigError(f"--role must be preservation or access, not {role!r}")
    if role == "access" and url.startswith("s3://"):
        raise ConfigError("an access location must be a local folder: the reading room "
                          "serves its files", hint="give a folder path")
    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise ConfigError(f"{url!r}: an s3 URL is s3://BUCKET[/PREFIX]")
        if endpoint_url:
            check_endpoint(endpoint_url, "--endpoint-url")  # before anything is written
        data.update({"kind": "s3", "bucket": bucket, "prefix": prefix.strip("/")})
        for key, value in (("endpoint_url", endpoint_url), ("region", region),
                           ("addressing_style", addressing_style),
                           ("storage_class", storage_class), ("profile", profile)):
            if value:
                data[key] = value
        if checksum:
            if checksum not in CHECKSUM_BEHAVIOURS:
                raise ConfigError(f"--checksum must be one of {', '.join(CHECKSUM_BEHAVIOURS)}")
            data["checksum"] = checksum
        if lock_mode or lock_days:
            if lock_mode not in ("GOVERNANCE", "COMPLIANCE") or not lock_days:
                raise ConfigError("Object Lock needs --lock-mode GOVERNANCE|COMPLIANCE and "
                                  "--lock-days N")
            data["object_lock"] = {"mode": lock_mode, "days": int(lock_days)}
        data.setdefault("media", media or "object storage")
    elif role == "access":
        data.update({"kind": "local", "path": url, "role": "access"})
    else:
        _check_local_folder(Path(url))
        data.update({"kind": "local", "path": url})
        data["media"] = media or "hard disk"
    data["commissioned"] = dt.date.today().isoformat()
    if lifetime_years:
        data["expected_lifetime_years"] = lifetime_years
    file.write_text("# credentials are never written here: they come from the environment or an "
                    "AWS profile\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    try:
        Repository(repo.root).close()  # the new file must load (one place counted once...)
        if data.get("role") == "access":
            Path(url).mkdir(parents=True, exist_ok=True)
        elif data["kind"] == "local":
            _make_local_folder(Path(url))  # ... before its folder is made
    except PreserveError:
        file.unlink()
        raise
    return str(file)


def _check_local_folder(path: Path) -> None:
    """A local location's folder is refused, before anything is written, when it is a
    file, or holds files that are not an OCFL storage root's."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file, not a folder", hint="give a folder on the disk "
                          "the copies are to go to")
    if path.is_dir() and any(path.iterdir()) and \
            not (path / ocfl.ROOT_DECLARATION).is_file():
        raise ConfigError(f"{path} holds files but is not an OCFL storage root (no "
                          f"{ocfl.ROOT_DECLARATION}): preserve keeps its copies only in an "
                          "empty folder or a storage root", hint="give an empty folder")


def _make_local_folder(path: Path) -> None:
    """Made when missing (issue 22: `storage add` neither made it nor said it must
    exist); one that cannot be made is named."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{path} cannot be made: {e.strerror or e}",
                          hint="mount the disk first, or create the folder yourself") from None


def location_file(repo: Repository, name: str) -> dict:
    """What locations/NAME.yaml says, as written (the medium, commissioned, site...)."""
    file = repo.root / "locations" / f"{name}.yaml"
    return load_yaml(file.read_text(encoding="utf-8"), file) or {}


def location_statuses(repo: Repository, *, live: bool = True, today: dt.date | None = None,
                      names: set[str] | None = None,
                      answered_within: float = 0.0) -> list[LocationStatus]:
    """Every location, with what threatens the copies on it (issue 25): its medium's age
    against its expected service life (its own, else the policy's for the medium), SMART
    health where a device is named, free space, and the AIP versions that depend on it.
    Without `live`, only what the catalog and the configuration say (the report's: the
    same catalog, the same figures), ages as of `today`. An object store that answered
    within `answered_within` seconds is reachable (an audit's, which just read it)."""
    today = today or dt.date.today()
    held = repo.catalog.replica_summary()
    exposure = repo.catalog.exposure(repo.policy.copies)
    out = []
    for name, location in repo.locations.items():
        if names is not None and name not in names:
            continue
        raw = location_file(repo, name)
        reachable, problem = True, None
        try:
            if live:
                location.check_reachable(answered_within=answered_within)
        except PreserveError as e:
            reachable, problem = False, e.message
        commissioned = raw.get("commissioned")
        age = None
        if commissioned:
            try:
                age = round((today - dt.date.fromisoformat(str(commissioned))).days
                            / 365.25, 1)
            except ValueError:
                age = None
        versions, nbytes = held.get(name, (0, 0))
        life = raw.get("expected_lifetime_years") or repo.policy.media.service_life(
            raw.get("media"))
        status = LocationStatus(name, location.kind, location.describe(), raw.get("media"),
                                str(commissioned) if commissioned else None, age, life,
                                reachable, problem, versions, nbytes,
                                name in repo.policy.locations)
        root = getattr(location, "root", None)
        if live and reachable and root is not None:
            status.free_bytes = shutil.disk_usage(root).free
        status.smart = smart_health(raw.get("device")) if live else "unknown"
        status.sole_copies, status.below_policy, status.oldest_verified = exposure.get(
            name, (0, 0, None))
        status.warnings = _warnings(status, repo.policy)
        out.append(status)
    for name, raw in sorted(repo.retired.items()) if names is None else []:
        out.append(LocationStatus(
            name, str(raw.get("kind")), str(raw.get("path") or raw.get("bucket")),
            raw.get("media"), str(raw.get("commissioned") or "") or None, None,
            None, True, None, 0, 0, False, retired=str(raw["retired"]),
            retired_to=raw.get("retired_to")))
    return out


def _warnings(s: LocationStatus, policy) -> list[str]:
    said = []
    life = s.expected_lifetime_years
    if life and s.age_years is not None:
        if s.age_years >= life:
            said.append(f"past its expected service life ({s.age_years:g} of {life:g} "
                        "years): move its copies to a new medium")
        elif s.age_years >= life * policy.media.warn_at:
            said.append(f"{s.age_years:g} of its {life:g} years of expected service life: "
                        "plan its replacement")
    if s.smart == "FAILED":
        said.append("SMART says the disk is failing: move its copies now")
    if s.sole_copies:
        said.append(f"{s.sole_copies} AIP version(s) have their only verified copy here")
    if s.below_policy and policy.copies > 1:
        said.append(f"{s.below_policy} AIP version(s) held here have fewer verified copies "
                    f"than policy asks ({policy.copies}): 'preserve replicate'")
    if s.free_bytes is not None and s.bytes and s.free_bytes < s.bytes // 10:
        said.append(f"{s.free_bytes:,} bytes free: less than a tenth of what it holds")
    return said


def smart_health(device: str | None) -> str:
    """The disk's own verdict (`smartctl --json -H`, smartmontools) where the location
    names its device: "passed" or "FAILED"; "unknown" where it names none, smartctl is not
    installed or cannot read it (never an error: many disks and every object store have
    no SMART)."""
    if not device or shutil.which("smartctl") is None:
        return "unknown"
    try:
        done = subprocess.run(["smartctl", "--json", "-H", str(device)], capture_output=True,
                              text=True, timeout=30)
        passed = json.loads(done.stdout).get("smart_status", {}).get("passed")
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError):
        return "unknown"
    return "unknown" if passed is None else ("passed" if passed else "FAILED")
