"""RFC 9162 §2.1 Merkle tree hashing: what makes the repository's event log
tamper-evident. A leaf is SHA-256(0x00 || entry), a node SHA-256(0x01 || left || right);
the tree of n leaves splits at the largest power of two below n. Two parties who agree on
(n, root) agree on every one of the first n entries and their order.

The tree is built as entries arrive (a "compact range": one subtree root per set bit of
the size), so the root at any prefix costs a few hashes and a million entries are never
held in memory."""

from __future__ import annotations

import hashlib

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleTree:
    """An append-only tree: append leaf hashes, ask the root of what was appended."""

    def __init__(self) -> None:
        self.size = 0
        self._subtrees: list[bytes] = []  # roots of perfect subtrees, largest first

    @classmethod
    def resume(cls, size: int, frontier: list[bytes]) -> MerkleTree:
        """The tree of `size` leaves from its frontier (what `frontier` gave), without
        its leaves: appending goes on from there."""
        if len(frontier) != bin(size).count("1"):
            raise ValueError(f"a frontier of {len(frontier)} subtrees is not a tree of {size}")
        tree = cls()
        tree.size, tree._subtrees = size, list(frontier)
        return tree

    @property
    def frontier(self) -> list[bytes]:
        """The roots of the perfect subtrees the tree is made of, largest first: all the
        next root needs of the leaves so far."""
        return list(self._subtrees)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (leaf_hash of the entry)."""
        node, size = leaf, self.size
        while size & 1:  # merge with every completed subtree of the same height
            node = node_hash(self._subtrees.pop(), node)
            size >>= 1
        self._subtrees.append(node)
        self.size += 1

    def root(self) -> bytes:
        """RFC 9162's MTH of the leaves appended so far (the empty tree: SHA-256 of "")."""
        if not self._subtrees:
            return EMPTY_ROOT
        node = self._subtrees[-1]
        for left in reversed(self._subtrees[:-1]):
            node = node_hash(left, node)
        return node


def root_of(entries: list[bytes]) -> bytes:
    """The root of a list of entries (tests and small logs)."""
    tree = MerkleTree()
    for entry in entries:
        tree.append(leaf_hash(entry))
    return tree.root()
