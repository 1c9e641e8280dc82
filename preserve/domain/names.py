"""File names: exact, never normalised; encoded for manifests as RFC 8493 requires.

Paths inside a bag are POSIX strings relative to the bag root ("data/a/b.txt").
They are kept exactly as the source spells them (NFC and NFD stay distinct),
so a name written into a manifest names the same bytes on disk. Names that
a case-insensitive or Unicode-normalising filesystem (macOS, Windows, many
S3 gateways) would merge are found before anything is written.
"""

from __future__ import annotations

import re
import stat
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

_ENCODE = {"%": "%25", "\n": "%0A", "\r": "%0D"}
_ENCODE_RE = re.compile(r"[%\n\r]")
_DECODE_RE = re.compile(r"%(25|0[AaDd])")
_DECODE = {"25": "%", "0a": "\n", "0d": "\r"}


def encode_manifest_path(path: str) -> str:
    """Percent-encode only %, LF and CR (RFC 8493 §2.1.3); everything else stays literal."""
    return _ENCODE_RE.sub(lambda m: _ENCODE[m.group(0)], path)


def decode_manifest_path(text: str) -> str:
    """Inverse of encode_manifest_path, in one pass so that "%250A" decodes to "%0A"."""
    return _DECODE_RE.sub(lambda m: _DECODE[m.group(1).lower()], text)


_KEY_UNSAFE = re.compile("[%\x00-\x1f\x7f-\x9f]")
_KEY_ESCAPE = re.compile(r"(?:%[0-9A-F]{2})+")


def encode_object_key(path: str) -> str:
    """Spell a bag path as an object-store key: "%" and control characters (CR, LF, ...)
    become %XX of their UTF-8 bytes. Object stores and their XML listings mishandle
    control characters; the encoding is reversible, so names are never lost."""
    return _KEY_UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group(0).encode()), path)


def decode_object_key(key: str) -> str:
    """Inverse of encode_object_key. A key preserve did not write may escape bytes that are
    not UTF-8 ('evil%FF.txt'): they decode to surrogates, as os.fsdecode does for such a
    file name, so the key is reported by name (red-team case 82), never a crash."""
    return _KEY_ESCAPE.sub(
        lambda m: bytes.fromhex(m.group(0).replace("%", "")).decode("utf-8", "surrogateescape"),
        key)


def is_utf8(name: str) -> bool:
    """A name that can be written to a manifest, a catalog or a report as it is."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


_DRIVE = re.compile(r"[A-Za-z]:[\\/]")


class UnsafePath(ValueError):
    """A relative path that could leave its root or cannot be represented."""


def check_relative(path: str) -> str:
    """Return `path` if it is a safe POSIX relative path, else raise UnsafePath.

    Safe means: not empty, not absolute, no empty, "." or ".." component, no
    NUL, no backslash-drive tricks, valid UTF-8 (a BagIt manifest is UTF-8).
    The path itself is returned unchanged: no normalisation of any kind.
    """
    if not path:
        raise UnsafePath("empty path")
    if "\x00" in path:
        raise UnsafePath("NUL byte in name")
    if path.startswith("/") or _DRIVE.match(path) or path.startswith("\\\\"):
        raise UnsafePath("absolute path")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePath(f"path component {part!r} is not allowed")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePath("name is not valid UTF-8 (BagIt manifests are UTF-8)") from None
    return path


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # categories Cc and Cs


def display(path: str) -> str:
    """A one-line, printable rendering of a name for messages (escapes controls)."""
    if not _UNPRINTABLE.search(path):  # nearly every name: no copy, no per-character work
        return path
    out = []
    for ch in path:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif unicodedata.category(ch) in ("Cc", "Cs"):
            out.append(repr(ch)[1:-1])
        else:
            out.append(ch)
    return "".join(out)


def special_kind(mode: int) -> str:
    """What a file that is neither regular nor a folder is, for messages."""
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return "special file"


def nfc(path: str) -> str:
    return unicodedata.normalize("NFC", path)


def fold(path: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", path).casefold())


def find_collisions(paths: Iterable[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Group names that distinct filesystems would merge.

    Returns (unicode_groups, case_groups): names equal after NFC
    normalisation (they collide on any normalising filesystem), and names
    equal only after case folding (they collide on case-insensitive ones).
    Each prefix directory counts too: "A/x" and "a/y" collide at "A" vs "a".
    """
    by_nfc: dict[str, set[str]] = defaultdict(set)
    by_fold: dict[str, set[str]] = defaultdict(set)
    seen: set[str] = set()
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if prefix in seen:
                continue
            seen.add(prefix)
            by_nfc[nfc(prefix)].add(prefix)
            by_fold[fold(prefix)].add(prefix)
    unicode_groups = sorted(sorted(g) for g in by_nfc.values() if len(g) > 1)
    unicode_members = {p for g in unicode_groups for p in g}
    case_groups = []
    for group in by_fold.values():
        if len(group) < 2:
            continue
        distinct = {nfc(p) for p in group}
        if len(distinct) > 1 and not group <= unicode_members:
            case_groups.append(sorted(group))
    return unicode_groups, sorted(case_groups)
