"""What a client remembers between runs, so a server cannot roll it back: one small JSON file.

Per pinned root key (one account; the pin the config or key file names, which stays the state's
key after the account's root is replaced): the highest keyring version seen, the digest of its
body (``crypto.keyring.keyring_digest``), the root key that signed it and its active root key
(they differ after a root handover: the client follows it and trusts the new root from then on),
and per host the hash of the newest manifest seen (``crypto.manifest_check.manifest_hash``). The
file is rewritten atomically (mode 0600). A missing file is a first run; a corrupt one is a
:class:`ConfigError` (never silently reset, because resetting it is exactly what a rollback
attack wants).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from crypto.atomic_file import write_atomic
from opsbackup.errors import ConfigError

__all__ = ["ClientState", "KeyringMark"]

_VERSION = 1


@dataclass(frozen=True)
class KeyringMark:
    """The newest keyring seen: version, body digest, and (DER SubjectPublicKeyInfo) the root key
    that signed it and its active root; ``None`` for either means the pinned root itself."""

    version: int
    digest: bytes
    signer: bytes | None = None
    root: bytes | None = None


class ClientState:
    """The state file at ``path``; ``None`` path keeps state in memory only (a fresh machine)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._data: dict[str, dict[str, object]] = {}
        if path is not None and path.exists():
            self._data = _load(path)

    def keyring_mark(self, root_id: bytes) -> KeyringMark | None:
        entry = self._data.get(root_id.hex(), {})
        version, digest = entry.get("keyring_version"), entry.get("keyring_digest")
        if not isinstance(version, int) or not isinstance(digest, str):
            return None
        signer, root = entry.get("keyring_signer"), entry.get("keyring_root")
        return KeyringMark(
            version,
            bytes.fromhex(digest),
            bytes.fromhex(signer) if isinstance(signer, str) else None,
            bytes.fromhex(root) if isinstance(root, str) else None,
        )

    def record_keyring(self, root_id: bytes, mark: KeyringMark) -> None:
        old = self.keyring_mark(root_id)
        if old is not None and old.version > mark.version:
            return
        entry = self._data.setdefault(root_id.hex(), {})
        entry["keyring_version"] = mark.version
        entry["keyring_digest"] = mark.digest.hex()
        for name, value in (("keyring_signer", mark.signer), ("keyring_root", mark.root)):
            if value is None:
                entry.pop(name, None)
            else:
                entry[name] = value.hex()
        self._save()

    def head(self, root_id: bytes, host: str) -> bytes | None:
        """Hash of the newest manifest of ``host`` this client has seen (made or verified)."""
        heads = self._data.get(root_id.hex(), {}).get("heads", {})
        value = heads.get(host) if isinstance(heads, dict) else None
        return bytes.fromhex(value) if isinstance(value, str) else None

    def record_head(self, root_id: bytes, host: str, manifest_hash: bytes) -> None:
        entry = self._data.setdefault(root_id.hex(), {})
        heads = entry.setdefault("heads", {})
        assert isinstance(heads, dict)
        heads[host] = manifest_hash.hex()
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = json.dumps({"version": _VERSION, "accounts": self._data}, indent=1, sort_keys=True)
        write_atomic(self.path, body.encode() + b"\n", 0o600)


def _load(path: Path) -> dict[str, dict[str, object]]:
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"client state file {path} is unreadable ({exc.__class__.__name__}); it guards against "
            "rollback, so restore it from a copy or remove it knowingly"
        ) from None
    accounts = raw.get("accounts") if isinstance(raw, dict) else None
    if not isinstance(accounts, dict) or raw.get("version") != _VERSION:
        raise ConfigError(f"client state file {path} is not an opsbackup state file (version {_VERSION})")
    if os.name == "posix" and path.stat().st_mode & 0o022:
        raise ConfigError(f"client state file {path} is writable by others; chmod 600 it")
    return {str(k): v for k, v in accounts.items() if isinstance(v, dict)}
