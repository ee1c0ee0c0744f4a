"""The backup engine: ``run_backup(account, host, request)`` makes one backup of the request's paths.

See :mod:`opsbackup.backup.engine` for the order of a run and docs/design.md ("The objects of a
backup") for what it leaves on the server.
"""

from opsbackup.backup.engine import run_backup
from opsbackup.backup.model import BackupRequest, BackupResult

__all__ = ["BackupRequest", "BackupResult", "run_backup"]
