"""Data packs and chunks on the read side: fetch, verify, open, decompress with a bound.

A data pack is fetched with its SHA-256 and size checked against the signed object list, then
opened under the data key of the source that sealed it and that source's backup id (its index
authenticates every byte of it). A chunk is the entry whose object id is the chunk ref's chunk
id (bound into its AAD, so GCM authenticates the slot), of type DATA_CHUNK; its plaintext is
decompressed with a bound of the ref's length and must be exactly that long.

What a reader cannot check: that the chunk id is the HMAC of the content. That needs the
account's dedup secret, which hosts hold and restore operators need not; pass a
:class:`crypto.dedup.ChunkIdKey` when you have it (``check`` on a host does). Without it, a
chunk's content is still authenticated by the data key of the backup that stored it.
"""

from __future__ import annotations

import threading

import zstandard

from crypto.aead import SealingKey
from crypto.dedup import ChunkIdKey
from crypto.packs import open_entry, open_pack
from formats.backup_root import BackupRoot, PackKind
from formats.pack import PackEntry
from formats.sealed import Compression, ObjectType, decode_chunk_payload
from opsbackup.client.repository import Repository
from opsbackup.errors import FormatError, IntegrityError
from opsbackup.restore.keys import DataKeys

__all__ = ["DataPack", "decompress", "fetch_data_pack"]


_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor: making one per chunk costs about 17 us, several times the
    decompression of a small chunk (a decompressor must not be used by two threads at once)."""
    dctx: zstandard.ZstdDecompressor | None = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def decompress(payload: bytes, length: int, what: str) -> bytes:
    """One zstd frame that must decompress to exactly ``length`` bytes (never more is allocated)."""
    try:
        declared = zstandard.frame_content_size(payload)
        if declared not in (-1, length):
            raise IntegrityError(f"{what} declares {declared} bytes, not the {length} its file needs")
        out = _decompressor().decompress(payload, max_output_size=length, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what} does not decompress: {exc}") from None
    if len(out) != length:
        raise IntegrityError(f"{what} holds {len(out)} bytes, not the {length} its file needs")
    return out


class DataPack:
    """An opened data pack: hands out verified chunk plaintexts by chunk id."""

    def __init__(
        self, index: int, name: bytes, entries: dict[bytes, PackEntry], key: SealingKey, backup_id: bytes
    ) -> None:
        self.index = index
        self.name = name
        self._entries = entries
        self._key = key
        self._backup_id = backup_id

    def chunk(
        self, chunk_id: bytes, length: int, ids: ChunkIdKey | None = None, *, release: bool = False
    ) -> bytes:
        """The plaintext of chunk ``chunk_id`` (IntegrityError if absent, altered or of another length).

        ``release``: drop the sealed entry from memory (the chunk cannot be asked for again).
        """
        what = f"chunk {chunk_id.hex()[:16]} of pack {self.name.hex()[:16]}"
        entry = self._entries.pop(chunk_id, None) if release else self._entries.get(chunk_id)
        if entry is None or entry.object_type is not ObjectType.DATA_CHUNK:
            raise IntegrityError(f"{what} is not in the pack the backup names; the backup is damaged")
        try:
            plaintext = open_entry(entry, self._key, backup_id=self._backup_id)
        except IntegrityError as exc:
            raise IntegrityError(f"{what} does not open: {exc}") from None
        chunk = decode_chunk_payload(plaintext, what)
        if chunk.compression is Compression.ZSTD:
            data = decompress(chunk.payload, length, what)
        else:
            data = chunk.payload
            if len(data) != length:
                raise IntegrityError(f"{what} holds {len(data)} bytes, not the {length} its file needs")
        if ids is not None:
            ids.verify(data, chunk_id)
        return data


def fetch_data_pack(
    repo: Repository, root: BackupRoot, sizes: dict[bytes, int], keys: DataKeys, index: int
) -> DataPack:
    """Fetch and open data pack ``index`` of ``root`` under its source's data key and backup id."""
    ref = root.packs[index]
    if ref.kind is not PackKind.DATA:
        raise FormatError(f"pack {ref.name.hex()[:16]} holds tree nodes, not chunks")
    source = root.sources[ref.source]
    key = keys.get(ref.source)
    what = "data pack"
    # One SHA-256 pass checks the pack's name and yields its body hash (``Repository.get_pack``).
    data, body = repo.get_pack(ref.name, size=sizes[ref.name], what=what)
    try:
        opened = open_pack(data, key, backup_id=source.backup_id, body=body)
    except IntegrityError as exc:
        raise IntegrityError(f"{what} {ref.name.hex()[:16]} does not open: {exc}") from None
    except FormatError as exc:
        raise FormatError(f"{what} {ref.name.hex()[:16]}: {exc}") from None
    entries = {entry.object_id: entry for entry in opened.pack.entries}
    return DataPack(index, ref.name, entries, key, source.backup_id)
