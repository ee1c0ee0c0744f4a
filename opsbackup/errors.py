"""The application's view of the one error hierarchy (defined in :mod:`formats.errors`).

Import errors from here in application code. :func:`exit_code_for` is the one place where an
exception becomes a process exit code; ``docs/exit-codes.md`` documents every code.
"""

from __future__ import annotations

from formats.errors import (
    EXIT_OK,
    EXIT_WARNINGS,
    AlreadyRunningError,
    ConfigError,
    FormatError,
    IntegrityError,
    KeyPermissionError,
    KeyUnusableError,
    LocalIOError,
    NonceLimitError,
    NotFoundError,
    OpsbackupError,
    RollbackError,
    ServerRefusedError,
    TransportError,
    UsageError,
    WrongKeyError,
    WrongPassphraseError,
    WrongRoleError,
)

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOTHING_TO_DO",
    "EXIT_OK",
    "EXIT_WARNINGS",
    "AlreadyRunningError",
    "ConfigError",
    "FormatError",
    "IntegrityError",
    "KeyUnusableError",
    "KeyringChangedError",
    "KeyPermissionError",
    "LocalIOError",
    "NonceLimitError",
    "NotFoundError",
    "ObjectsMissingError",
    "OpsbackupError",
    "RollbackError",
    "ServerRefusedError",
    "TransportError",
    "UsageError",
    "WrongKeyError",
    "WrongPassphraseError",
    "WrongRoleError",
    "exit_code_for",
]

#: A bug in opsbackup: the traceback is printed, because no user input should ever cause it.
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
#: ``opsbackup run`` found nothing configured to do (no paths, no commands): not a failure, not a backup.
EXIT_NOTHING_TO_DO = 6


class KeyringChangedError(ServerRefusedError):
    """The server refused a key envelope wrapped to another keyring version or other recipients.

    The keyring changed (a key rotation) after the client read it: fetch and verify the keyring
    again, wrap the keys to it and upload again. Exit code 21 when it reaches the user.
    """


class ObjectsMissingError(NotFoundError):
    """The server refused a manifest because objects it names are not stored (409, docs/api.md).

    A prune swept a pack the backup reuses while it ran, or is deleting it right now; nothing was
    published. ``missing`` is the count the server reported; ``deleting`` names the objects a
    prune's delete request in progress is removing (they may still exist for a moment). The backup
    engine turns it into its "vanished ... run the backup again" error after dropping the vanished
    and the doomed packs from its cache. Exit code 22 when it reaches the user.
    """

    def __init__(self, message: str, missing: int, deleting: tuple[bytes, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing
        self.deleting = deleting


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, OpsbackupError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, OSError):
        return LocalIOError.exit_code
    return EXIT_INTERNAL
