"""The one exception hierarchy of opsbackup.

Every error a user can cause is an :class:`OpsbackupError` subclass that carries a one-line message
and the process exit code it maps to. The CLI turns any ``OpsbackupError`` into that line on stderr
and that exit code; nothing else maps exit codes. The hierarchy lives in ``formats`` because
``formats`` is the bottom layer: ``crypto`` and ``opsbackup`` may import it, it imports nothing of
the project. Exit codes are documented in ``docs/exit-codes.md``; change both together.
"""

from __future__ import annotations

__all__ = [
    "EXIT_OK",
    "EXIT_WARNINGS",
    "AlreadyRunningError",
    "ConfigError",
    "FormatError",
    "IntegrityError",
    "KeyUnusableError",
    "KeyPermissionError",
    "LocalIOError",
    "NonceLimitError",
    "NotFoundError",
    "OpsbackupError",
    "RollbackError",
    "ServerRefusedError",
    "TransportError",
    "UsageError",
    "WrongKeyError",
    "WrongPassphraseError",
    "WrongRoleError",
]

EXIT_OK = 0
#: The command completed, but something (an unreadable file, say) was skipped and reported.
EXIT_WARNINGS = 3


class OpsbackupError(Exception):
    """Root of every error opsbackup reports to a user. ``exit_code`` is the process exit code."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(OpsbackupError):
    """The command line itself is wrong (unknown flag, missing argument, conflicting options)."""

    exit_code = 2


class ConfigError(OpsbackupError):
    """A configuration file is missing, unreadable or invalid."""

    exit_code = 4


class AlreadyRunningError(OpsbackupError):
    """Another run holds the lock."""

    exit_code = 5


class IntegrityError(OpsbackupError):
    """Authentication failed: a signature, a GCM tag, a key commitment, a hash or a chunk id.

    Every authentication failure becomes this one class, so that no caller can tell (or leak)
    which check failed beyond the message, and so that a caller cannot forget one of them.
    """

    exit_code = 10


class FormatError(OpsbackupError):
    """Bytes are not a valid encoding: wrong magic, unsupported version, bad length, trailing data."""

    exit_code = 11


class KeyUnusableError(OpsbackupError):
    """A key cannot be used: wrong passphrase, wrong role, unsafe file permissions, unknown key."""

    exit_code = 12


class WrongPassphraseError(KeyUnusableError):
    """The passphrase does not open the key file."""


class WrongRoleError(KeyUnusableError):
    """A key of one role was given where another role is needed."""


class WrongKeyError(KeyUnusableError):
    """The key is valid but is not one the object was made for (not a recipient, unknown signer)."""


class KeyPermissionError(KeyUnusableError):
    """A private key file is readable by group or others."""


class NonceLimitError(OpsbackupError):
    """A key reached its hard limit of encryptions; a fresh key must be used."""

    exit_code = 12


class RollbackError(OpsbackupError):
    """An object older than one already seen was offered (keyring version, manifest chain)."""

    exit_code = 13


class TransportError(OpsbackupError):
    """The server could not be reached, or its certificate is not issued by the pinned CA."""

    exit_code = 20


class ServerRefusedError(OpsbackupError):
    """The server refused the request (bad credential, not allowed, bad request)."""

    exit_code = 21


class NotFoundError(OpsbackupError):
    """A snapshot, object, path or file that was named does not exist."""

    exit_code = 22


class LocalIOError(OpsbackupError):
    """Reading or writing a local file failed (permission denied, disk full)."""

    exit_code = 30
