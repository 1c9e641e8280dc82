"""Signed checkpoints of the event log, in the C2SP formats (tlog-checkpoint, signed-note)
that transparency logs share, so any of their tools can read them:

    <origin>
    <tree size>
    <base64 root hash>

    — <key name> <base64(4-byte key id || Ed25519 signature of the text above the blank line)>

The key id is the first 4 bytes of SHA-256(key name || "\\n" || 0x01 || public key). The
private key stays outside every storage location: a checkpoint found in storage is proof
only when its signature verifies with the key the repository configuration names."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DASH = "\u2014"
ED25519 = b"\x01"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_name(public: Ed25519PublicKey) -> str:
    """The log's name and the key's: "preserve-log+<16 hex digits of the public key's
    SHA-256>", one per key, so two repositories' checkpoints are never mistaken."""
    return "preserve-log+" + hashlib.sha256(public_bytes(public)).hexdigest()[:16]


def key_id(name: str, public: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public_bytes(public)).digest()[:4]


def sign(checkpoint: Checkpoint, private: Ed25519PrivateKey) -> str:
    """The checkpoint as a signed note."""
    public = private.public_key()
    name = key_name(public)
    body = checkpoint.body()
    signature = key_id(name, public) + private.sign(body.encode())
    return f"{body}\n{DASH} {name} {base64.b64encode(signature).decode()}\n"


def parse(text: str) -> tuple[Checkpoint, list[tuple[str, bytes]]]:
    """The checkpoint and its signature lines (name, key id || signature), unverified."""
    body, sep, signatures = text.partition("\n\n")
    lines = body.split("\n")
    if not sep or len(lines) < 3:
        raise CheckpointError("not a checkpoint: origin, size, root, a blank line, signatures")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except ValueError as e:
        raise CheckpointError(f"not a checkpoint: {e}") from None
    if size < 0 or len(root) != 32 or lines[1] != str(size):
        raise CheckpointError("not a checkpoint: bad size or root hash")
    found = []
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == DASH:
            try:
                found.append((parts[1], base64.b64decode(parts[2], validate=True)))
            except ValueError:
                continue
    return Checkpoint(lines[0], size, root), found


def verify(text: str, public: Ed25519PublicKey) -> Checkpoint:
    """The checkpoint of a signed note whose signature by `public` verifies (and whose
    origin is that key's log); CheckpointError otherwise."""
    checkpoint, signatures = parse(text)
    name = key_name(public)
    if checkpoint.origin != name:
        raise CheckpointError(f"a checkpoint of another log ({checkpoint.origin}, not {name})")
    for signer, blob in signatures:
        if signer == name and blob[:4] == key_id(name, public):
            try:
                public.verify(blob[4:], checkpoint.body().encode())
                return checkpoint
            except InvalidSignature:
                break
    raise CheckpointError(f"no valid signature by {name}")
