"""Build, sign and upload the account keyring: version 1, then one version per change.

Every version is signed by the account's active root key and uploaded with an admin credential;
after each upload the keyring is fetched back and verified against the pinned root (which also
records it in the client state, so the server cannot later roll it back). Adding, replacing or
revoking a host first verifies the current keyring, so the admin never signs on top of a keyring
the server made up. Revoking a host key (``keys revoke-host``, ``keys add-host --replace``)
records its trusted head: by default the newest manifest it signed that the server stores now
(:func:`host_heads`, docs/spec/keyring.md "Revoking a host key: the trusted head").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyring import KeyEntry, Keyring, new_keyring_body, next_keyring_body, open_keyring
from crypto.primitives import public_key_id
from crypto.private import sign_object
from formats.keyring import NO_HEAD
from formats.manifest import FIRST_PREVIOUS
from formats.roles import KEY_BITS, Role
from opsbackup.client.account import Account, VerifiedManifest, open_account
from opsbackup.client.repository import Repository
from opsbackup.client.state import ClientState
from opsbackup.errors import NotFoundError, OpsbackupError, UsageError, WrongKeyError, WrongRoleError

__all__ = [
    "HOST_NAME_RE",
    "HostHead",
    "active_host_key",
    "add_host_key",
    "check_host_name",
    "choose_head",
    "host_heads",
    "publish_first_keyring",
    "revoke_host_key",
    "TRUST_NONE",
]

#: ``choose_head``'s answer for ``--trust-none``.
TRUST_NONE = "none"

#: A host name as the server accepts it in manifest paths (opsbackup.server.common).
HOST_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


def check_host_name(name: str) -> str:
    """``name`` if it is a valid host name; :class:`UsageError` otherwise."""
    if not HOST_NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid host name {name[:70]!r}: use lowercase a-z, 0-9, '.', '_', '-' (at most 63, "
            "starting with a letter or digit)"
        )
    return name


def _need(key: rsa.RSAPublicKey, role: Role) -> tuple[Role, rsa.RSAPublicKey, str]:
    if key.key_size != KEY_BITS[role]:
        raise WrongRoleError(f"a {role.label} key must be RSA-{KEY_BITS[role]}, not RSA-{key.key_size}")
    return role, key, role.label


def publish_first_keyring(
    repo: Repository,
    *,
    account_id: bytes,
    root: rsa.RSAPrivateKey,
    data: rsa.RSAPublicKey,
    browse: rsa.RSAPublicKey,
    deletion: rsa.RSAPublicKey,
    state: ClientState,
) -> Keyring:
    """Sign and upload keyring version 1 (root, data, browse, deletion) of account ``account_id``."""
    root_public = root.public_key()
    try:
        current = repo.get_keyring()
    except NotFoundError:
        current = None
    if current is not None:
        existing = open_keyring(current, root_public_key=root_public)
        raise UsageError(
            f"the account already has keyring version {existing.version}; "
            "add hosts with 'opsbackup keys add-host'"
        )
    add = [_need(data, Role.DATA), _need(browse, Role.BROWSE), _need(deletion, Role.DELETION)]
    body = new_keyring_body(root_public, account_id=account_id, add=add)
    repo.put_keyring(sign_object(root, body))
    return open_account(repo, root_public, state).keyring


@dataclass(frozen=True)
class HostHead:
    """What a host key's revocation will trust: ``head`` (``None``: nothing), the manifests on its
    chain (``trusted``, oldest first) and the ones the key signed that it leaves out (``refused``)."""

    key: KeyEntry
    head: VerifiedManifest | None
    trusted: tuple[VerifiedManifest, ...]
    refused: tuple[VerifiedManifest, ...]

    @property
    def head_hash(self) -> bytes:
        return self.head.hash if self.head is not None else NO_HEAD


def active_host_key(keyring: Keyring, name: str) -> KeyEntry | None:
    """The active host key labelled ``name``, or ``None``."""
    found = [e for e in keyring.entries if e.role is Role.HOST and e.active and e.label == name]
    return found[0] if found else None


def _oldest_first(manifests: list[VerifiedManifest]) -> list[VerifiedManifest]:
    """By (time, position on the chain, id), as ``opsbackup snapshots`` lists one host."""
    by_hash = {vm.hash: vm for vm in manifests}
    depth: dict[bytes, int] = {}

    def depth_of(vm: VerifiedManifest) -> int:
        path: list[VerifiedManifest] = []
        current: VerifiedManifest | None = vm
        while current is not None and current.hash not in depth and len(path) <= len(by_hash):
            path.append(current)
            current = by_hash.get(current.manifest.previous_manifest_hash)
        base = depth.get(current.hash, -1) if current is not None else -1
        for offset, item in enumerate(reversed(path), start=1):
            depth[item.hash] = base + offset
        return depth[vm.hash]

    return sorted(manifests, key=lambda vm: (vm.manifest.time, depth_of(vm), vm.backup_id))


def host_heads(account: Account, key: KeyEntry) -> list[VerifiedManifest]:
    """Every manifest of host ``key.label`` stored now that ``key`` signed, verified, oldest first
    (by time, then position on the chain). Manifests of the host's other keys, and any that do
    not verify, are left out: they are not this key's to trust."""
    found: list[VerifiedManifest] = []
    for host, backup_id in account.repo.list_manifests(key.label):
        if host != key.label:
            continue
        try:
            vm = account.fetch_manifest(host, backup_id)
        except (OpsbackupError, NotFoundError):
            continue
        if vm.manifest.host_key_id == key.key_id:
            found.append(vm)
    return _oldest_first(found)


def choose_head(account: Account, name: str, spec: str | None) -> HostHead:
    """The trusted head for revoking host ``name``'s active key: ``spec`` is ``None`` (the newest
    manifest the key signed that is stored now), :data:`TRUST_NONE`, or a backup id (or a unique
    prefix of 8+ hex digits) of a manifest of that host signed by that key."""
    check_host_name(name)
    key = active_host_key(account.keyring, name)
    if key is None:
        raise NotFoundError(
            f"host {name!r} has no active key in keyring version {account.keyring.version}: nothing to revoke"
        )
    manifests = host_heads(account, key)
    head: VerifiedManifest | None
    if spec == TRUST_NONE or (spec is None and not manifests):
        head = None
    elif spec is None:
        head = manifests[-1]
    else:
        wanted = spec.strip().lower().rpartition("/")[2]
        if not re.fullmatch(r"[0-9a-f]{8,32}", wanted):
            raise UsageError(f"--trusted-head {spec[:80]!r} is not a backup id (8 to 32 hex digits)")
        matches = [vm for vm in manifests if vm.backup_id.startswith(wanted)]
        if len(matches) != 1:
            what = "matches several backups" if matches else "is not a backup"
            raise UsageError(
                f"--trusted-head {spec[:80]!r} {what} of host {name} signed by its current key "
                f"{key.key_id.hex()[:16]} ({len(manifests)} stored; see 'opsbackup snapshots --host {name}')"
            )
        head = matches[0]
    chain: set[bytes] = set()
    by_hash = {vm.hash: vm for vm in manifests}
    current = head.hash if head is not None else FIRST_PREVIOUS
    while current != FIRST_PREVIOUS and current in by_hash and current not in chain:
        chain.add(current)
        current = by_hash[current].manifest.previous_manifest_hash
    trusted = tuple(vm for vm in manifests if vm.hash in chain)
    refused = tuple(vm for vm in manifests if vm.hash not in chain)
    return HostHead(key, head, trusted, refused)


def _check_root(account: Account, root: rsa.RSAPrivateKey) -> None:
    """The root key must be the keyring's active root (the pin, or its successor after a handover)."""
    if public_key_id(root.public_key()) != account.keyring.root_id:
        raise WrongKeyError(
            f"the root key file holds key {public_key_id(root.public_key()).hex()[:16]}, not the active "
            f"root {account.keyring.root_id.hex()[:16]} of keyring version {account.keyring.version}"
        )


def revoke_host_key(account: Account, root: rsa.RSAPrivateKey, head: HostHead) -> Keyring:
    """Sign and upload the next keyring version revoking ``head.key``, trusting ``head``."""
    _check_root(account, root)
    heads = {head.key.key_id: head.head_hash} if head.head is not None else {}
    body = next_keyring_body(account.keyring, revoke=[head.key.key_id], trusted_heads=heads)
    account.repo.put_keyring(sign_object(root, body))
    return open_account(account.repo, account.root_public_key, account.state).keyring


def add_host_key(
    account: Account,
    root: rsa.RSAPrivateKey,
    name: str,
    host_key: rsa.RSAPublicKey,
    *,
    replace: bool = False,
    replaced_head: HostHead | None = None,
) -> Keyring:
    """Sign and upload the next keyring version with ``host_key`` as the host key of ``name``.

    ``account`` must be opened (verified) with the pinned root; ``root`` must be the keyring's
    active root. A host that already has an active key is refused unless ``replace``, which
    revokes its old key in the same version, trusting ``replaced_head`` (default: the newest
    manifest the old key signed, :func:`choose_head`), so the host's earlier backups stay
    restorable.
    """
    check_host_name(name)
    _check_root(account, root)
    _need(host_key, Role.HOST)
    key_id = public_key_id(host_key)
    for entry in account.keyring.entries:
        if entry.key_id == key_id:
            raise UsageError(
                f"this key is already in the keyring as the {entry.role.label} key {entry.label!r}"
            )
    old = active_host_key(account.keyring, name)
    if old is not None and not replace:
        raise UsageError(
            f"host {name!r} already has a key in keyring version {account.keyring.version}; "
            "give --replace to revoke it and add this one"
        )
    heads: dict[bytes, bytes] = {}
    if old is not None:
        chosen = replaced_head if replaced_head is not None else choose_head(account, name, None)
        if chosen.key.key_id != old.key_id:
            raise UsageError(
                f"the trusted head given is for key {chosen.key.key_id.hex()[:16]}, not {name}'s"
            )
        if chosen.head is not None:
            heads[old.key_id] = chosen.head_hash
    revoke = [old.key_id] if old is not None else []
    body = next_keyring_body(
        account.keyring, add=[(Role.HOST, host_key, name)], revoke=revoke, trusted_heads=heads
    )
    account.repo.put_keyring(sign_object(root, body))
    return open_account(account.repo, account.root_public_key, account.state).keyring
