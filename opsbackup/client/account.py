"""The verified view of an account: its keyring (against the pinned root) and its manifests.

Every client path goes through here: :func:`open_account` fetches the keyring, verifies it
against the pinned root key, refuses a rollback against the client state, and records the new
high-water mark; :meth:`Account.verify_manifest` is the one place a signed manifest becomes a
trusted :class:`Manifest`: signature, signer's role and label, host, backup id and account.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyring import Keyring, keyring_digest, open_keyring
from crypto.manifest_check import manifest_hash, verify_manifest
from crypto.primitives import public_key_id
from formats.manifest import Manifest
from formats.roles import Role
from opsbackup.client.repository import Repository
from opsbackup.client.state import ClientState, KeyringMark
from opsbackup.errors import IntegrityError

__all__ = ["Account", "VerifiedManifest", "open_account"]


@dataclass(frozen=True)
class VerifiedManifest:
    """A manifest whose signature and naming were checked; ``signed`` are its exact bytes."""

    host: str
    manifest: Manifest
    signed: bytes

    @property
    def backup_id(self) -> str:
        return self.manifest.backup_id.hex()

    @property
    def hash(self) -> bytes:
        """SHA-256 of the signed bytes: what the host's next manifest names as its previous."""
        return manifest_hash(self.signed)


@dataclass(frozen=True)
class Account:
    repo: Repository
    keyring: Keyring
    root_public_key: rsa.RSAPublicKey
    state: ClientState

    @property
    def root_id(self) -> bytes:
        return public_key_id(self.root_public_key)

    def verify_manifest(self, host: str, backup_id: str, signed_manifest: bytes) -> VerifiedManifest:
        """Verify a manifest fetched as ``host/backup_id``; raise unless every check holds.

        The signer must be a host key of the keyring (a revoked one only for manifests dated
        before its revocation), labelled ``host``; the body must name that host, that backup id
        and this account. Signature first (``crypto.manifest_check``), then the rest.
        """
        host_keys = self.keyring.keys_for(Role.HOST, include_revoked=True)
        body = verify_manifest(signed_manifest, host_keys=host_keys)
        entry = self.keyring.entry(body.host_key_id)
        where = f"manifest {host}/{backup_id}"
        if entry.revoked_at is not None and body.time >= entry.revoked_at:
            raise IntegrityError(
                f"{where} is signed by host key {entry.label!r}, revoked before the manifest's time; "
                "refusing it"
            )
        if body.host_name != host or entry.label != host:
            raise IntegrityError(
                f"{where} is signed by the key of host {entry.label!r} and names host {body.host_name!r}: "
                "a manifest of another host was put in its place; refusing it"
            )
        if body.backup_id.hex() != backup_id:
            raise IntegrityError(
                f"{where} holds backup {body.backup_id.hex()}: another manifest was put in its place; "
                "refusing it"
            )
        if body.account_id != self.keyring.account_id:
            raise IntegrityError(f"{where} belongs to another account; refusing it")
        return VerifiedManifest(host=host, manifest=body, signed=signed_manifest)

    def fetch_manifest(self, host: str, backup_id: str) -> VerifiedManifest:
        return self.verify_manifest(host, backup_id, self.repo.get_manifest(host, backup_id))


def open_account(repo: Repository, root_public_key: rsa.RSAPublicKey, state: ClientState) -> Account:
    """Fetch and verify the keyring against the pinned root key; refuse a rollback; remember it."""
    root_id = public_key_id(root_public_key)
    data = repo.get_keyring()
    mark = state.keyring_mark(root_id)
    keyring = open_keyring(
        data,
        root_public_key=root_public_key,
        min_version=mark.version if mark else 0,
        seen_digest=mark.digest if mark else None,
    )
    state.record_keyring(root_id, KeyringMark(keyring.version, keyring_digest(data)))
    return Account(repo=repo, keyring=keyring, root_public_key=root_public_key, state=state)
