"""The event log's signing key: an Ed25519 private key in a PEM file the repository
configuration names (`log_key`), readable by its owner alone and kept outside every
storage location, so that whoever can write the storage cannot sign a history."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from preserve.errors import ConfigError


def create_key(path: Path) -> None:
    """A new key at `path` (mode 0600), never over one that exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(f"the event log's signing key {path} is missing",
                          hint="restore it from where you keep it safe; without it no new "
                               "checkpoint can be signed ('log_key' in preserve.yaml names "
                               "it)") from None
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"cannot read the event log's signing key {path}: {e}",
                          hint="it must be an unencrypted PEM Ed25519 private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key", hint="the event log signs with Ed25519")
    return key
