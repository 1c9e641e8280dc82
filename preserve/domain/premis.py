"""PREMIS 3 XML, written as a stream so that memory does not grow with the file count.

Objects come first (one per payload file, written as each file is done),
then events, then agents, as the PREMIS 3 schema orders them. Names are
written as bag paths percent-encoded like the manifests (%, CR, LF) plus
any character XML 1.0 cannot carry, so every identifier round-trips.
"""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass, field
from typing import TextIO

from preserve.domain.names import decode_object_key
from preserve.domain.rights import RightsStatement

PREMIS_NS = "http://www.loc.gov/premis/v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{PREMIS_NS} https://www.loc.gov/standards/premis/v3/premis.xsd"
DIGEST_NAMES = {"sha256": "SHA-256", "sha512": "SHA-512", "sha1": "SHA-1", "md5": "MD5",
                "sha384": "SHA-384", "sha224": "SHA-224"}

# %, CR, LF (as in manifests) and everything XML 1.0 forbids or would normalise away
_UNSAFE = re.compile("[%\r\n\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def encode_name(path: str) -> str:
    """Reversible, XML-safe spelling of a name: unsafe characters as %XX of their UTF-8 bytes."""
    def enc(m: re.Match) -> str:
        return "".join(f"%{b:02X}" for b in m.group(0).encode("utf-8", "surrogateescape"))

    return _UNSAFE.sub(enc, path)


def decode_name(text: str | None) -> str | None:
    """encode_name read back (a literal "%" is always written %25, so every %XX run is
    one it wrote)."""
    return None if text is None else decode_object_key(text)


_PLAIN = re.compile("[%\r\n&<>\x00-\x1f\ud800-\udfff\ufffe\uffff]")


def _t(value: object) -> str:
    text = str(value)
    if _PLAIN.search(text) is None:  # the common case: nothing to encode or escape
        return text
    return encode_name(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class Agent:
    identifier: str
    name: str
    type: str  # "software", "organization", "person"
    version: str | None = None
    note: str | None = None


@dataclass
class Event:
    type: str  # Library of Congress event type vocabulary, e.g. "ingestion"
    datetime: str
    outcome: str  # "success", "failure", "warning"
    detail: str
    outcome_detail: str | None = None
    agents: list[tuple[str, str]] = field(default_factory=list)  # (agent identifier, role)
    identifier: str = field(default_factory=lambda: str(uuid.uuid4()))
    objects: list[tuple[str, str]] = field(default_factory=list)  # (bag path, role) it links


@dataclass
class FileObject:
    path: str  # bag path, "data/..."
    original_name: str
    size: int
    digests: dict[str, str]
    puid: str | None
    format_name: str | None
    format_version: str | None
    notes: list[str] = field(default_factory=list)
    # a migration's derivative: (bag path of its source, identifier of the migration event)
    derived_from: tuple[str, str] | None = None


class PremisWriter:
    """Write one PREMIS document: start, objects (any number), then events and agents."""

    def __init__(self, out: TextIO, aip_id: str):
        self.out = out
        self.aip_id = aip_id
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        out.write(f'<premis:premis xmlns:premis="{PREMIS_NS}" xmlns:xsi="{XSI_NS}" '
                  f'xsi:schemaLocation="{SCHEMA_LOCATION}" version="3.0">\n')
        out.write('  <premis:object xsi:type="premis:intellectualEntity">\n'
                  '    <premis:objectIdentifier>\n'
                  '      <premis:objectIdentifierType>UUID</premis:objectIdentifierType>\n'
                  f'      <premis:objectIdentifierValue>{_t(aip_id)}</premis:objectIdentifierValue>\n'
                  '    </premis:objectIdentifier>\n'
                  '  </premis:object>\n')

    def write_object(self, obj: FileObject) -> None:
        w = self.out.write
        w('  <premis:object xsi:type="premis:file">\n'
          '    <premis:objectIdentifier>\n'
          '      <premis:objectIdentifierType>bag path</premis:objectIdentifierType>\n'
          f'      <premis:objectIdentifierValue>{_t(obj.path)}</premis:objectIdentifierValue>\n'
          '    </premis:objectIdentifier>\n'
          '    <premis:objectCharacteristics>\n'
          '      <premis:compositionLevel>0</premis:compositionLevel>\n')
        for algorithm, digest in obj.digests.items():
            if algorithm not in DIGEST_NAMES:
                continue
            w('      <premis:fixity>\n'
              f'        <premis:messageDigestAlgorithm>{DIGEST_NAMES[algorithm]}'
              '</premis:messageDigestAlgorithm>\n'
              f'        <premis:messageDigest>{digest}</premis:messageDigest>\n'
              '        <premis:messageDigestOriginator>preserve</premis:messageDigestOriginator>\n'
              '      </premis:fixity>\n')
        w(f'      <premis:size>{obj.size}</premis:size>\n'
          '      <premis:format>\n'
          '        <premis:formatDesignation>\n'
          f'          <premis:formatName>{_t(obj.format_name or "unknown")}</premis:formatName>\n')
        if obj.format_version:
            w(f'          <premis:formatVersion>{_t(obj.format_version)}</premis:formatVersion>\n')
        w('        </premis:formatDesignation>\n')
        if obj.puid:
            w('        <premis:formatRegistry>\n'
              '          <premis:formatRegistryName>PRONOM</premis:formatRegistryName>\n'
              f'          <premis:formatRegistryKey>{_t(obj.puid)}</premis:formatRegistryKey>\n'
              '          <premis:formatRegistryRole>specification</premis:formatRegistryRole>\n'
              '        </premis:formatRegistry>\n')
        for note in obj.notes:
            w(f'        <premis:formatNote>{_t(note)}</premis:formatNote>\n')
        w('      </premis:format>\n'
          '    </premis:objectCharacteristics>\n'
          f'    <premis:originalName>{_t(obj.original_name)}</premis:originalName>\n')
        if obj.derived_from:
            source, event_id = obj.derived_from
            w('    <premis:relationship>\n'
              '      <premis:relationshipType>derivation</premis:relationshipType>\n'
              '      <premis:relationshipSubType>has source</premis:relationshipSubType>\n'
              '      <premis:relatedObjectIdentifier>\n'
              '        <premis:relatedObjectIdentifierType>bag path'
              '</premis:relatedObjectIdentifierType>\n'
              f'        <premis:relatedObjectIdentifierValue>{_t(source)}'
              '</premis:relatedObjectIdentifierValue>\n'
              '      </premis:relatedObjectIdentifier>\n'
              '      <premis:relatedEventIdentifier>\n'
              '        <premis:relatedEventIdentifierType>UUID</premis:relatedEventIdentifierType>\n'
              f'        <premis:relatedEventIdentifierValue>{_t(event_id)}'
              '</premis:relatedEventIdentifierValue>\n'
              '      </premis:relatedEventIdentifier>\n'
              '    </premis:relationship>\n')
        w('  </premis:object>\n')

    def finish(self, events: list[Event], agents: list[Agent],
               more_events: TextIO | None = None,
               rights: list[RightsStatement] | None = None) -> None:
        """The events (and `more_events`: events already rendered by event_xml, read to
        the end, e.g. one per file spooled to a temporary file), the agents, then the
        rights statements."""
        w = self.out.write
        for ev in events:
            w(event_xml(ev, self.aip_id))
        if more_events is not None:
            more_events.seek(0)
            while chunk := more_events.read(1 << 20):
                w(chunk)
        for ag in agents:
            w('  <premis:agent>\n'
              '    <premis:agentIdentifier>\n'
              '      <premis:agentIdentifierType>local</premis:agentIdentifierType>\n'
              f'      <premis:agentIdentifierValue>{_t(ag.identifier)}</premis:agentIdentifierValue>\n'
              '    </premis:agentIdentifier>\n'
              f'    <premis:agentName>{_t(ag.name)}</premis:agentName>\n'
              f'    <premis:agentType>{_t(ag.type)}</premis:agentType>\n')
            if ag.version:
                w(f'    <premis:agentVersion>{_t(ag.version)}</premis:agentVersion>\n')
            if ag.note:
                w(f'    <premis:agentNote>{_t(ag.note)}</premis:agentNote>\n')
            w('  </premis:agent>\n')
        for statement in rights or []:
            w(rights_xml(statement, self.aip_id))
        w('</premis:premis>\n')


def event_xml(ev: Event, aip_id: str) -> str:
    """One event as PremisWriter lays it out, linked to the AIP and to its objects."""
    parts: list[str] = []
    w = parts.append
    w('  <premis:event>\n'
      '    <premis:eventIdentifier>\n'
      '      <premis:eventIdentifierType>UUID</premis:eventIdentifierType>\n'
      f'      <premis:eventIdentifierValue>{ev.identifier}</premis:eventIdentifierValue>\n'
      '    </premis:eventIdentifier>\n'
      f'    <premis:eventType>{_t(ev.type)}</premis:eventType>\n'
      f'    <premis:eventDateTime>{_t(ev.datetime)}</premis:eventDateTime>\n'
      '    <premis:eventDetailInformation>\n'
      f'      <premis:eventDetail>{_t(ev.detail)}</premis:eventDetail>\n'
      '    </premis:eventDetailInformation>\n'
      '    <premis:eventOutcomeInformation>\n'
      f'      <premis:eventOutcome>{_t(ev.outcome)}</premis:eventOutcome>\n')
    if ev.outcome_detail:
        w('      <premis:eventOutcomeDetail>\n'
          f'        <premis:eventOutcomeDetailNote>{_t(ev.outcome_detail)}'
          '</premis:eventOutcomeDetailNote>\n'
          '      </premis:eventOutcomeDetail>\n')
    w('    </premis:eventOutcomeInformation>\n')
    for agent_id, role in ev.agents:
        w('    <premis:linkingAgentIdentifier>\n'
          '      <premis:linkingAgentIdentifierType>local</premis:linkingAgentIdentifierType>\n'
          f'      <premis:linkingAgentIdentifierValue>{_t(agent_id)}'
          '</premis:linkingAgentIdentifierValue>\n'
          f'      <premis:linkingAgentRole>{_t(role)}</premis:linkingAgentRole>\n'
          '    </premis:linkingAgentIdentifier>\n')
    w('    <premis:linkingObjectIdentifier>\n'
      '      <premis:linkingObjectIdentifierType>UUID</premis:linkingObjectIdentifierType>\n'
      f'      <premis:linkingObjectIdentifierValue>{_t(aip_id)}'
      '</premis:linkingObjectIdentifierValue>\n'
      '    </premis:linkingObjectIdentifier>\n')
    for path, role in ev.objects:
        w('    <premis:linkingObjectIdentifier>\n'
          '      <premis:linkingObjectIdentifierType>bag path'
          '</premis:linkingObjectIdentifierType>\n'
          f'      <premis:linkingObjectIdentifierValue>{_t(path)}'
          '</premis:linkingObjectIdentifierValue>\n'
          f'      <premis:linkingObjectRole>{_t(role)}</premis:linkingObjectRole>\n'
          '    </premis:linkingObjectIdentifier>\n')
    w('  </premis:event>\n')
    return "".join(parts)


# The exact statement travels in a rightsExtension (lax: PREMIS readers skip it) so that a
# catalog rebuilt from storage decides as the one that recorded it.
PRESERVE_RIGHTS_NS = "https://preserve.invalid/ns/rights/1"
_RIGHTS_JSON = re.compile(r"<preserve:statement[^>]*>([^<]*)</preserve:statement>")
_COPYRIGHT_STATUS = {"copyrighted": "copyrighted", "public-domain": "publicdomain",
                     "unknown": "unknown"}


def rights_xml(s: RightsStatement, aip_id: str) -> str:
    """One rights statement as PREMIS 3 rights: the basis, copyright or licence
    information, dissemination granted or restricted (an embargo's end date), the AIP
    linked, and the statement itself for preserve."""
    w = []
    w.append('  <premis:rights>\n    <premis:rightsStatement>\n'
             '      <premis:rightsStatementIdentifier>\n'
             '        <premis:rightsStatementIdentifierType>UUID'
             '</premis:rightsStatementIdentifierType>\n'
             f'        <premis:rightsStatementIdentifierValue>{_t(s.identifier)}'
             '</premis:rightsStatementIdentifierValue>\n'
             '      </premis:rightsStatementIdentifier>\n'
             f'      <premis:rightsBasis>{"License" if s.status == "licensed" else "Copyright"}'
             '</premis:rightsBasis>\n')
    notes = [f"{label}: {value}" for label, value in (
        ("rights holder", s.holder), ("basis", s.basis), ("note", s.note)) if value]
    if s.status == "licensed":
        w.append('      <premis:licenseInformation>\n'
                 f'        <premis:licenseTerms>{_t(s.license or s.basis)}</premis:licenseTerms>\n'
                 + "".join(f'        <premis:licenseNote>{_t(n)}</premis:licenseNote>\n'
                           for n in notes)
                 + '      </premis:licenseInformation>\n')
    else:
        w.append('      <premis:copyrightInformation>\n'
                 f'        <premis:copyrightStatus>{_COPYRIGHT_STATUS[s.status]}'
                 '</premis:copyrightStatus>\n'
                 f'        <premis:copyrightJurisdiction>{_t(s.jurisdiction or "und")}'
                 '</premis:copyrightJurisdiction>\n'
                 + (f'        <premis:copyrightStatusDeterminationDate>{_t(s.recorded[:10])}'
                    '</premis:copyrightStatusDeterminationDate>\n' if s.recorded else "")
                 + "".join(f'        <premis:copyrightNote>{_t(n)}</premis:copyrightNote>\n'
                           for n in notes)
                 + '      </premis:copyrightInformation>\n')
    w.append('      <premis:rightsGranted>\n        <premis:act>disseminate</premis:act>\n')
    if s.embargo_until:
        w.append('        <premis:restriction>Disallow</premis:restriction>\n'
                 '        <premis:termOfRestriction>\n'
                 f'          <premis:startDate>{_t(s.recorded[:10] or "..")}</premis:startDate>\n'
                 f'          <premis:endDate>{_t(s.embargo_until)}</premis:endDate>\n'
                 '        </premis:termOfRestriction>\n')
    if s.opens_after_years:
        w.append(f'        <premis:rightsGrantedNote>dissemination {s.opens_after_years} '
                 'years after ' + _t(s.from_date or f"the date in bag-info {s.from_field}")
                 + '</premis:rightsGrantedNote>\n')
    w.append('      </premis:rightsGranted>\n'
             '      <premis:linkingObjectIdentifier>\n'
             '        <premis:linkingObjectIdentifierType>UUID'
             '</premis:linkingObjectIdentifierType>\n'
             f'        <premis:linkingObjectIdentifierValue>{_t(aip_id)}'
             '</premis:linkingObjectIdentifierValue>\n'
             '      </premis:linkingObjectIdentifier>\n'
             '    </premis:rightsStatement>\n'
             '    <premis:rightsExtension>\n'
             f'      <preserve:statement xmlns:preserve="{PRESERVE_RIGHTS_NS}">'
             f'{_t(s.to_json())}</preserve:statement>\n'
             '    </premis:rightsExtension>\n'
             '  </premis:rights>\n')
    return "".join(w)


def read_rights(text: str) -> list[RightsStatement]:
    """The statements a PREMIS document of preserve's carries (rights_xml)."""
    return [RightsStatement.from_json(decode_name(html.unescape(m.group(1))))
            for m in _RIGHTS_JSON.finditer(text)]
