"""Unattended operation: the run lock, retention (forget), prune, and ``opsbackup run`` itself."""

__all__: list[str] = []
