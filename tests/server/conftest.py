"""Fixtures shared by the server tests. Each module defines its own ``server`` (a live TLS server)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.server._support import AccountEnv, LiveServer, make_account


@pytest.fixture(scope="module")
def env(
    server: LiveServer,
    rsa4096: rsa.RSAPrivateKey,
    rsa3072: rsa.RSAPrivateKey,
    rsa3072_other: rsa.RSAPrivateKey,
) -> AccountEnv:
    """An account on the module's server: root rsa4096, host rsa3072_other ("web1"), deletion rsa3072."""
    return make_account(server.store, root=rsa4096, host=rsa3072_other, deletion=rsa3072)
