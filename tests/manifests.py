"""One sample manifest for tests: every field valid, any of them overridable."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.primitives import public_key_id
from formats import manifest
from formats.manifest import Manifest, StoredObject

SAMPLE_PACK = hashlib.sha256(b"pack").digest()
SAMPLE_CHUNK_INDEX = hashlib.sha256(b"chunk index").digest()


def sample_objects(*packs: tuple[bytes, int]) -> tuple[StoredObject, ...]:
    """A sorted object list of ``packs`` (name, size) plus the sample chunk index."""
    return tuple(
        sorted(
            {StoredObject(n, s) for n, s in packs} | {StoredObject(SAMPLE_CHUNK_INDEX, 77)},
            key=lambda o: o.name,
        )
    )


def sample_manifest(host: rsa.RSAPrivateKey, **change: Any) -> Manifest:
    """A valid manifest signed-for by ``host``; ``change`` replaces fields (validated by encode)."""
    m = Manifest(
        backup_id=bytes(range(16)),
        account_id=bytes(16),
        host_key_id=public_key_id(host.public_key()),
        time=1_700_000_000,
        previous_manifest_hash=manifest.FIRST_PREVIOUS,
        keyring_version=3,
        data_key_commitment=b"d" * 32,
        metadata_key_commitment=b"m" * 32,
        tree_root=b"t" * 32,
        tree_root_pack=SAMPLE_PACK,
        chunk_index=SAMPLE_CHUNK_INDEX,
        host_name="web-1",
        sources=(),
        objects=sample_objects((SAMPLE_PACK, 123)),
    )
    return dataclasses.replace(m, **change)
