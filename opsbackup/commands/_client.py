"""What the client commands share: the config file, the server, the pinned root, key files, output.

A client command finds its configuration in ``--config PATH``, else ``OPSBACKUP_CONFIG``, else
``/etc/opsbackup/config.toml``. Commands that read backups also accept ``--server URL --ca FILE
--credential-file FILE`` instead (or on top: flags win over ``[server]``). Without an
``[account]`` table the pinned root public key is the one the key file names (read from the
authenticated part of the key file once its passphrase opened it), so an operator on a fresh
machine needs only the URL, the CA certificate, a read credential and the key file.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyfile import PrivateKey, load_key, load_public
from crypto.primitives import ct_equal, public_key_der, public_key_id
from formats import keyfile as keyfile_format
from formats.roles import Role
from opsbackup.client.account import Account, open_account
from opsbackup.client.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    ClientConfig,
    ServerSettings,
    default_state_file,
    load_config,
    read_credential,
    root_fingerprint,
)
from opsbackup.client.passphrase import get_passphrase
from opsbackup.client.repository import Repository
from opsbackup.client.state import ClientState
from opsbackup.client.transport import Transport
from opsbackup.errors import (
    EXIT_WARNINGS,
    ConfigError,
    FormatError,
    LocalIOError,
    NotFoundError,
    UsageError,
    WrongKeyError,
    WrongRoleError,
)

__all__ = [
    "ClientSetup",
    "CompletedWithWarnings",
    "account_for",
    "check_key_root",
    "config_option",
    "connect",
    "emit_json",
    "file_mode",
    "human_size",
    "key_option",
    "load_reading_key",
    "open_client",
    "pinned_root",
    "server_options",
    "show_path",
    "snapshot_path",
    "utc_time",
    "warn_and_exit",
]

F = TypeVar("F", bound=Callable[..., Any])


class CompletedWithWarnings(click.ClickException):
    """The command finished, but with warnings (already printed): exit code 3 through ``cli.main``.

    A click exception rather than ``ctx.exit(3)``, whose code ``cli.main`` (click's non-standalone
    mode returns it instead of raising) would lose.
    """

    exit_code = EXIT_WARNINGS

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"opsbackup: {self.message}", err=True)


def warn_and_exit(warnings: Sequence[str]) -> None:
    """Print each warning on stderr; then, if there was any, end with exit code 3."""
    for warning in warnings:
        click.echo(f"opsbackup: warning: {warning}", err=True)
    if warnings:
        n = len(warnings)
        raise CompletedWithWarnings(f"completed with {n} warning{'s' if n != 1 else ''} (listed above)")


def config_option(func: F) -> F:
    """Add ``--config PATH`` (env ``OPSBACKUP_CONFIG``; default /etc/opsbackup/config.toml)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar=CONFIG_ENV,
        show_envvar=True,
        help=f"The client configuration file [default: {DEFAULT_CONFIG}].",
    )(func)


def server_options(func: F) -> F:
    """Add ``--server``, ``--ca`` and ``--credential-file`` (instead of, or over, ``[server]``)."""
    func = click.option(
        "--credential-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="File holding the server credential (mode 0600) [default: from the config].",
    )(func)
    func = click.option(
        "--ca",
        "ca_file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="The server's private CA certificate, the only one trusted [default: from the config].",
    )(func)
    func = click.option(
        "--server",
        "server_url",
        metavar="URL",
        help="The server, https://HOST:PORT [default: from the config].",
    )(func)
    return func


def key_option(default: str) -> Callable[[F], F]:
    """Add ``--key FILE``; ``default`` says which file of ``[keys] dir`` is used without it."""
    return click.option(
        "--key",
        "key_file",
        type=click.Path(path_type=Path, dir_okay=False),
        help=f"The key file to read with [default: {default} in the config's [keys] dir].",
    )


@dataclass(frozen=True)
class ClientSetup:
    """The configuration a client command runs with (``config`` is None on a fresh machine)."""

    config: ClientConfig | None
    server: ServerSettings | None

    def need_config(self) -> ClientConfig:
        if self.config is None:
            raise ConfigError(f"configuration file {DEFAULT_CONFIG} does not exist (give --config PATH)")
        return self.config

    def need_server(self) -> ServerSettings:
        if self.server is None:
            where = f"{self.config.path} has no [server] table" if self.config else "no configuration file"
            raise ConfigError(f"{where}: give --server URL --ca FILE --credential-file FILE")
        return self.server

    def state(self) -> ClientState:
        host = self.config.host if self.config else None
        if host is not None and host.state_file is not None:
            return ClientState(host.state_file)
        return ClientState(default_state_file())


def open_client(
    config_path: Path | None,
    server_url: str | None = None,
    ca_file: Path | None = None,
    credential_file: Path | None = None,
    *,
    config_required: bool = False,
) -> ClientSetup:
    """Load the configuration (optional when server flags are given) and merge the server flags."""
    flags = (server_url, ca_file, credential_file)
    config: ClientConfig | None = None
    if config_path is not None or config_required or DEFAULT_CONFIG.exists():
        config = load_config(config_path or DEFAULT_CONFIG)
    elif not any(flags):
        raise ConfigError(
            f"configuration file {DEFAULT_CONFIG} does not exist: give --config PATH, or "
            "--server URL --ca FILE --credential-file FILE"
        )
    base = config.server if config else None
    url = server_url or (base.url if base else None)
    ca = ca_file or (base.ca_file if base else None)
    cred = credential_file or (base.credential_file if base else None)
    if url is None and ca is None and cred is None:
        return ClientSetup(config, None)
    if url is None or ca is None or cred is None:
        missing = [n for n, v in (("--server", url), ("--ca", ca), ("--credential-file", cred)) if v is None]
        raise UsageError(f"also give {' '.join(missing)} (or a --config with a [server] table)")
    return ClientSetup(config, ServerSettings(url, ca, cred))


def connect(server: ServerSettings, *, workers: int = 8) -> Repository:
    """A repository over a pinned-CA transport with the credential in ``server.credential_file``."""
    token = read_credential(server.credential_file)
    return Repository(Transport(server.url, server.ca_file, token, workers=workers))


def pinned_root(setup: ClientSetup, key: PrivateKey | None, *, handover: bool = False) -> rsa.RSAPublicKey:
    """The root public key to verify the keyring with: the config's, else the key file's.

    A key file must name the configured root; with ``handover``, a key file naming another root
    is let through here and checked by :func:`check_key_root` once the keyring is verified (after
    a root rotation the admin's key files name the new root while configs may pin the old one).
    """
    account = setup.config.account if setup.config else None
    if account is None:
        if key is None:
            raise ConfigError(
                "no pinned root key: give --config PATH with an [account] table, or a key file with --key"
            )
        return key.root_public_key
    root = account.root_public_key
    if key is not None and not handover and not _same_key(key.root_public_key, root):
        raise _other_account(key, root)
    return root


def _same_key(a: rsa.RSAPublicKey, b: rsa.RSAPublicKey) -> bool:
    return ct_equal(public_key_der(a), public_key_der(b))


def _other_account(key: PrivateKey, root: rsa.RSAPublicKey) -> WrongKeyError:
    return WrongKeyError(
        f"the key file belongs to the account with root {root_fingerprint(key.root_public_key)[:16]}, "
        f"not to the configured root {root_fingerprint(root)[:16]}"
    )


def check_key_root(account: Account, key: PrivateKey) -> None:
    """The key file must name the pinned root or a root the verified keyring lists (the roots the
    handover chain passed through, and the active one): otherwise it is another account's key."""
    named = public_key_id(key.root_public_key)
    roots = {e.key_id for e in account.keyring.entries if e.role is Role.ROOT}
    if named != account.root_id and named not in roots:
        raise _other_account(key, account.root_public_key)


@contextlib.contextmanager
def account_for(setup: ClientSetup, key: PrivateKey | None = None, *, workers: int = 8) -> Iterator[Account]:
    """The verified account (keyring checked against the pinned root); closes the connection after.

    A ``key`` naming a root other than the pinned one is accepted when the verified keyring lists
    that root (a root handover since the pin was set), refused otherwise.
    """
    root = pinned_root(setup, key, handover=True)
    repo = connect(setup.need_server(), workers=workers)
    try:
        account = open_account(repo, root, setup.state())
        if key is not None:
            check_key_root(account, key)
        yield account
    finally:
        repo.close()


def load_reading_key(
    setup: ClientSetup,
    key_file: Path | None,
    passphrase_file: Path | None,
    *,
    roles: tuple[Role, ...],
    what: str,
) -> PrivateKey:
    """Open the key file that ``what`` needs (a key of one of ``roles``), asking for its passphrase.

    The default file is ``<[keys] dir>/<role>.key`` for the first role whose file exists. A key
    of any other role (a host key, the dedup secret) is refused before a passphrase is asked.
    """
    wanted = " or ".join(f"a {r.label} key" for r in roles)
    if key_file is None:
        keys = setup.config.keys if setup.config else None
        if keys is None:
            raise UsageError(f"{what} needs {wanted}: give --key FILE (or a [keys] dir in the config)")
        candidates = [keys.dir / f"{r.label}.key" for r in roles]
        key_file = next((p for p in candidates if p.exists()), candidates[0])
    _expect_key_file(key_file, f"{what} needs {wanted}")
    try:
        role = load_public(key_file).role
    except WrongRoleError:
        raise WrongRoleError(
            f"key file {key_file} holds the dedup secret, which cannot read backups; {what} needs {wanted}"
        ) from None
    if role not in roles:
        raise WrongRoleError(
            f"key file {key_file} holds a {role.label} key, which cannot read backups; {what} needs {wanted}"
        )
    passphrase = get_passphrase(passphrase_file, prompt=f"Passphrase for {key_file}")
    return load_key(key_file, passphrase, expect_role=role)


def _expect_key_file(path: Path, need: str) -> None:
    """FormatError naming ``need`` unless ``path`` starts like a key file (a CA cert, a config...)."""
    try:
        with path.open("rb") as f:
            head = f.read(len(keyfile_format.MAGIC))
    except FileNotFoundError:
        raise NotFoundError(f"key file {path} does not exist") from None
    except IsADirectoryError:
        raise LocalIOError(f"key file {path} is a directory") from None
    if head != keyfile_format.MAGIC:
        raise FormatError(f"{path} is not an opsbackup key file; {need}")


def snapshot_path(text: str) -> bytes:
    """A path inside a snapshot as the tree stores it: relative, no leading or trailing '/'."""
    raw = os.fsencode(text)
    parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        raise UsageError(f"a path inside a snapshot cannot contain '..': {text!r}")
    return b"/".join(parts)


def show_path(path: bytes) -> str:
    """``path`` for a terminal: UTF-8 where it is, other bytes and control characters escaped."""
    text = path.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def utc_time(seconds: float) -> str:
    """``2024-05-01T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def human_size(n: float) -> str:
    """``1.5 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def emit_json(value: object) -> None:
    """Print a result's JSON (a ``to_json()`` string or a JSON-able value) on stdout."""
    click.echo(value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True))


def file_mode(mode: int) -> str:
    """``-rw-r--r--``."""
    return stat.filemode(mode)
