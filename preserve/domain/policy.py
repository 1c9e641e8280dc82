"""Preservation policies: YAML files in the repository's policies/ folder, checked on load.

A mistake in a policy is reported with the file, the key and what is
allowed, before any work starts. Later sections (audit schedules, format
risks, rights) extend the same schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from preserve.domain.rights import COUNTING, STATUSES, RightsPolicy
from preserve.domain.schema import POLICY as POLICY_KEYS
from preserve.domain.schema import check_keys, read_yaml
from preserve.errors import ConfigError

MANIFEST_ALGORITHMS = ("sha512", "sha256")
LINK_CHOICES = ("refuse", "skip", "follow-inside")
SPECIAL_CHOICES = ("refuse", "skip")
COLLISION_CHOICES = ("refuse", "allow")


@dataclass
class IngestPolicy:
    links: str = "refuse"
    special_files: str = "refuse"
    case_collisions: str = "refuse"
    # What an archive may expand to: its members' declared sizes together, and each zip
    # member, at most this many times the bytes they take in the archive. Deflate cannot
    # pass about 1032:1; beyond it lie bombs (bzip2, xz, sparse tar members, overlapping
    # zip members).
    archive_max_ratio: int = 1000
    # Format validation (issue 26): off; on (every file with a validator checked, damaged
    # ones marked and listed); strict (a SIP with a damaged or encrypted file refused).
    validate: str = "on"
    # Virus scanning with ClamAV, the same three choices (strict: an infected SIP refused).
    virus: str = "on"
    virus_database: str | None = None  # a folder or signature file; the system's if None
    virus_database_max_age_days: float = 7


@dataclass
class TextPolicy:
    """Full text (issue 27): whether ingest extracts it (`extract`: on or off), and the
    OCR languages (tesseract's model names, in order, the first leading): for every
    collection (`languages`) or for one (`collections`); none named: detected per page."""
    extract: str = "off"
    languages: list[str] = field(default_factory=list)
    collections: dict[str, list[str]] = field(default_factory=dict)

    def languages_for(self, collection: str) -> list[str] | None:
        return self.collections.get(collection) or self.languages or None


# Access copies (issue 28) per kind of file, and what each choice makes: documents as a
# PDF/A-2b with a text layer; images as a JPEG with level-0 IIIF tiles for the page
# viewer (iiif) or the JPEG alone; sound as Opus or MP3; video as WebM (VP9, Opus) or MP4
# (H.264, AAC); none: no copy of that kind.
ACCESS_CHOICES = {"documents": ("pdfa", "none"), "images": ("iiif", "jpeg", "none"),
                  "sound": ("opus", "mp3", "none"), "video": ("mp4", "webm", "none")}
CLOSED_ITEMS = ("hidden", "metadata")


@dataclass
class AccessPolicy:
    """What access copies are made, and what the reading room shows (issue 28)."""
    copies: dict[str, str] = field(default_factory=lambda: {
        kind: choices[0] for kind, choices in ACCESS_CHOICES.items()})
    # Rights statuses whose preservation masters a reader may download (none by default).
    masters: list[str] = field(default_factory=list)
    # A closed item in the reading room: hidden (404, as if it did not exist) or its
    # metadata page with the rights and the day it opens, and nothing else of it.
    closed_items: str = "hidden"


AUDIT_KINDS = ("quick", "full")


@dataclass
class AuditRule:
    """How often and how deeply replicas are audited; overrides match a collection and/or a
    location (the last matching override wins)."""
    interval_days: float = 90
    kind: str = "quick"
    collection: str | None = None
    location: str | None = None


@dataclass
class AuditPolicy:
    default: AuditRule = field(default_factory=AuditRule)
    overrides: list[AuditRule] = field(default_factory=list)
    # Share of all files verified per run on top of what is due, least recently verified
    # first: spreads audits evenly (0.02 with nightly runs covers every file in 50 days).
    sample: float | None = None
    budget_bytes: int | None = None     # per run
    budget_seconds: float | None = None

    def rule_for(self, collection: str, location: str) -> AuditRule:
        rule = self.default
        for o in self.overrides:
            if (o.collection in (None, collection)) and (o.location in (None, location)):
                rule = AuditRule(o.interval_days, o.kind, o.collection, o.location)
        return rule


# Expected service life of storage media, in years, when a location does not say its own
# (expected_lifetime_years): manufacturers' and the field's usual figures (hard disks a
# 5-year warranty, LTO 15-30 years of shelf life but a drive generation of about 7 to read
# it, optical 10); an object store's is the provider's to keep (none).
SERVICE_LIFE_YEARS: dict[str, float | None] = {
    "hard disk": 5, "hdd": 5, "ssd": 5, "lto": 7, "tape": 7, "optical": 10,
    "object storage": None, "object-store": None}


@dataclass
class MediaPolicy:
    service_life_years: dict[str, float | None] = field(
        default_factory=lambda: dict(SERVICE_LIFE_YEARS))
    warn_at: float = 0.8  # warn once a medium has lived this share of its service life

    def service_life(self, media: str | None) -> float | None:
        return self.service_life_years.get((media or "").lower())


@dataclass
class Policy:
    source: str = "(built-in)"
    manifest_algorithms: list[str] = field(default_factory=lambda: list(MANIFEST_ALGORITHMS))
    copies: int = 1
    locations: list[str] = field(default_factory=lambda: ["local"])
    ingest: IngestPolicy = field(default_factory=IngestPolicy)
    audit: AuditPolicy = field(default_factory=AuditPolicy)
    media: MediaPolicy = field(default_factory=MediaPolicy)
    text: TextPolicy = field(default_factory=TextPolicy)
    rights: RightsPolicy = field(default_factory=RightsPolicy)
    access: AccessPolicy = field(default_factory=AccessPolicy)


def _need(cond: bool, file: Path, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{file}: '{key}' {message}", hint="fix the policy file and re-run")


def _choice(section: dict, key: str, choices: tuple, default: str, file: Path, where: str) -> str:
    value = section.get(key, default)
    _need(value in choices, file, f"{where}.{key}",
          f"must be one of {', '.join(choices)} (found {value!r})")
    return value


CHECK_CHOICES = ("off", "on", "strict")


def _switch(section: dict, key: str, file: Path) -> str:
    """on, off or strict; YAML 1.1 reads a bare on/off as true/false, taken as meant."""
    value = section.get(key, "on")
    value = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
    return _choice({key: value}, key, CHECK_CHOICES, "on", file, "ingest")


def load_policy(path: Path) -> Policy:
    text, data = read_yaml(path, "policy file")
    _need(isinstance(data, dict), path, "(top)", "must be a mapping of sections")
    check_keys(text, POLICY_KEYS, path)  # every key, at every level, with its line
    policy = Policy(source=str(path))

    fixity = data.get("fixity") or {}
    _need(isinstance(fixity, dict), path, "fixity", "must be a mapping")
    algorithms = fixity.get("manifest_algorithms", policy.manifest_algorithms)
    _need(isinstance(algorithms, list) and algorithms and
          all(a in MANIFEST_ALGORITHMS for a in algorithms) and
          len(set(algorithms)) == len(algorithms),
          path, "fixity.manifest_algorithms",
          f"must be a non-empty list drawn from {', '.join(MANIFEST_ALGORITHMS)}")
    policy.manifest_algorithms = list(algorithms)
    policy.audit = _audit_policy(fixity.get("audit") or {}, path)

    replication = data.get("replication") or {}
    _need(isinstance(replication, dict), path, "replication", "must be a mapping")
    copies = replication.get("copies", 1)
    _need(isinstance(copies, int) and copies >= 1, path, "replication.copies",
          "must be a whole number of at least 1")
    locations = replication.get("locations", ["local"])
    _need(isinstance(locations, list) and all(isinstance(x, str) for x in locations) and
          len(locations) >= copies, path, "replication.locations",
          "must list at least as many location names as copies")
    policy.copies, policy.locations = copies, locations

    media = data.get("media") or {}
    _need(isinstance(media, dict), path, "media", "must be a mapping")
    lives = media.get("service_life_years") or {}
    _need(isinstance(lives, dict) and all(
        v is None or (isinstance(v, int | float) and v > 0) for v in lives.values()),
        path, "media.service_life_years", "must map medium names to years (or null)")
    warn_at = media.get("warn_at", MediaPolicy.warn_at)
    _need(isinstance(warn_at, int | float) and 0 < warn_at <= 1, path, "media.warn_at",
          "must be a share of the service life, above 0 and at most 1")
    policy.media = MediaPolicy({**SERVICE_LIFE_YEARS,
                                **{str(k).lower(): v for k, v in lives.items()}}, warn_at)

    ingest = data.get("ingest") or {}
    _need(isinstance(ingest, dict), path, "ingest", "must be a mapping")
    policy.ingest = IngestPolicy(
        links=_choice(ingest, "links", LINK_CHOICES, "refuse", path, "ingest"),
        special_files=_choice(ingest, "special_files", SPECIAL_CHOICES, "refuse", path, "ingest"),
        case_collisions=_choice(ingest, "case_collisions", COLLISION_CHOICES, "refuse", path,
                                "ingest"),
        archive_max_ratio=ingest.get("archive_max_ratio", IngestPolicy.archive_max_ratio),
        validate=_switch(ingest, "validate", path),
        virus=_switch(ingest, "virus", path),
        virus_database=ingest.get("virus_database"),
        virus_database_max_age_days=ingest.get("virus_database_max_age_days",
                                               IngestPolicy.virus_database_max_age_days),
    )
    _need(policy.ingest.virus_database is None or isinstance(policy.ingest.virus_database, str),
          path, "ingest.virus_database", "must be the path of a folder or signature file")
    age = policy.ingest.virus_database_max_age_days
    _need(isinstance(age, int | float) and age > 0, path, "ingest.virus_database_max_age_days",
          "must be a number of days above 0")
    _need(isinstance(policy.ingest.archive_max_ratio, int)
          and policy.ingest.archive_max_ratio >= 1, path, "ingest.archive_max_ratio",
          "must be a whole number of at least 1")
    policy.text = _text_policy(data.get("text") or {}, path)
    policy.rights = _rights_policy(data.get("rights") or {}, path)
    policy.access = _access_policy(data.get("access") or {}, path)
    return policy


def _access_policy(access: dict, path: Path) -> AccessPolicy:
    _need(isinstance(access, dict), path, "access", "must be a mapping")
    copies = access.get("copies") or {}
    _need(isinstance(copies, dict), path, "access.copies",
          "must map documents, images, sound and video to a kind of copy")
    policy = AccessPolicy()
    for kind, choices in ACCESS_CHOICES.items():
        policy.copies[kind] = _choice(copies, kind, choices, choices[0], path, "access.copies")
    masters = access.get("masters") or []
    _need(isinstance(masters, list) and all(m in STATUSES for m in masters), path,
          "access.masters", f"must be a list of rights statuses ({', '.join(STATUSES)})")
    policy.masters = list(masters)
    policy.closed_items = _choice(access, "closed_items", CLOSED_ITEMS, "hidden", path, "access")
    return policy


def _rights_policy(rights: dict, path: Path) -> RightsPolicy:
    _need(isinstance(rights, dict), path, "rights", "must be a mapping")
    without = _choice(rights, "without_statement", ("open", "closed"), "open", path, "rights")
    after = rights.get("public_after") or {}
    _need(isinstance(after, dict), path, "rights.public_after",
          "must be a mapping: {years: 75, from: Creator-Death-Date}")
    years = after.get("years")
    _need(years is None or (isinstance(years, int) and 0 < years <= 500), path,
          "rights.public_after.years", "must be a number of years from 1 to 500")
    label = after.get("from")
    _need(years is None or isinstance(label, str) and label.strip(), path,
          "rights.public_after.from", "must name the bag-info label holding the date "
          "the years count from (e.g. Creator-Death-Date)")
    counting = _choice(after, "counting", COUNTING, "year-end", path, "rights.public_after")
    return RightsPolicy(without, years, label, counting)


def _text_policy(text: dict, path: Path) -> TextPolicy:
    _need(isinstance(text, dict), path, "text", "must be a mapping")
    extract = _choice(text, "extract", ("on", "off"), "off", path, "text") \
        if not isinstance(text.get("extract"), bool) else ("on" if text["extract"] else "off")
    languages = text.get("languages") or []
    collections = text.get("collections") or {}
    _need(isinstance(collections, dict), path, "text.collections",
          "must map a collection's name to its languages")
    for where, names in [("text.languages", languages),
                         *((f"text.collections.{c}", v) for c, v in collections.items())]:
        _need(isinstance(names, list) and all(isinstance(n, str) and re.fullmatch(
            r"[a-z_]+", n) for n in names), path, where,
            "must be a list of tesseract language models, e.g. [kaz, rus]")
    return TextPolicy(extract, list(languages), {str(c): list(v) for c, v in collections.items()})


def _audit_rule(data: dict, path: Path, where: str, base: AuditRule) -> AuditRule:
    _need(isinstance(data, dict), path, where, "must be a mapping")
    interval = data.get("interval_days", base.interval_days)
    _need(isinstance(interval, int | float) and interval > 0, path, f"{where}.interval_days",
          "must be a number of days above 0")
    kind = data.get("kind", base.kind)
    _need(kind in AUDIT_KINDS, path, f"{where}.kind", f"must be one of {', '.join(AUDIT_KINDS)}")
    return AuditRule(float(interval), kind, data.get("collection"), data.get("location"))


def _audit_policy(data: dict, path: Path) -> AuditPolicy:
    _need(isinstance(data, dict), path, "fixity.audit", "must be a mapping")
    default = _audit_rule({k: v for k, v in data.items() if k in ("interval_days", "kind")},
                          path, "fixity.audit", AuditRule())
    overrides = []
    for i, item in enumerate(data.get("overrides") or []):
        where = f"fixity.audit.overrides[{i}]"
        _need(isinstance(item, dict) and ("collection" in item or "location" in item), path,
              where, "must name a collection and/or a location")
        overrides.append(_audit_rule(item, path, where, default))
    sample = data.get("sample")
    _need(sample is None or (isinstance(sample, int | float) and 0 < sample <= 1), path,
          "fixity.audit.sample", "must be a share between 0 (excluded) and 1")
    budget_bytes = data.get("budget_bytes")
    _need(budget_bytes is None or (isinstance(budget_bytes, int) and budget_bytes > 0), path,
          "fixity.audit.budget_bytes", "must be a whole number of bytes")
    budget_seconds = data.get("budget_seconds")
    _need(budget_seconds is None or (isinstance(budget_seconds, int | float) and
                                     budget_seconds > 0), path, "fixity.audit.budget_seconds",
          "must be a number of seconds")
    return AuditPolicy(default, overrides, None if sample is None else float(sample), budget_bytes,
                       budget_seconds)
