"""Fixtures of the key tests: the session's account keys, and a live server per test."""

from tests.client_support import account_keys, env

__all__ = ["account_keys", "env"]
