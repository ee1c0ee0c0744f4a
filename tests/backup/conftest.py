"""Fixtures of the backup engine tests: the shared account keys (session-scoped, slow to make) and
a live server per test (test_backup.py overrides it with small tuning)."""

from tests.client_support import account_keys, env

__all__ = ["account_keys", "env"]
