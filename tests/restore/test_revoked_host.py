"""A revoked host key vouches only for the chain back from its trusted head (docs/spec/keyring.md).

The host's key is revoked with trusted head = its 2nd backup: its 1st and 2nd backups verify; a
3rd one signed with the revoked key and backdated to before the revocation (a compromised host,
or a thief of its key: stored straight into the server's storage, since the server refuses it
through the API) is refused, and so is a backdated fork with no predecessor.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator

import pytest

from crypto.keyring import next_keyring_body, open_keyring
from crypto.manifest_check import manifest_hash
from crypto.primitives import public_key_id
from crypto.private import sign_object
from formats import manifest, signed
from formats.manifest import FIRST_PREVIOUS
from opsbackup.client.account import RevokedSignerError
from opsbackup.client.repository import Repository
from opsbackup.errors import IntegrityError
from opsbackup.restore.snapshots import list_snapshots, resolve_snapshot
from opsbackup.server.accounts import Scope
from tests.client_support import AccountKeys, ClientEnv, client_env
from tests.manifests import sample_manifest


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, account_keys: AccountKeys) -> Iterator[ClientEnv]:
    with client_env(tmp_path_factory.mktemp("revoked"), account_keys) as e:
        yield e


def _store_manifest(env: ClientEnv, data: bytes) -> str:
    """Put a signed manifest of web1 straight into the server's storage (a fake, hostile writer)."""
    backup_id = manifest.decode(signed.decode(data).body).backup_id.hex()
    key = f"accounts/{env.account_id.hex()}/manifests/web1/{backup_id}"
    assert env.server.store.put(key, io.BytesIO(data), overwrite=False)
    return backup_id


def _signed(env: ClientEnv, n: int, previous: bytes, time: int) -> bytes:
    key = env.keys.hosts["web1"]
    body = sample_manifest(key)
    body = dataclasses.replace(
        body,
        backup_id=bytes([n]) * 16,
        account_id=env.account_id,
        host_name="web1",
        time=time,
        previous_manifest_hash=previous,
        keyring_version=1,
    )
    return sign_object(key, manifest.encode(body))


def test_revoked_host_key_trusts_only_its_chain(env: ClientEnv) -> None:
    t = 1_800_000_000
    m1 = _signed(env, 1, FIRST_PREVIOUS, t)
    m2 = _signed(env, 2, manifest_hash(m1), t + 3600)
    id1, id2 = _store_manifest(env, m1), _store_manifest(env, m2)

    # the administrator revokes web1's key, trusting everything up to its 2nd backup
    root = env.keys.root
    ring = open_keyring(env.keyring, root_public_key=root.public_key())
    web1 = public_key_id(env.keys.hosts["web1"].public_key())
    body = next_keyring_body(ring, revoke=[web1], trusted_heads={web1: manifest_hash(m2)}, now=t + 7200)
    Repository(env.transport(Scope.ADMIN)).put_keyring(sign_object(root, body))

    # the thief signs a 3rd backup with the revoked key, dated before the revocation
    m3 = _signed(env, 3, manifest_hash(m2), t + 5000)
    fork = _signed(env, 4, FIRST_PREVIOUS, t - 100)
    id3, id4 = _store_manifest(env, m3), _store_manifest(env, fork)

    account = env.account(Scope.RESTORE)
    assert account.keyring.version == 2
    assert account.fetch_manifest("web1", id1).backup_id == id1
    assert account.fetch_manifest("web1", id2).backup_id == id2
    for bad in (id3, id4):
        with pytest.raises(RevokedSignerError) as info:
            account.fetch_manifest("web1", bad)
        message = str(info.value)
        assert (
            f"backup {bad} was signed by host key {web1.hex()[:16]} of web1 after it was revoked" in message
        )
        assert message.endswith("refusing it")
        assert "\n" not in message
    assert resolve_snapshot(account, id2).backup_id == id2  # restore by id of a trusted backup works
    with pytest.raises(IntegrityError, match=f"manifest web1/{id3}|manifest web1/{id4}"):
        list_snapshots(account, "web1")  # the listing refuses, naming the forged backup
