"""This machine's throughput for each stage of a backup and a restore, per core and on all cores.

Every stage runs the project's own code on the same buffers a backup makes (1 MiB-average chunks
of mixed text and random bytes): the keyed FastCDC chunker, the chunk id (HMAC-SHA256), the pack
hash (SHA-256), zstd at the level a backup uses (with its incompressibility probe), AES-256-GCM
sealing and opening (:class:`crypto.aead.SealingKey`), zstd decompression, and the time of one
RSA-4096 OAEP unwrap (what a restore pays once per backup key). "1 thread" is the speed of one
core; "N threads" runs the same work on N threads (the C code releases the GIL), which is what the
backup pipeline can reach at best on this machine.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import zstandard
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.aead import SealingKey
from crypto.dedup import ChunkIdKey, chunker_key
from crypto.primitives import oaep_padding, random_bytes
from formats.sealed import ObjectType
from opsbackup.backup.chunk_pipeline import ChunkSealer
from opsbackup.backup.tuning import Tuning
from opsbackup.chunking import Chunker, gear_table, native_available

__all__ = ["StageResult", "UnwrapResult", "make_sample", "measure_stages", "measure_unwrap"]

MiB = 1 << 20
_BACKUP_ID = bytes(16)


@dataclass(frozen=True)
class StageResult:
    """One stage: bytes processed per second on one thread and on ``threads`` threads (MB = 10^6)."""

    name: str
    what: str
    one_thread_mb_s: float
    threads: int
    all_threads_mb_s: float


@dataclass(frozen=True)
class UnwrapResult:
    """Milliseconds for one RSA-OAEP unwrap of a 32-byte key (``bits``-bit key), best of ``runs``."""

    bits: int
    ms: float
    runs: int


def make_sample(size: int, seed: int = 1) -> bytes:
    """``size`` bytes: 3/4 log-like text (compresses about 4:1), 1/4 random, in 256 KiB runs."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    words = [b"backup", b"chunk", b"server", b"GET", b"200", b"/var/log", b"error", b"host", b"the"]
    text = bytearray()
    while len(text) < 256 * 1024:
        text += b" ".join(rng.choice(words) for _ in range(10)) + b" %d\n" % rng.randrange(1 << 30)
    out = bytearray()
    i = 0
    while len(out) < size:
        out += rng.randbytes(256 * 1024) if i % 4 == 3 else bytes(text[: 256 * 1024])
        i += 1
    return bytes(out[:size])


def _chunks(chunker: Chunker, data: bytes) -> list[bytes]:
    out: list[bytes] = []
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        n = chunker.cut(view[pos:], eof=True)
        out.append(data[pos : pos + n])
        pos += n
    return out


def _rate(work: Callable[[Sequence[bytes]], None], parts: Sequence[bytes], threads: int) -> float:
    """MB/s of ``work`` over ``parts`` (each thread takes a share), best of two runs."""
    total = sum(len(p) for p in parts)
    shares = [parts[i::threads] for i in range(threads)]
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(2):
            started = time.perf_counter()
            for f in [pool.submit(work, share) for share in shares]:
                f.result()
            best = min(best, time.perf_counter() - started)
    return total / 1e6 / best if best > 0 else float("inf")


def measure_stages(size: int, threads: int | None = None) -> list[StageResult]:
    """Measure every stage on ``size`` bytes of sample data, on 1 and on ``threads`` threads."""
    threads = threads or os.cpu_count() or 1
    secret = random_bytes(32)
    data = make_sample(size)
    chunker = Chunker(gear_table(chunker_key(secret)), Tuning().chunker)
    chunks = _chunks(chunker, data)
    # The chunker works on whole blocks (a backup reads 8 MiB at a time), so give each thread blocks.
    blocks = [data[i : i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    id_key = ChunkIdKey(secret)
    key = SealingKey(random_bytes(32))
    level = Tuning().compression_level
    sealer = ChunkSealer(key, _BACKUP_ID, level)
    ids = [id_key.chunk_id(c) for c in chunks]
    plain_sealed = [
        key.seal(c, obj_type=ObjectType.DATA_CHUNK, backup_id=_BACKUP_ID, object_id=i)
        for i, c in zip(ids, chunks, strict=True)
    ]
    by_sealed = dict(zip(plain_sealed, ids, strict=True))
    compressed = [zstandard.ZstdCompressor(level=level).compress(c) for c in chunks]

    def chunk(parts: Sequence[bytes]) -> None:
        for block in parts:
            _chunks(chunker, block)

    def hmac_ids(parts: Sequence[bytes]) -> None:
        for c in parts:
            id_key.chunk_id(c)

    def sha(parts: Sequence[bytes]) -> None:
        for c in parts:
            hashlib.sha256(c).digest()

    def zstd(parts: Sequence[bytes]) -> None:
        z = zstandard.ZstdCompressor(level=level)
        for c in parts:
            z.compress(c)

    def unzstd(parts: Sequence[bytes]) -> None:
        z = zstandard.ZstdDecompressor()
        for c in parts:
            z.decompress(c)

    def seal(parts: Sequence[bytes]) -> None:
        for c in parts:
            key.seal(c, obj_type=ObjectType.DATA_CHUNK, backup_id=_BACKUP_ID, object_id=bytes(32))

    def open_(parts: Sequence[bytes]) -> None:
        for s in parts:
            key.open(s, obj_type=ObjectType.DATA_CHUNK, backup_id=_BACKUP_ID, object_id=by_sealed[s])

    def whole(parts: Sequence[bytes]) -> None:
        for c in parts:
            sealer(id_key.chunk_id(c), c)

    stages: list[tuple[str, str, Callable[[Sequence[bytes]], None], Sequence[bytes]]] = [
        ("chunker", "keyed FastCDC" + ("" if native_available() else " (pure Python!)"), chunk, blocks),
        ("chunk id", "HMAC-SHA256", hmac_ids, chunks),
        ("pack hash", "SHA-256", sha, chunks),
        ("compress", f"zstd level {level}", zstd, chunks),
        ("seal", "AES-256-GCM", seal, chunks),
        ("backup chunk", "id + probe + zstd + seal", whole, chunks),
        ("open", "AES-256-GCM", open_, plain_sealed),
        ("decompress", "zstd", unzstd, compressed),
    ]
    results = []
    for name, what, work, parts in stages:
        one = _rate(work, parts, 1)
        many = _rate(work, parts, threads) if threads > 1 else one
        results.append(StageResult(name, what, one, threads, many))
    return results


def measure_unwrap(bits: int = 4096, runs: int = 5) -> UnwrapResult:
    """Time RSA-OAEP (SHA-256) decryption of a 32-byte key with a fresh ``bits``-bit key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pad = oaep_padding(b"opsbackup benchmark")
    wrapped = private.public_key().encrypt(random_bytes(32), pad)
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        private.decrypt(wrapped, pad)
        best = min(best, time.perf_counter() - started)
    return UnwrapResult(bits, best * 1000, runs)
