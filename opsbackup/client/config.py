"""The client's configuration file (TOML), by default ``/etc/opsbackup/config.toml``.

Every client command takes ``--config PATH`` (or ``OPSBACKUP_CONFIG``). Tables, all optional,
each checked strictly (an unknown table or key is a :class:`ConfigError` naming it: a typo must
never silently turn a backup off); relative paths are relative to the file's directory::

    [server]   url, ca_file, credential_file          how to reach the storage server
    [account]  root_key_file, root_fingerprint         the pinned root public key (PEM) and its
                                                       SHA-256 (hex, of the DER), checked at load
    [host]     name, key_file, dedup_file, cache_dir,  what a host backs up with
               state_file (optional)
    [backup]   paths, exclude, one_file_system         what ``opsbackup backup`` backs up
    [[backup.command]]  name, command                   a command whose stdout ``opsbackup run``
                                                       backs up as a file NAME (argv list, no shell)
    [retention] keep_last, keep_hourly, keep_daily,    what ``opsbackup run`` keeps when it may
               keep_weekly, keep_monthly, keep_yearly  forget (needs [keys] dir with deletion.key)
    [keys]     dir                                      where an administrator keeps the key files

Every load failure is one :class:`ConfigError` line (exit 4). The credential file must not be
readable by group or others (:func:`read_credential`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyfile import import_public_pem
from crypto.primitives import ct_equal, public_key_id
from crypto.private_file import read_private_file
from opsbackup.errors import ConfigError, FormatError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "AccountSettings",
    "BackupCommand",
    "BackupSettings",
    "ClientConfig",
    "HostSettings",
    "KeysSettings",
    "RetentionSettings",
    "ServerSettings",
    "default_state_file",
    "load_config",
    "load_root_public_key",
    "parse_fingerprint",
    "read_credential",
    "render_config",
    "root_fingerprint",
]

DEFAULT_CONFIG = Path("/etc/opsbackup/config.toml")
CONFIG_ENV = "OPSBACKUP_CONFIG"
_MAX_CREDENTIAL = 4096
_MAX_PEM = 64 * 1024

#: table -> key -> required (when the table is present)
_KEYS: dict[str, dict[str, bool]] = {
    "server": {"url": True, "ca_file": True, "credential_file": True},
    "account": {"root_key_file": True, "root_fingerprint": True},
    "host": {"name": True, "key_file": True, "dedup_file": True, "cache_dir": True, "state_file": False},
    "backup": {"paths": False, "exclude": False, "one_file_system": False, "command": False},
    "keys": {"dir": True},
    "retention": {
        "keep_last": False,
        "keep_hourly": False,
        "keep_daily": False,
        "keep_weekly": False,
        "keep_monthly": False,
        "keep_yearly": False,
    },
}
_COMMAND_KEYS = ("name", "command")


@dataclass(frozen=True)
class ServerSettings:
    """``[server]``: the server's URL, the pinned CA certificate and the credential file."""

    url: str
    ca_file: Path
    credential_file: Path


@dataclass(frozen=True)
class AccountSettings:
    """``[account]``: the pinned root public key, already checked against its fingerprint."""

    root_key_file: Path
    root_fingerprint: str
    root_public_key: rsa.RSAPublicKey = field(repr=False, compare=False)


@dataclass(frozen=True)
class HostSettings:
    """``[host]``: this host's name, signing key file, dedup secret file, cache and state."""

    name: str
    key_file: Path
    dedup_file: Path
    cache_dir: Path
    state_file: Path | None


@dataclass(frozen=True)
class BackupCommand:
    """``[[backup.command]]``: a command (argv, run without a shell) whose stdout is backed up as NAME."""

    name: str
    command: tuple[str, ...]


@dataclass(frozen=True)
class BackupSettings:
    """``[backup]``: the default paths, exclude patterns, one-file-system, and stream commands."""

    paths: tuple[Path, ...] = ()
    exclude: tuple[str, ...] = ()
    one_file_system: bool = False
    commands: tuple[BackupCommand, ...] = ()


@dataclass(frozen=True)
class RetentionSettings:
    """``[retention]``: how many snapshots each rule keeps (0: the rule is off)."""

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0


@dataclass(frozen=True)
class KeysSettings:
    """``[keys]``: the directory holding root.key, data.key, browse.key and deletion.key."""

    dir: Path


@dataclass(frozen=True)
class ClientConfig:
    """A loaded configuration file; a table that is absent is ``None``."""

    path: Path
    server: ServerSettings | None = None
    account: AccountSettings | None = None
    host: HostSettings | None = None
    backup: BackupSettings = field(default_factory=BackupSettings)
    keys: KeysSettings | None = None
    retention: RetentionSettings | None = None

    def need_server(self) -> ServerSettings:
        if self.server is None:
            raise ConfigError(f"{self.path} has no [server] table (url, ca_file, credential_file)")
        return self.server

    def need_account(self) -> AccountSettings:
        if self.account is None:
            raise ConfigError(f"{self.path} has no [account] table (root_key_file, root_fingerprint)")
        return self.account

    def need_host(self) -> HostSettings:
        if self.host is None:
            raise ConfigError(
                f"{self.path} has no [host] table: this command runs on a host set up by "
                "'opsbackup host init'"
            )
        return self.host


def default_state_file() -> Path:
    """Where an operator's client state lives: ``$XDG_STATE_HOME/opsbackup/state.json``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "opsbackup" / "state.json"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _table(doc: Mapping[str, Any], name: str, where: Path) -> Mapping[str, Any] | None:
    table = doc.get(name)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {name} must be a table ([{name}])")
    known = _KEYS[name]
    unknown = sorted(k for k in table if k not in known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"in [{name}] (known: {', '.join(known)})"
        )
    missing = [k for k, required in known.items() if required and k not in table]
    if missing:
        raise ConfigError(f"{where}: [{name}] needs {', '.join(map(repr, missing))}")
    return table


def _str(table: Mapping[str, Any], name: str, key: str, where: Path) -> str:
    value = table[key]
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ConfigError(f"{where}: [{name}] {key} must be a non-empty string")
    return value


def _path(base: Path, table: Mapping[str, Any], name: str, key: str, where: Path) -> Path:
    return base / _str(table, name, key, where)


def _str_list(table: Mapping[str, Any], name: str, key: str, where: Path) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: [{name}] {key} must be a list of non-empty strings")
    return tuple(value)


def parse_fingerprint(text: str, where: str) -> bytes:
    """A root fingerprint as bytes from ``HEX``, ``sha256:HEX`` or colon-separated hex."""
    cleaned = text.strip().lower().removeprefix("sha256:").replace(":", "")
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ConfigError(
            f"{where}: a root fingerprint is 64 hex digits (the SHA-256 of the root public key)"
        )
    return raw


def root_fingerprint(key: rsa.RSAPublicKey) -> str:
    """The root key's fingerprint: hex SHA-256 of its DER SubjectPublicKeyInfo."""
    return public_key_id(key).hex()


def load_root_public_key(
    path: Path, fingerprint: str | None = None, *, where: str | None = None
) -> rsa.RSAPublicKey:
    """Read the root public key (PEM, RSA-4096); when given, check it against ``fingerprint``."""
    where = where or str(path)
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_PEM + 1)
    except FileNotFoundError:
        raise ConfigError(f"{where}: root public key file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot read root public key file {path}: {exc.strerror or exc}"
        ) from None
    try:
        key = import_public_pem(data[:_MAX_PEM])
    except FormatError as exc:
        raise ConfigError(f"{where}: root public key file {path}: {exc}") from None
    if key.key_size != 4096:
        raise ConfigError(
            f"{where}: root public key file {path} holds an RSA-{key.key_size} key, not RSA-4096"
        )
    if fingerprint is not None:
        expected = parse_fingerprint(fingerprint, where)
        if not ct_equal(public_key_id(key), expected):
            raise ConfigError(
                f"{where}: root public key file {path} has fingerprint {root_fingerprint(key)}, not the "
                f"configured {expected.hex()}: the file was replaced or the fingerprint is wrong"
            )
    return key


def read_credential(path: Path) -> str:
    """The bearer token in ``path``; refuses a file that group or others can access."""
    data = read_private_file(
        path,
        "credential file",
        _MAX_CREDENTIAL,
        missing=ConfigError,
        unreadable=ConfigError,
        too_large=ConfigError,
    )
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if not token or not token.isprintable() or " " in token:
        raise ConfigError(f"credential file {path} does not hold one credential token (one line)")
    return token


def load_config(path: Path) -> ClientConfig:
    """Read and check the configuration at ``path``; one-line :class:`ConfigError` on any problem."""
    path = Path(path).absolute()
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {path} does not exist (give --config PATH, or set up this machine "
            "with 'opsbackup host init')"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file {path} is a directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {_one_line(str(exc))}") from None
    unknown = sorted(k for k in doc if k not in _KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown table{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(_KEYS)})"
        )
    base = path.parent
    return ClientConfig(
        path=path,
        server=_server(doc, base, path),
        account=_account(doc, base, path),
        host=_host(doc, base, path),
        backup=_backup(doc, base, path),
        keys=_keys(doc, base, path),
        retention=_retention(doc, path),
    )


def _server(doc: Mapping[str, Any], base: Path, where: Path) -> ServerSettings | None:
    t = _table(doc, "server", where)
    if t is None:
        return None
    url = _str(t, "server", "url", where)
    if not url.startswith("https://"):
        raise ConfigError(f"{where}: [server] url must start with https:// (got {url[:80]!r})")
    return ServerSettings(
        url=url,
        ca_file=_path(base, t, "server", "ca_file", where),
        credential_file=_path(base, t, "server", "credential_file", where),
    )


def _account(doc: Mapping[str, Any], base: Path, where: Path) -> AccountSettings | None:
    t = _table(doc, "account", where)
    if t is None:
        return None
    key_file = _path(base, t, "account", "root_key_file", where)
    fingerprint = _str(t, "account", "root_fingerprint", where)
    key = load_root_public_key(key_file, fingerprint, where=str(where))
    return AccountSettings(key_file, parse_fingerprint(fingerprint, str(where)).hex(), key)


def _host(doc: Mapping[str, Any], base: Path, where: Path) -> HostSettings | None:
    t = _table(doc, "host", where)
    if t is None:
        return None
    return HostSettings(
        name=_str(t, "host", "name", where),
        key_file=_path(base, t, "host", "key_file", where),
        dedup_file=_path(base, t, "host", "dedup_file", where),
        cache_dir=_path(base, t, "host", "cache_dir", where),
        state_file=_path(base, t, "host", "state_file", where) if "state_file" in t else None,
    )


def _backup(doc: Mapping[str, Any], base: Path, where: Path) -> BackupSettings:
    t = _table(doc, "backup", where)
    if t is None:
        return BackupSettings()
    one_fs = t.get("one_file_system", False)
    if not isinstance(one_fs, bool):
        raise ConfigError(f"{where}: [backup] one_file_system must be true or false")
    return BackupSettings(
        paths=tuple(base / p for p in _str_list(t, "backup", "paths", where)),
        exclude=_str_list(t, "backup", "exclude", where),
        one_file_system=one_fs,
        commands=_commands(t.get("command", []), where),
    )


def _commands(value: Any, where: Path) -> tuple[BackupCommand, ...]:
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise ConfigError(f"{where}: backup.command must be an array of tables ([[backup.command]])")
    commands: list[BackupCommand] = []
    for i, table in enumerate(value, start=1):
        here = f"[[backup.command]] #{i}"
        unknown = sorted(k for k in table if k not in _COMMAND_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                f"in {here} (known: {', '.join(_COMMAND_KEYS)})"
            )
        name, argv = table.get("name"), table.get("command")
        if not isinstance(name, str) or not name or "/" in name or "\x00" in name or name in (".", ".."):
            raise ConfigError(f"{where}: {here} needs name, a file name (no '/')")
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) and a and "\x00" not in a for a in argv)
        ):
            raise ConfigError(
                f"{where}: {here} ({name}) needs command, a list of non-empty strings (argv, no shell)"
            )
        if any(c.name == name for c in commands):
            raise ConfigError(f"{where}: two [[backup.command]] tables are named {name!r}")
        commands.append(BackupCommand(name, tuple(argv)))
    return tuple(commands)


def _retention(doc: Mapping[str, Any], where: Path) -> RetentionSettings | None:
    t = _table(doc, "retention", where)
    if t is None:
        return None
    counts: dict[str, int] = {}
    for key in _KEYS["retention"]:
        value = t.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
            raise ConfigError(f"{where}: [retention] {key} must be a whole number from 0 to 1000000")
        counts[key] = value
    if not any(counts.values()):
        raise ConfigError(f"{where}: [retention] keeps nothing: set at least one keep_* above 0")
    return RetentionSettings(**counts)


def _keys(doc: Mapping[str, Any], base: Path, where: Path) -> KeysSettings | None:
    t = _table(doc, "keys", where)
    return None if t is None else KeysSettings(dir=_path(base, t, "keys", "dir", where))


def _q(value: str | Path) -> str:
    """A TOML basic string."""
    text = str(value)
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise ConfigError(f"cannot write {text!r} into a configuration file (control characters)")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(
    *,
    server: ServerSettings | None = None,
    account: tuple[str | Path, str] | None = None,
    host: HostSettings | None = None,
    backup: BackupSettings | None = None,
    keys_dir: str | Path | None = None,
) -> str:
    """The text of a configuration file (paths written as given: relative ones stay relative)."""
    lines = [
        "# opsbackup client configuration (docs/setup.md). Relative paths are relative to this file.",
        "",
    ]
    if server is not None:
        lines += [
            "[server]",
            f"url = {_q(server.url)}",
            f"ca_file = {_q(server.ca_file)}",
            f"credential_file = {_q(server.credential_file)}",
            "",
        ]
    if account is not None:
        lines += [
            "[account]",
            f"root_key_file = {_q(account[0])}",
            f"root_fingerprint = {_q(account[1])}",
            "",
        ]
    if host is not None:
        lines += [
            "[host]",
            f"name = {_q(host.name)}",
            f"key_file = {_q(host.key_file)}",
            f"dedup_file = {_q(host.dedup_file)}",
            f"cache_dir = {_q(host.cache_dir)}",
        ]
        if host.state_file is not None:
            lines.append(f"state_file = {_q(host.state_file)}")
        lines.append("")
    if backup is not None:
        lines += [
            "[backup]",
            f"paths = [{', '.join(_q(p) for p in backup.paths)}]",
            f"exclude = [{', '.join(_q(p) for p in backup.exclude)}]",
            f"one_file_system = {'true' if backup.one_file_system else 'false'}",
            "",
        ]
    if keys_dir is not None:
        lines += ["[keys]", f"dir = {_q(keys_dir)}", ""]
    return "\n".join(lines)
