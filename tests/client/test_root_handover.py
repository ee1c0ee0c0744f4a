"""The client follows root handovers version by version, from its state or from version 1."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyring import next_keyring_body, open_keyring
from crypto.primitives import public_key_id
from crypto.private import sign_object
from formats.roles import Role
from opsbackup.client.account import open_account
from opsbackup.client.repository import Repository
from opsbackup.client.state import ClientState
from opsbackup.errors import WrongKeyError
from opsbackup.server.accounts import Scope
from tests.client_support import AccountKeys, ClientEnv, client_env
from tests.conftest import load_vectors


def _new_root() -> rsa.RSAPrivateKey:
    """An RSA-4096 key that is in no test account (the keyring vectors' second root: no keygen)."""
    key = serialization.load_pem_private_key(load_vectors("keyring")["keys"]["root2"].encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


NEW_ROOT = _new_root()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, account_keys: AccountKeys) -> Iterator[ClientEnv]:
    with client_env(tmp_path_factory.mktemp("handover"), account_keys) as e:
        yield e


def _open(env: ClientEnv, pin: rsa.RSAPublicKey, state: ClientState) -> int:
    account = open_account(Repository(env.transport(Scope.RESTORE)), pin, state)
    return account.keyring.version


def test_clients_follow_a_root_handover(env: ClientEnv, tmp_path: Path) -> None:
    old = env.keys.root
    old_id, new_id = public_key_id(old.public_key()), public_key_id(NEW_ROOT.public_key())
    seen = ClientState(tmp_path / "seen.json")
    assert _open(env, old.public_key(), seen) == 1
    admin = Repository(env.transport(Scope.ADMIN))
    v1 = open_keyring(env.keyring, root_public_key=old.public_key())
    now = int(time.time())
    body2 = next_keyring_body(
        v1, add=[(Role.ROOT, NEW_ROOT.public_key(), "root 2")], revoke=[old_id], now=now
    )
    admin.put_keyring(sign_object(old, body2))  # the handover, signed by the old root
    v2 = open_keyring(sign_object(old, body2), root_public_key=old.public_key())
    admin.put_keyring(sign_object(NEW_ROOT, next_keyring_body(v2, now=now)))  # version 3, new root

    # a client that saw version 1 walks 2 and 3 and from then on trusts the new root
    account = open_account(Repository(env.transport()), old.public_key(), seen)
    assert (account.keyring.version, account.keyring.root_id, account.root_id) == (3, new_id, old_id)
    mark = ClientState(tmp_path / "seen.json").keyring_mark(old_id)
    assert mark is not None
    assert mark.version == 3
    assert mark.root is not None
    followed = serialization.load_der_public_key(mark.root)
    assert isinstance(followed, rsa.RSAPublicKey)
    assert public_key_id(followed) == new_id
    assert _open(env, old.public_key(), ClientState(tmp_path / "seen.json")) == 3  # unchanged: no walk

    # a fresh machine with only a key file (which names the old root) walks from version 1
    assert _open(env, old.public_key(), ClientState(None)) == 3
    # a machine pinning the new root opens the newest version directly
    assert _open(env, NEW_ROOT.public_key(), ClientState(None)) == 3
    # a key that never was the root finds no chain
    with pytest.raises(WrongKeyError, match="no chain of root handovers"):
        _open(env, env.keys.data.public_key(), ClientState(None))

    # the server (or a thief of the old root) shows a version 4 signed by the revoked old root:
    # stored behind the API's back, since the server itself refuses it
    v3 = open_account(Repository(env.transport()), old.public_key(), ClientState(None)).keyring
    forged = sign_object(old, next_keyring_body(v3))
    key = f"accounts/{env.account_id.hex()}/keyrings/{4:020d}"
    assert env.server.store.put(key, io.BytesIO(forged), overwrite=False)
    with pytest.raises(WrongKeyError):
        _open(env, old.public_key(), ClientState(tmp_path / "seen.json"))
