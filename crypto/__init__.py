"""opsbackup's cryptography: primitives on pyca/cryptography, keys, key files, roles, keyring.

May import ``formats``; never imports ``opsbackup`` (checked by import-linter in CI).
"""
