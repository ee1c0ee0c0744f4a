"""The verified account view: keyring against the pinned root, rollback refused, state kept."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto.keyring import keyring_digest
from crypto.primitives import public_key_id
from opsbackup.client.account import open_account
from opsbackup.client.repository import Repository
from opsbackup.client.state import ClientState, KeyringMark
from opsbackup.errors import ConfigError, IntegrityError, RollbackError, WrongKeyError
from opsbackup.server.accounts import Scope
from tests.client_support import AccountKeys, ClientEnv, client_env


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, account_keys: AccountKeys) -> Iterator[ClientEnv]:
    with client_env(tmp_path_factory.mktemp("account"), account_keys) as e:
        yield e


def test_open_account_verifies_the_keyring_and_records_its_version(env: ClientEnv, tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    account = env.account(Scope.RESTORE, state_file)
    assert account.keyring.account_id == env.account_id
    assert account.keyring.version == 1
    root_id = public_key_id(env.keys.root.public_key())
    assert ClientState(state_file).keyring_mark(root_id) == KeyringMark(1, keyring_digest(env.keyring))
    assert state_file.stat().st_mode & 0o777 == 0o600


def test_a_keyring_older_than_one_seen_is_a_rollback(env: ClientEnv, tmp_path: Path) -> None:
    state = ClientState(tmp_path / "state.json")
    state.record_keyring(public_key_id(env.keys.root.public_key()), KeyringMark(2, bytes(32)))
    with pytest.raises(RollbackError, match="older than version 2"):
        open_account(Repository(env.transport()), env.keys.root.public_key(), state)


def test_the_same_version_with_another_body_is_equivocation(env: ClientEnv, tmp_path: Path) -> None:
    state = ClientState(tmp_path / "state.json")
    state.record_keyring(public_key_id(env.keys.root.public_key()), KeyringMark(1, bytes(32)))
    with pytest.raises(IntegrityError, match="equivocation"):
        open_account(Repository(env.transport()), env.keys.root.public_key(), state)


def test_a_keyring_signed_by_another_root_is_refused(env: ClientEnv, account_keys: AccountKeys) -> None:
    other_root = account_keys.data  # any RSA-4096 key that is not the account's root
    with pytest.raises(WrongKeyError, match="not trusted"):
        open_account(Repository(env.transport()), other_root.public_key(), ClientState(None))


def test_a_corrupt_state_file_is_an_error_not_a_silent_reset(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="guards against rollback"):
        ClientState(path)
    path.write_text(json.dumps({"version": 99, "accounts": {}}))
    with pytest.raises(ConfigError, match="not an opsbackup state file"):
        ClientState(path)


def test_a_state_file_writable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    ClientState(path).record_head(b"r" * 32, "web1", b"h" * 32)
    assert ClientState(path).head(b"r" * 32, "web1") == b"h" * 32
    os.chmod(path, 0o622)  # noqa: S103 - the mistake under test
    with pytest.raises(ConfigError, match="writable by others"):
        ClientState(path)
