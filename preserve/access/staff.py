"""Staff of the reading room (issue 28): who may see what rights open to staff only.

The mechanism is deliberately small and documented: HTTP Basic authentication, which
every browser speaks without JavaScript, against a file of users (`staff.users` in the
repository, mode 0600), one `name:scrypt$N$r$p$salt$hash` line each, written by `preserve
staff add NAME`. Basic sends the password with every request, so the reading room must
be reached over TLS (behind nginx or Apache: docs/deployment.md); the server binds to
loopback by default. A correct password is remembered, in memory, by a digest of the
header it came in, so that a page of tiles does not cost an scrypt each.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from preserve.errors import BadArgument, ConfigError

STAFF_FILE = "staff.users"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
MIN_PASSWORD = 12
REMEMBERED = 1000  # headers of correct passwords kept, at most


def _hash(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32,
                          maxmem=64 * 1024 * 1024)


def read_users(path: Path) -> dict[str, str]:
    """name -> its stored hash line; no file: no staff."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from e
    users = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        if not sep or not stored.startswith("scrypt$"):
            raise ConfigError(f"{path}, line {number}: not a 'name:scrypt$...' line",
                              hint="'preserve staff add NAME' writes the lines")
        users[name] = stored
    return users


def add_user(path: Path, name: str, password: str) -> bool:
    """Add or replace `name`'s password; True when the user is new."""
    if not NAME.match(name):
        raise BadArgument(f"staff name {name!r}: use letters, digits, '.', '_', '@' or '-'")
    if len(password) < MIN_PASSWORD:
        raise BadArgument(f"the password must have at least {MIN_PASSWORD} characters")
    users = read_users(path)
    salt = secrets.token_bytes(16)
    digest = _hash(password, salt, **SCRYPT)
    new = name not in users
    users[name] = (f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}$"
                   f"{salt.hex()}${digest.hex()}")
    _write(path, users)
    return new


def remove_user(path: Path, name: str) -> bool:
    users = read_users(path)
    if users.pop(name, None) is None:
        return False
    _write(path, users)
    return True


def _write(path: Path, users: dict[str, str]) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# preserve reading-room staff: written by 'preserve staff add'\n")
        f.writelines(f"{name}:{stored}\n" for name, stored in sorted(users.items()))
    os.replace(partial, path)


def check_password(stored: str, password: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        made = _hash(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(made, bytes.fromhex(digest))


class Staff:
    """Who an Authorization header names, when its password is right (else None). The
    file is read again when it changes, so a user added or removed counts at once."""

    def __init__(self, path: Path):
        self.path = path
        self.users: dict[str, str] = {}
        self.seen: tuple | None = None
        self.remembered: dict[bytes, str] = {}

    def _load(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self.seen:
            self.users = read_users(self.path) if stamp else {}
            self.seen = stamp
            self.remembered.clear()

    def user(self, header: str | None) -> str | None:
        if not header or not header.lower().startswith("basic "):
            return None
        self._load()
        if not self.users:
            return None
        key = hashlib.sha256(header.encode("utf-8", "replace")).digest()
        if key in self.remembered:
            return self.remembered[key]
        try:
            name, _, password = base64.b64decode(header[6:].strip(), validate=True) \
                .decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        stored = self.users.get(name)
        if stored is None or not check_password(stored, password):
            return None
        if len(self.remembered) >= REMEMBERED:
            self.remembered.clear()
        self.remembered[key] = name
        return name
