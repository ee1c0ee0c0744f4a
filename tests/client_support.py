"""A real account for client tests: admin keys, a keyring, hosts, credentials, a live TLS server.

``client_env`` starts the storage server on loopback (``tests.server._support.live_server``),
creates the account, publishes keyring version 1 (root, data, browse, deletion, and the host
keys of "web1" and "web2"), issues one credential per scope, and yields what a client needs.
Keys come from the session-scoped :func:`account_keys` fixture (RSA-4096 generation is slow).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyring import new_keyring_body
from crypto.primitives import random_bytes
from crypto.private import generate_rsa_key, sign_object
from formats.roles import Role
from opsbackup.client.account import Account, open_account
from opsbackup.client.identity import HostIdentity
from opsbackup.client.repository import Repository
from opsbackup.client.state import ClientState
from opsbackup.client.transport import Transport
from opsbackup.server.accounts import Scope, add_account, issue_credential
from opsbackup.server.keyrings import store_keyring
from tests.server._support import LiveServer, live_server

__all__ = ["AccountKeys", "ClientEnv", "account_keys", "client_env", "env"]


@dataclass(frozen=True)
class AccountKeys:
    root: rsa.RSAPrivateKey
    data: rsa.RSAPrivateKey
    browse: rsa.RSAPrivateKey
    deletion: rsa.RSAPrivateKey
    hosts: dict[str, rsa.RSAPrivateKey]
    dedup_secret: bytes


@pytest.fixture(scope="session")
def account_keys(rsa4096: rsa.RSAPrivateKey, rsa3072: rsa.RSAPrivateKey) -> AccountKeys:
    """root = rsa4096, fresh data and browse (RSA-4096), deletion = rsa3072, two host keys."""
    return AccountKeys(
        root=rsa4096,
        data=generate_rsa_key(4096),
        browse=generate_rsa_key(4096),
        deletion=rsa3072,
        hosts={"web1": generate_rsa_key(3072), "web2": generate_rsa_key(3072)},
        dedup_secret=random_bytes(32),
    )


@dataclass
class ClientEnv:
    server: LiveServer
    keys: AccountKeys
    account_id: bytes
    tokens: dict[Scope, str]
    keyring: bytes
    root: Path

    def transport(self, scope: Scope = Scope.HOST) -> Transport:
        return Transport(self.server.url, self.server.ca, self.tokens[scope], retries=1, backoff=0.01)

    def account(self, scope: Scope = Scope.HOST, state: Path | None = None) -> Account:
        """A verified account view over a fresh transport (state in ``state`` or in memory)."""
        repo = Repository(self.transport(scope))
        return open_account(repo, self.keys.root.public_key(), ClientState(state))

    def host(self, name: str = "web1") -> HostIdentity:
        cache = self.root / "cache" / name
        return HostIdentity(
            name=name,
            signing_key=self.keys.hosts[name],
            dedup_secret=self.keys.dedup_secret,
            cache_dir=cache,
        )


@contextlib.contextmanager
def client_env(root: Path, keys: AccountKeys) -> Iterator[ClientEnv]:
    """A live server with one account set up as ``opsbackup keys init`` + enrollment would."""
    with live_server(root / "server") as server:
        account = add_account(server.store, "acme", keys.root.public_key())
        add = [
            (Role.DATA, keys.data.public_key(), "data"),
            (Role.BROWSE, keys.browse.public_key(), "browse"),
            (Role.DELETION, keys.deletion.public_key(), "deletion"),
        ]
        add += [(Role.HOST, key.public_key(), name) for name, key in keys.hosts.items()]
        body = new_keyring_body(keys.root.public_key(), account_id=account.account_id, add=add)
        keyring = sign_object(keys.root, body)
        store_keyring(server.store, account, keyring)
        tokens = {
            scope: issue_credential(server.store, account, scope, f"{scope}-cred")[0] for scope in Scope
        }
        yield ClientEnv(server, keys, account.account_id, tokens, keyring, root)


@pytest.fixture
def env(tmp_path: Path, account_keys: AccountKeys) -> Iterator[ClientEnv]:
    """A fresh :func:`client_env` per test (import it into a conftest to use it)."""
    with client_env(tmp_path / "env", account_keys) as e:
        yield e
