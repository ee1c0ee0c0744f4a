"""Shared fixtures. RSA keys are slow to make, so each size is made once per test session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.private import generate_rsa_key
from tests.client_support import account_keys

__all__ = ["account_keys", "load_vectors"]

VECTORS = Path(__file__).parent / "vectors"


def load_vectors(name: str) -> Any:
    """The golden vectors in ``tests/vectors/<name>.json``."""
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def rsa3072() -> rsa.RSAPrivateKey:
    return generate_rsa_key(3072)


@pytest.fixture(scope="session")
def rsa3072_other() -> rsa.RSAPrivateKey:
    return generate_rsa_key(3072)


@pytest.fixture(scope="session")
def rsa4096() -> rsa.RSAPrivateKey:
    return generate_rsa_key(4096)
