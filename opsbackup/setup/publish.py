"""Build, sign and upload the account keyring: version 1, then one version per change.

Every version is signed by the root key and uploaded with an admin credential; after each upload
the keyring is fetched back and verified against the pinned root (which also records it in the
client state, so the server cannot later roll it back). Adding a host first verifies the current
keyring, so the admin never signs on top of a keyring the server made up.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyring import Keyring, new_keyring_body, next_keyring_body, open_keyring
from crypto.primitives import public_key_id
from crypto.private import sign_object
from formats.roles import KEY_BITS, Role
from opsbackup.client.account import Account, open_account
from opsbackup.client.repository import Repository
from opsbackup.client.state import ClientState
from opsbackup.errors import NotFoundError, UsageError, WrongKeyError, WrongRoleError

__all__ = ["HOST_NAME_RE", "add_host_key", "check_host_name", "publish_first_keyring"]

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


def add_host_key(
    account: Account,
    root: rsa.RSAPrivateKey,
    name: str,
    host_key: rsa.RSAPublicKey,
    *,
    replace: bool = False,
) -> Keyring:
    """Sign and upload the next keyring version with ``host_key`` as the host key of ``name``.

    ``account`` must be opened (verified) with ``root``'s public key. A host that already has an
    active key is refused unless ``replace``, which revokes its old key in the same version.
    """
    check_host_name(name)
    if public_key_id(root.public_key()) != account.root_id:
        raise WrongKeyError("the root key file is not the root key this account's keyring is pinned to")
    _need(host_key, Role.HOST)
    key_id = public_key_id(host_key)
    for entry in account.keyring.entries:
        if entry.key_id == key_id:
            raise UsageError(
                f"this key is already in the keyring as the {entry.role.label} key {entry.label!r}"
            )
    old = [e.key_id for e in account.keyring.entries if e.role is Role.HOST and e.active and e.label == name]
    if old and not replace:
        raise UsageError(
            f"host {name!r} already has a key in keyring version {account.keyring.version}; "
            "give --replace to revoke it and add this one"
        )
    body = next_keyring_body(account.keyring, add=[(Role.HOST, host_key, name)], revoke=old)
    account.repo.put_keyring(sign_object(root, body))
    return open_account(account.repo, account.root_public_key, account.state).keyring
