"""Backup root (``OBRT``): the first object a reader opens after the manifest.

Sealed (object type ``TREE_NODE``) under the backup's metadata key; the manifest's ``tree root``
is its object id and ``tree root pack`` the pack holding it. It says where everything of the
backup is and which per-backup data keys open it:

* **sources**: every backup whose packs this backup's files use (deduplication reaches into
  earlier backups, whose chunks stay sealed under *their* data keys). Source 0 is this backup
  itself. Each source carries the data-key commitment of that backup and the wrapped-key records
  of its data key (``OBWK``, role data; empty for source 0, whose records are in the manifest),
  so a restore can unwrap and check every key it needs from this backup alone, even after the
  source backup's manifest has been forgotten.
* **packs**: every pack the backup needs (data packs and tree packs), with the source whose key
  sealed it. The manifest's object list holds these names and the chunk index's (and nothing else).
* **nodes**: the tree nodes (``formats.tree``) in stream order: object id, pack, and the path of
  the node's first record (for seeking to a path without reading every node).

Layout (docs/spec/backup-root.md; integers big-endian)::

    "OBRT" | u16 version = 1
    | u16 source count S (>= 1) | S x source
        source: backup id (16) | data key commitment (32) | u16 record count R | R x bytes16 record
    | u32 pack count P | P x (pack name (32) | u16 source index | u8 pack kind)
    | u32 node count N (>= 1) | N x (object id (32) | u32 pack index | bytes16 first path)

Rules: source 0's backup id is the manifest's and its record count is 0; other sources are
sorted by backup id, unique, and hold 1 to 64 records each. Packs are sorted by name, unique;
kind 1 = data (sealed under its source's data key), 2 = tree (always source 0: tree nodes are
never shared between backups). A node's pack is a tree pack. First paths are non-decreasing
by component (``formats.tree.path_key``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "MAGIC",
    "MAX_NODES",
    "MAX_PACKS",
    "MAX_RECORDS_PER_SOURCE",
    "MAX_SOURCES",
    "VERSION",
    "BackupRoot",
    "NodeRef",
    "PackKind",
    "PackRef",
    "Source",
    "decode",
    "encode",
]

MAGIC = b"OBRT"
VERSION = 1
MAX_SOURCES = 0xFFFF
MAX_RECORDS_PER_SOURCE = 64
MAX_PACKS = 1 << 22  # the manifest's object limit
MAX_NODES = 1 << 22


class PackKind(enum.IntEnum):
    DATA = 1
    TREE = 2


@dataclass(frozen=True)
class Source:
    """A backup whose data key sealed some of this backup's packs."""

    backup_id: bytes  # 16
    data_key_commitment: bytes  # 32
    wrapped_keys: tuple[bytes, ...] = ()  # encoded OBWK records (role data), sorted, unique


@dataclass(frozen=True)
class PackRef:
    name: bytes  # 32: SHA-256 of the pack's bytes
    source: int  # index into BackupRoot.sources
    kind: PackKind


@dataclass(frozen=True)
class NodeRef:
    object_id: bytes  # 32: the node's object id (bound into its AAD)
    pack: int  # index into BackupRoot.packs (a TREE pack)
    first_path: bytes  # path of the node's first record


@dataclass(frozen=True)
class BackupRoot:
    sources: tuple[Source, ...]
    packs: tuple[PackRef, ...]
    nodes: tuple[NodeRef, ...]


def encode(root: BackupRoot) -> bytes:
    """Canonical plaintext of ``root``; ValueError for anything :func:`decode` would refuse."""
    raise NotImplementedError


def decode(data: bytes, what: str = "backup root") -> BackupRoot:
    """Strictly decode a backup root plaintext (FormatError). Does not check source 0's id
    against the manifest: the caller (which knows the manifest) does."""
    raise NotImplementedError
