"""Describe: correct an AIP's descriptive metadata, as a new version of its OCFL object.

Archivists correct titles, creators, identifiers and rights statements; preservation
never rewrites what it holds. So a correction is a new version (storage/new_version.py)
whose bag differs from the last in bag-info.txt, the PREMIS record (one more event:
what changed, who, why) and the tag manifests; the payload is untouched and stays
where it is, referenced by the new inventory, never copied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.domain.clock import now_utc
from preserve.domain.metadata import Metadata, check_metadata, check_utf8
from preserve.domain.names import display
from preserve.domain.premis import Agent, Event
from preserve.errors import BadArgument, PreserveError
from preserve.repository import Repository
from preserve.storage.new_version import VersionChange, VersionResult, add_version, current_bag_info
from preserve.storage.versions import version_user

# bag-info.txt labels an archivist corrects, by Description field
LABELS = {"title": "Title", "creators": "Creator", "identifiers": "External-Identifier",
          "rights": "Rights"}


@dataclass
class Description:
    """The corrections asked for: None leaves a field as it is; a list replaces every
    value of a repeatable field."""
    title: str | None = None
    creators: list[str] | None = None
    identifiers: list[str] | None = None
    rights: str | None = None
    note: str | None = None  # why: the version's message and the PREMIS event's
    # any other bag-info label -> its values (e.g. Creator-Death-Date, which a rights
    # term may count from); replaces every value of that label
    fields: dict[str, list[str]] | None = None

    def changed(self) -> dict[str, list[str]]:
        """bag-info label -> its new values, for the fields given."""
        out = {}
        for name, label in LABELS.items():
            value = getattr(self, name)
            if value is not None:
                out[label] = list(value) if isinstance(value, list) else [value]
        for label, values in (self.fields or {}).items():
            out[label] = list(values)
        return out


LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_fields(fields: dict[str, list[str]]) -> None:
    """Labels an archivist may set: a plain name (RFC 8493 allows more, but a label is
    also a PREMIS and catalog key), none of BagIt's own nor preserve's."""
    for label, values in fields.items():
        if not LABEL.match(label):
            raise BadArgument(f"--field {label!r}: a label is letters, digits, '.', '_' or "
                              "'-', starting with a letter or digit")
        if label.startswith(OWN_LABELS) or label.lower() in RESERVED:
            raise BadArgument(f"--field {label}: preserve or BagIt writes that label itself")
        for value in values:
            check_utf8(f"--field {label}", value)
            if not value.strip() or "\n" in value or "\r" in value:
                raise BadArgument(f"--field {label}: give a value on one line")


def describe(repo: Repository, ref: str, description: Description) -> VersionResult:
    """Write the corrections as the AIP's next version; return what was stored where."""
    changes = description.changed()
    if not changes:
        raise BadArgument("nothing to correct", hint="give --title, --creator, --identifier, "
                          "--rights or --field LABEL=VALUE (and --note to say why)")
    check_fields(description.fields or {})
    check_metadata(Metadata("-", description.title, description.creators or [],
                            description.identifiers or [], description.rights))
    check_utf8("--note", description.note)
    if description.note is not None and not description.note.strip():
        raise BadArgument("the note is blank", hint="say why the description changes, or "
                          "leave --note out")
    aip_id = repo.catalog.resolve(ref)
    head = repo.catalog.get_aip(aip_id).version
    what = "; ".join(f"{label}: " + " | ".join(display(v) for v in values)
                     for label, values in changes.items())
    user, _ = version_user()
    person = f"user-{user}"
    event = Event("metadata modification", now_utc(), "success",
                  f"descriptive metadata corrected in a new version (after version {head}): "
                  f"{what}", description.note,
                  [(AGENT_PRESERVE, "executing program"), (person, "implementer")])
    agents = [Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__,
                    "preserve digital preservation repository"),
              Agent(person, user, "person")]
    message = f"description corrected ({what})" + (
        f": {description.note}" if description.note else "")
    return add_version(repo, aip_id, VersionChange(message, event, agents, bag_info=changes))


# labels BagIt gives a meaning of its own (RFC 8493 2.2.2), lowercased
RESERVED = {"payload-oxum", "bag-size", "bagging-date", "bag-group-identifier",
            "bag-count", "bag-software-agent", "internal-sender-identifier",
            "internal-sender-description"}

# bag-info labels preserve writes for itself: not the AIP's description
OWN_LABELS = ("Preserve-", "Bagging-Date", "Payload-Oxum", "Bag-Size", "Bag-Software-Agent",
              "Bag-Count", "Bag-Group-Identifier")


def description_of(repo: Repository, aip_id: str) -> tuple[dict[str, list[str]] | None,
                                                            str | None]:
    """The AIP's descriptive metadata as its head version's bag-info.txt says it (title,
    creators, identifiers, rights, and any label a source bag brought), by label; or
    None and why, when the stored bag-info cannot be read as recorded (issue 22: `show`
    showed no creator, rights or identifier at all)."""
    try:
        fields = current_bag_info(repo, aip_id)
    except PreserveError as e:
        return None, e.message
    described: dict[str, list[str]] = {}
    for label, value in fields:
        if not label.startswith(OWN_LABELS):
            described.setdefault(label, []).append(value)
    return described, None

