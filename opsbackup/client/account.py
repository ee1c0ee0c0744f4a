"""The verified view of an account: its keyring (against the pinned root) and its manifests.

Every client path goes through here: :func:`open_account` fetches the keyring, verifies it
against the root it trusts (the pinned root, or the root it followed through a handover),
refuses a rollback against the client state, and records the new high-water mark. When the
keyring changed since the last run it walks every version in between (``GET
/v1/keyring/{version}``), each verified with the active root of the one before, so root
handovers are followed and never skipped. :meth:`Account.verify_manifest` is the one place a
signed manifest becomes a trusted :class:`Manifest`: signature, signer's role and label, the
trusted-head rule for a revoked host key, host, backup id and account.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyring import KeyEntry, Keyring, keyring_digest, open_keyring
from crypto.manifest_check import manifest_hash, verify_manifest
from crypto.primitives import ct_equal, public_key_der, public_key_id
from formats.keyring import NO_HEAD
from formats.manifest import FIRST_PREVIOUS, Manifest
from formats.roles import Role
from opsbackup.client.repository import MAX_KEYRING, Repository
from opsbackup.client.state import ClientState, KeyringMark
from opsbackup.errors import FormatError, IntegrityError, NotFoundError, OpsbackupError, WrongKeyError

__all__ = ["Account", "RevokedSignerError", "VerifiedManifest", "fetch_keyring_version", "open_account"]


class RevokedSignerError(IntegrityError):
    """A manifest signed by a revoked host key and not on the chain back from its trusted head."""


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
    """``root_public_key`` is the pinned root (the state's key); ``keyring.root_public_key`` is the
    account's current root, which differs from it after a root handover."""

    repo: Repository
    keyring: Keyring
    root_public_key: rsa.RSAPublicKey
    state: ClientState
    _trusted: dict[bytes, frozenset[bytes]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def root_id(self) -> bytes:
        return public_key_id(self.root_public_key)

    def trusted_chain(self, entry: KeyEntry) -> frozenset[bytes]:
        """Hashes of the manifests a revoked host key may still vouch for: its trusted head and
        every manifest reached from it by ``previous manifest hash`` (among those stored)."""
        if entry.trusted_head == NO_HEAD:
            return frozenset()
        cached = self._trusted.get(entry.key_id)
        if cached is not None:
            return cached
        key = {entry.key_id: entry.public_key()}
        by_hash: dict[bytes, Manifest] = {}
        for host, backup_id in self.repo.list_manifests(entry.label):
            try:
                data = self.repo.get_manifest(host, backup_id)
                by_hash[manifest_hash(data)] = verify_manifest(data, host_keys=key)
            except (OpsbackupError, NotFoundError):
                continue  # another key's manifest, or a broken one: it cannot be on this chain
        chain: set[bytes] = set()
        current = entry.trusted_head
        while current != FIRST_PREVIOUS and current not in chain:
            chain.add(current)
            found = by_hash.get(current)
            if found is None:
                break  # not stored (forgotten): the chain cannot be followed further back
            current = found.previous_manifest_hash
        self._trusted[entry.key_id] = frozenset(chain)
        return self._trusted[entry.key_id]

    def verify_manifest(self, host: str, backup_id: str, signed_manifest: bytes) -> VerifiedManifest:
        """Verify a manifest fetched as ``host/backup_id``; raise unless every check holds.

        The signer must be a host key of the keyring, labelled ``host``. A revoked host key
        vouches only for its trusted head and the manifests reached from it by the previous-
        manifest chain (``docs/spec/keyring.md``): its signed time is its own claim, so a stolen
        key could backdate. The body must name that host, that backup id and this account.
        Signature first (``crypto.manifest_check``), then the rest.
        """
        host_keys = self.keyring.keys_for(Role.HOST, include_revoked=True)
        body = verify_manifest(signed_manifest, host_keys=host_keys)
        entry = self.keyring.entry(body.host_key_id)
        where = f"manifest {host}/{backup_id}"
        if entry.revoked_at is not None:
            digest = manifest_hash(signed_manifest)
            if not ct_equal(digest, entry.trusted_head) and digest not in self.trusted_chain(entry):
                revoked = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.revoked_at))
                raise RevokedSignerError(
                    f"{where}: backup {body.backup_id.hex()} was signed by host key "
                    f"{entry.key_id.hex()[:16]} of {entry.label} after it was revoked (at {revoked}; "
                    f"keyring version {self.keyring.version}): it is not on the chain of backups the "
                    "revocation trusts; refusing it"
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


def fetch_keyring_version(repo: Repository, version: int) -> bytes | None:
    """Signed keyring ``version`` as the server stores it (unverified), or ``None`` if absent."""
    try:
        return repo.transport.get_bytes(f"/v1/keyring/{version}", max_size=MAX_KEYRING)
    except NotFoundError:
        return None


def _der_key(der: bytes | None, default: rsa.RSAPublicKey) -> rsa.RSAPublicKey:
    if der is None:
        return default
    key = serialization.load_der_public_key(der)
    if not isinstance(key, rsa.RSAPublicKey):
        raise FormatError("client state names a root key that is not an RSA key; restore the state file")
    return key


def _walk(
    repo: Repository, start: int, trusted: rsa.RSAPublicKey, mark: KeyringMark | None
) -> tuple[Keyring, bytes, rsa.RSAPublicKey] | None:
    """Open versions ``start``, ``start + 1``, ... until the server has no more, each with the
    active root of the one before; the newest ``(keyring, bytes, signer)``, or ``None``."""
    newest: tuple[Keyring, bytes, rsa.RSAPublicKey] | None = None
    version = start
    while (data := fetch_keyring_version(repo, version)) is not None:
        ring = open_keyring(data, root_public_key=trusted, min_version=mark.version if mark else 0)
        if ring.version != version:
            raise IntegrityError(f"the server sent keyring version {ring.version} as version {version}")
        newest, trusted, version = (ring, data, trusted), ring.root_public_key, version + 1
    return newest


def open_account(repo: Repository, root_public_key: rsa.RSAPublicKey, state: ClientState) -> Account:
    """Fetch and verify the keyring, following root handovers; refuse a rollback; remember it.

    ``root_public_key`` is the pinned root (from the config or a key file). The state remembers,
    under it, the newest version seen, its digest, its signer and its active root. An unchanged
    keyring is verified with its remembered signer; a changed one by walking every version after
    the remembered one (from version 1 on a machine that remembers none, unless the newest is
    signed by the pinned root itself).
    """
    root_id = public_key_id(root_public_key)
    data = repo.get_keyring()
    mark = state.keyring_mark(root_id)
    signer = root_public_key
    if mark is not None:
        signer = _der_key(mark.signer, root_public_key)
        unchanged = False
        with contextlib.suppress(FormatError):
            unchanged = ct_equal(keyring_digest(data), mark.digest)
        trusted = _der_key(mark.root, root_public_key)
        walked = None if unchanged else _walk(repo, mark.version + 1, trusted, mark)
        if walked is None:  # the same version again, or an older or different one: open it to say which
            keyring = open_keyring(
                data, root_public_key=signer, min_version=mark.version, seen_digest=mark.digest
            )
        else:
            keyring, data, signer = walked
    else:
        try:
            keyring = open_keyring(data, root_public_key=root_public_key)
        except WrongKeyError as exc:
            walked = _walk_from_first(repo, root_public_key, exc)
            keyring, data, signer = walked
    root = keyring.root_public_key
    state.record_keyring(
        root_id,
        KeyringMark(
            keyring.version,
            keyring_digest(data),
            None if public_key_id(signer) == root_id else public_key_der(signer),
            None if keyring.root_id == root_id else public_key_der(root),
        ),
    )
    return Account(repo=repo, keyring=keyring, root_public_key=root_public_key, state=state)


def _walk_from_first(
    repo: Repository, root_public_key: rsa.RSAPublicKey, exc: WrongKeyError
) -> tuple[Keyring, bytes, rsa.RSAPublicKey]:
    """A machine that remembers nothing and whose pinned root did not sign the newest keyring."""
    try:
        walked = _walk(repo, 1, root_public_key, None)
    except WrongKeyError:
        walked = None
    if walked is None:
        raise WrongKeyError(
            f"{exc}; nor does the pinned root key sign keyring version 1, so no chain of root "
            "handovers leads from it: this is not this account's root key"
        ) from None
    return walked
