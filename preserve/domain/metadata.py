"""Descriptive metadata as an archivist gives it (collection, title, creators,
identifiers, rights), and the checks that keep it the same in bag-info.txt, PREMIS and
the catalog."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from preserve.domain.names import display
from preserve.errors import BadArgument


@dataclass
class Metadata:
    collection: str
    title: str | None = None
    creators: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    rights: str | None = None


def check_metadata(meta: Metadata) -> None:
    """Refuse descriptive values that bag-info.txt and the catalog would keep differently
    (red-team case 72: a CR in a collection name became a continuation line, so bag and
    catalog disagreed; blank names were accepted): control characters anywhere (line
    breaks and tabs are allowed in free text), and for the collection, which names a
    group on every report, a blank name, surrounding spaces or any line break."""
    name = meta.collection
    values = [("--collection", name), ("--title", meta.title), ("--rights", meta.rights)]
    values += [("--creator", c) for c in meta.creators]
    values += [("--identifier", i) for i in meta.identifiers]
    for option, value in values:
        check_utf8(option, value)
    if not name.strip():
        raise BadArgument("the collection name is empty or blank",
                          hint="give a name with --collection")
    if name != name.strip() or _controls(name, allowed=""):
        raise BadArgument(f"the collection name {display(name)!r} has surrounding spaces or "
                          "control characters (line breaks included)",
                          hint="give a plain one-line name with --collection")
    for option, value in values[1:]:
        if value is not None and _controls(value, allowed="\n\t"):
            raise BadArgument(f"{option} {display(value)!r} holds control characters",
                              hint="only line breaks and tabs are kept in descriptive text")


def check_utf8(option: str, value: str | None) -> None:
    """Refuse text that came in as bytes that are not UTF-8 (a terminal in Latin-1, say):
    Python keeps them as lone surrogates, which no bag-info.txt, PREMIS document or
    catalog can hold (case 26: an internal error at the first write)."""
    if value is not None and any("\ud800" <= ch <= "\udfff" for ch in value):
        raise BadArgument(f"{option} {display(value)!r} is not valid UTF-8 (bytes of another "
                          "encoding)", hint="set the terminal to UTF-8 (e.g. LANG=C.UTF-8), "
                          "or convert the text with iconv")


def _controls(text: str, allowed: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") and ch not in allowed
               for ch in text)
