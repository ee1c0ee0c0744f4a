"""One live server and account for the ops tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client_support import AccountKeys, ClientEnv, client_env


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, account_keys: AccountKeys) -> Iterator[ClientEnv]:
    with client_env(tmp_path_factory.mktemp("ops"), account_keys) as e:
        yield e
