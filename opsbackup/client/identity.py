"""What a host holds to back up: its name, its signing key, the dedup secret and its cache.

Nothing here can decrypt a backup: the signing key signs manifests, the dedup secret keys chunk
ids and the chunker and opens chunk indexes. The per-backup keys are wrapped to public keys
from the keyring and forgotten when the backup ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["HostIdentity"]


@dataclass(frozen=True, repr=False)
class HostIdentity:
    name: str  # the host's label in the keyring and in its manifests
    signing_key: rsa.RSAPrivateKey  # RSA-3072, made on the host
    dedup_secret: bytes  # 32 bytes, shared by the account's hosts
    cache_dir: Path  # where the host's local cache lives (rebuilt when lost)

    def __repr__(self) -> str:  # never print key material
        return f"HostIdentity(name={self.name!r}, cache_dir={str(self.cache_dir)!r})"
