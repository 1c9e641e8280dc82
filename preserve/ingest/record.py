"""What an ingest records of itself: the AIP's bag-info.txt fields, its PREMIS events and
agents (the ingestion, the digests, identification, the source bag's validation), the
warnings the archivist reads at the end, and the result (IngestResult). A part of the
ingest job (ingest/ingest.py), which holds the state it describes."""

from __future__ import annotations

from dataclasses import dataclass, field

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.domain import bag as bagfmt
from preserve.domain.bag import SOURCE_BAG_DIR
from preserve.domain.clock import now_utc
from preserve.domain.fixity import FAST_ALGORITHM
from preserve.domain.identify import EXTENSION_ONLY, SIGNATURE, tool_versions
from preserve.domain.model import EventRecord
from preserve.domain.names import display
from preserve.domain.premis import Agent, Event

WARNINGS_RECORDED = 100  # warnings written out one by one in PREMIS; the rest are counted
REGENERATED = {"bagging-date", "payload-oxum", "bag-size", "bag-software-agent"}


def recorded(items: list[str], limit: int = WARNINGS_RECORDED) -> str:
    """Items for a PREMIS note: the first `limit` one by one, the rest counted."""
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


@dataclass
class IngestResult:
    aip_id: str
    collection: str
    source: str
    source_kind: str
    files: int
    bytes: int
    empty_dirs: int
    formats: list[tuple[str | None, str | None, int]]
    unidentified: int
    extension_only: int
    skipped: list[str]
    seconds: float
    location: str
    warnings: list[str] = field(default_factory=list)
    replicas: list[str] = field(default_factory=list)
    replication_problems: list[str] = field(default_factory=list)
    duplicate_of: list[str] = field(default_factory=list)  # AIPs holding the same content
    # validation (verdict -> files), flagged (files not valid), virus (the scan), issue 26
    checks: dict = field(default_factory=dict)
    text: dict | None = None  # the full text extracted after ingest (policy text.extract)

    def problems(self) -> list[str]:
        """Files stored that are damaged or infected (policy `on` stores them marked; the
        ingest succeeded, exit 0; `strict` would have refused the SIP)."""
        checks = self.checks or {}
        virus = checks.get("virus") or {}
        return ([f"{f['path']}: {f['status']}: {'; '.join(f['findings'])}"
                 for f in checks.get("flagged", []) if f["status"] in ("invalid", "infected")]
                + [f"data/{p}: infected: {s}" for p, s in (virus.get("infected") or {}).items()
                   if not any(f["path"] == "data/" + p for f in checks.get("flagged", []))])

    def to_dict(self) -> dict:
        d = {"id": self.aip_id, **self.__dict__}
        d["formats"] = [{"puid": p, "format": f, "files": n} for p, f, n in self.formats]
        d["throughput_bytes_per_second"] = int(self.bytes / self.seconds) if self.seconds else 0
        return d


class IngestRecord:
    """The record-making part of the ingest job (ingest.ingest._Job): it reads the job's
    source, scan, metadata, counts and tool versions."""

    def _bag_info(self) -> list[tuple[str, str]]:
        fields: list[tuple[str, str]] = []
        for label, value in self.source_bag_info:
            if label.lower() == "bagging-date":
                fields.append(("Source-Bagging-Date", value))
            elif label.lower() not in REGENERATED and not label.lower().startswith("preserve-"):
                fields.append((label, value))
        if self.meta.title:
            fields.append(("Title", self.meta.title))
        fields += [("Creator", c) for c in self.meta.creators]
        fields += [("External-Identifier", i) for i in self.meta.identifiers]
        if self.meta.rights:
            fields.append(("Rights", self.meta.rights))
        fields += [
            ("Preserve-AIP-Identifier", self.aip_id),
            ("Preserve-AIP-Version", str(self.version)),
            ("Preserve-Collection", self.meta.collection),
            ("Preserve-Source", f"{self.source.kind} {self.source.origin.name}"),
            ("Bagging-Date", self.created[:10]),
            ("Bag-Software-Agent", f"{AGENT_NAME} {__version__}"),
            ("Payload-Oxum", bagfmt.payload_oxum(self.total_bytes, self.file_count)),
            ("Bag-Size", bagfmt.human_size(self.total_bytes)),
        ]
        return fields

    def _tool_versions(self) -> tuple[dict, str]:
        tools = self.tools or tool_versions()
        return tools["siegfried"], tools["libmagic"]

    def _agents(self) -> list[Agent]:
        sf, magic_version = self._tool_versions()
        return [
            Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__,
                  "preserve digital preservation repository"),
            Agent(f"siegfried-{sf['version']}", "siegfried", "software", sf["version"],
                  f"PRONOM signatures: {sf['pronom']} ({sf['signature']}, created "
                  f"{sf['signature_created']})"),
            Agent(f"libmagic-{magic_version}", "libmagic", "software", magic_version,
                  "MIME type sniffing from the first bytes"),
        ]

    def _premis_events(self) -> list[Event]:
        sf, magic_version = self._tool_versions()
        when = now_utc()
        n = self.file_count
        preserve_role = [(AGENT_PRESERVE, "executing program")]
        skipped = ("; left out by policy: " + "; ".join(self.scan.skipped)) if self.scan.skipped \
            else ""
        empty = f"; {self.empty_dir_count} empty folder(s) kept" if self.empty_dir_count else ""
        kept = (f"; the source bag's tag files kept in {SOURCE_BAG_DIR}/: "
                + ", ".join(display(t) for t in self.kept_tags)) if self.kept_tags else ""
        bag = self.scan.bag
        warned = self.scan.notes + (bag.warnings if bag is not None else [])
        notes = (f"; {len(warned)} warning(s): " + recorded(warned)) if warned else ""
        events = [
            Event("ingestion", when, "warning" if self.warnings() else "success",
                  f"ingested {self.source.kind} {self.source.origin.resolve()} into collection "
                  f"{self.meta.collection!r}",
                  f"{n} file(s), {self.total_bytes} bytes{empty}{skipped}{kept}{notes}",
                  preserve_role),
            Event("message digest calculation", when, "success",
                  f"{', '.join(self.algorithms)} (manifests) and {FAST_ALGORITHM} (fast audits) "
                  "computed in one pass over each file while it was copied",
                  f"{n} file(s)", preserve_role),
            Event("format identification", when, "success",
                  f"siegfried {sf['version']} ({sf['pronom']}); libmagic {magic_version}",
                  f"{self.confidence[SIGNATURE]} by signature, "
                  f"{self.confidence[EXTENSION_ONLY]} by file extension only, "
                  f"{n - self.confidence[SIGNATURE] - self.confidence[EXTENSION_ONLY]} "
                  "not identified (zero-byte files included)",
                  [(f"siegfried-{sf['version']}", "executing program"),
                   (f"libmagic-{magic_version}", "executing program")]),
        ]
        if bag is not None and self.source.kind == "bag":
            tags = sum(1 for t in self.kept_tags if self.scan.expected(t, tag=True))
            warned = (f"; {len(bag.warnings)} warning(s): " + recorded(bag.warnings)
                      if bag.warnings else "; no warnings")
            events.append(Event(
                "validation", when, "warning" if bag.warnings else "success",
                f"source bag validated by the rules of BagIt {bag.version}; its "
                f"{', '.join(self.bag_algorithms)} manifest digests compared with the bytes "
                "read, its tag files with its tag manifests",
                f"all {self.bag_checked} file(s) and {tags} tag file(s) matched{warned}",
                preserve_role))
        elif bag is not None:
            problems = bag.errors + self.differences
            events.append(Event(
                "validation", when, "failure" if problems else "success",
                f"ingested as a plain folder at the archivist's request (--as-folder); the bag "
                f"(BagIt {bag.version}) validated and its manifest digests compared with the "
                "bytes read, for the record only",
                f"{self.bag_checked} file(s) compared, {len(self.differences)} differ; "
                f"{len(bag.errors)} validation error(s), {len(bag.warnings)} warning(s)"
                + (": " + recorded(problems + bag.warnings) if problems or bag.warnings
                   else ""), preserve_role))
        events.append(Event("validation", when, "success",
                            "AIP bag structure validated against RFC 8493 by preserve before "
                            "storage", f"BagIt {bagfmt.BAGIT_VERSION}", preserve_role))
        events += self._check_events(when)
        self.events = [EventRecord(e.identifier, self.aip_id, e.type, e.datetime, e.outcome,
                                   e.detail, e.outcome_detail, e.agents[0][0], self.version)
                       for e in events]
        # the OCFL version says when and why as the ingestion event does (and the AIP's
        # catalog row takes that time when v1 is staged: a rebuild reads it back)
        self.version_created, self.version_message = when, events[0].detail
        return events

    def warnings(self) -> list[str]:
        """What the archivist must read although the ingest succeeded."""
        bag = self.scan.bag
        if bag is None:
            return list(self.scan.notes)
        if self.source.kind == "bag":
            return bag.warnings + self.scan.notes
        return (bag.errors + self.differences + bag.warnings + self.scan.notes
                + [f"ingested as a folder: {self.bag_checked} file(s) compared with the bag's "
                   f"manifests, {len(self.differences)} differ"])

    def result(self, seconds: float) -> IngestResult:
        formats = sorted(((p, f, c) for (p, f), c in self.formats.items()),
                         key=lambda x: (-x[2], x[0] or "~"))
        return IngestResult(self.aip_id, self.meta.collection, str(self.source.origin),
                            self.source.kind, self.file_count, self.total_bytes,
                            self.empty_dir_count, formats,
                            self.file_count - self.confidence[SIGNATURE]
                            - self.confidence[EXTENSION_ONLY],
                            self.confidence[EXTENSION_ONLY], list(self.scan.skipped), seconds,
                            self.location.name, self.warnings(), list(self.replicas),
                            list(self.replication_problems), list(self.duplicate_of),
                            self.check_summary())
