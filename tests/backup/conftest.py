"""Fixtures of the backup engine tests: the shared account keys (session-scoped, slow to make)."""

from tests.client_support import account_keys

__all__ = ["account_keys"]
