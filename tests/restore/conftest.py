"""Fixtures of the restore tests: the session's account keys, and a live server per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client_support import AccountKeys, ClientEnv, account_keys, client_env

__all__ = ["account_keys", "env"]


@pytest.fixture
def env(tmp_path: Path, account_keys: AccountKeys) -> Iterator[ClientEnv]:
    with client_env(tmp_path / "env", account_keys) as e:
        yield e
