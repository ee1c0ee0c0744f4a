"""Sealing and opening the index of a pack (``formats.pack``), and opening its entries.

The index is sealed under the same key as the pack's entries, as object type 3 with object id
= the body hash (SHA-256 of every byte before the index). Opening the index therefore
authenticates the whole body under the key: header, backup id, every entry header and every
sealed byte. Every authentication failure is an :class:`IntegrityError`; malformed bytes are a
:class:`FormatError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from crypto.aead import SealingKey
from formats import pack as fmt
from formats.errors import IntegrityError
from formats.sealed import ObjectType

__all__ = [
    "OpenedPack",
    "finish_pack",
    "finish_pack_named",
    "finish_pack_parts",
    "open_entry",
    "open_index",
    "open_pack",
    "read_pack_index",
]


@dataclass(frozen=True)
class OpenedPack:
    """A decoded pack whose index opened and matched its entries; entries are still sealed."""

    pack: fmt.Pack
    index: tuple[fmt.IndexEntry, ...]


def finish_pack(writer: fmt.PackWriter, key: SealingKey) -> bytes:
    """Seal the writer's index under ``key`` and return the finished pack's bytes."""
    return finish_pack_named(writer, key)[0]


def finish_pack_named(writer: fmt.PackWriter, key: SealingKey) -> tuple[bytes, bytes]:
    """:func:`finish_pack`, and the pack's SHA-256 (its object name) from the writer's running hash."""
    parts, name = finish_pack_parts(writer, key)
    return b"".join(parts), name


def finish_pack_parts(writer: fmt.PackWriter, key: SealingKey) -> tuple[list[bytes], bytes]:
    """Seal the writer's index under ``key``; the finished pack as parts (never joined), and its name."""
    sealed_index = key.seal(
        writer.index_plaintext(),
        obj_type=ObjectType.PACK_INDEX,
        backup_id=writer.backup_id,
        object_id=writer.body_hash(),
    )
    return writer.finish_parts(sealed_index), writer.pack_hash()


def open_index(tail: fmt.PackTail, key: SealingKey, *, backup_id: bytes) -> tuple[fmt.IndexEntry, ...]:
    """Open and strictly decode the index of a pack of backup ``backup_id``."""
    plaintext = key.open(
        tail.sealed_index,
        obj_type=ObjectType.PACK_INDEX,
        backup_id=backup_id,
        object_id=tail.body_hash,
    )
    return fmt.decode_index(plaintext, body_end=tail.body_end)


def open_pack(
    data: bytes, key: SealingKey, *, backup_id: bytes, body: tuple[int, bytes] | None = None
) -> OpenedPack:
    """Decode ``data`` as a pack of backup ``backup_id``, open its index, check it against the entries.

    A pack of another backup, or one altered anywhere, raises :class:`IntegrityError` (or
    :class:`FormatError` when the damage breaks the layout itself). ``body``: ``(end, SHA-256 of
    data[:end])`` if the caller hashed these bytes already (``formats.pack.decode_hashed``).
    """
    pack, body_hash = fmt.decode_hashed(data, body=body)
    if pack.backup_id != backup_id:
        raise IntegrityError(f"pack belongs to backup {pack.backup_id.hex()}, not {backup_id.hex()}")
    body_end = len(data) - fmt.TRAILER_SIZE - len(pack.sealed_index)
    # The index opens under the hash of the body as read (which decoding computed and compared
    # with the trailer's), not as the trailer claims it.
    tail = fmt.PackTail(body_hash, pack.sealed_index, body_end)
    index = open_index(tail, key, backup_id=backup_id)
    fmt.check_index(index, pack.entries)
    return OpenedPack(pack=pack, index=index)


def read_pack_index(f: BinaryIO, key: SealingKey, *, backup_id: bytes) -> tuple[fmt.IndexEntry, ...]:
    """Read and open only the index of the pack held by the seekable ``f`` (its tail)."""
    return open_index(fmt.read_tail(f), key, backup_id=backup_id)


def open_entry(entry: fmt.PackEntry, key: SealingKey, *, backup_id: bytes) -> bytes:
    """The plaintext of one entry; it opens only in its own backup, slot and type."""
    return key.open(entry.sealed, obj_type=entry.object_type, backup_id=backup_id, object_id=entry.object_id)
