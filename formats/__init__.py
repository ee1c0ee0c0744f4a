"""Pure encode/decode of every opsbackup byte format: magic and version first, strict, no I/O.

This package imports nothing else of the project (checked by import-linter in CI). Each module
holds one format, specified byte by byte in ``docs/spec/``.
"""
