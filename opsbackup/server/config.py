"""The storage server's configuration file, ``server.toml`` in the server's data directory.

``opsbackup server init`` writes it (:func:`render_server_toml`); ``opsbackup server run``
reads it (:func:`load_server_config`). Relative paths are relative to the file's directory, so
a data directory can be moved as a whole. The tables ``[server]``, ``[tls]`` and ``[storage]``
are checked strictly (an unknown key is an error, to catch typos); other tables are left to the
modules that own them and are available as :attr:`ServerConfig.raw`.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbackup.errors import ConfigError
from opsbackup.storage.base import ObjectStore
from opsbackup.storage.filesystem import FilesystemStore

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_MAX_OBJECT_SIZE",
    "DEFAULT_PORT",
    "ServerConfig",
    "load_server_config",
    "render_server_toml",
]

CONFIG_NAME = "server.toml"
DEFAULT_PORT = 8443
DEFAULT_MAX_OBJECT_SIZE = 256 << 20
_BACKENDS = ("filesystem",)
_KEYS: dict[str, dict[str, bool]] = {  # table -> key -> required
    "server": {"host": True, "port": True, "max_object_size": False},
    "tls": {"cert": True, "key": True, "ca_cert": True, "client_ca": False},
    "storage": {"backend": True, "root": False},
}


@dataclass(frozen=True)
class ServerConfig:
    """The parsed, checked ``server.toml``; every path is absolute."""

    path: Path
    data_dir: Path
    host: str
    port: int
    cert: Path
    key: Path
    ca_cert: Path
    client_ca: Path | None
    storage_backend: str
    storage_root: Path
    max_object_size: int = DEFAULT_MAX_OBJECT_SIZE
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def open_store(self) -> ObjectStore:
        """The configured storage backend."""
        return FilesystemStore(self.storage_root)


def _table(doc: Mapping[str, Any], name: str, where: Path) -> Mapping[str, Any]:
    table = doc.get(name)
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: missing table [{name}]")
    known = _KEYS[name]
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} in [{name}] (known: {', '.join(known)})")
    for key, required in known.items():
        if required and key not in table:
            raise ConfigError(f"{where}: [{name}] needs {key!r}")
    return table


def _str(table: Mapping[str, Any], name: str, key: str, where: Path) -> str:
    value = table[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: [{name}] {key} must be a non-empty string")
    return value


def _int(table: Mapping[str, Any], name: str, key: str, where: Path, low: int, high: int) -> int:
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}: [{name}] {key} must be an integer from {low} to {high}")
    return value


def _file(base: Path, table: Mapping[str, Any], name: str, key: str, where: Path) -> Path:
    path = base / _str(table, name, key, where)
    if not path.is_file():
        raise ConfigError(f"{where}: [{name}] {key}: {path} does not exist")
    return path


def load_server_config(path: Path) -> ServerConfig:
    """Read and check ``path``; ConfigError with one clear line if it is missing or invalid."""
    path = Path(path).absolute()
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"server configuration {path} does not exist (run 'opsbackup server init')"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    base = path.parent
    server = _table(doc, "server", path)
    tls = _table(doc, "tls", path)
    storage = _table(doc, "storage", path)
    backend = _str(storage, "storage", "backend", path)
    if backend not in _BACKENDS:
        raise ConfigError(f"{path}: [storage] backend {backend!r} is not one of: {', '.join(_BACKENDS)}")
    if "root" not in storage:
        raise ConfigError(f"{path}: [storage] the filesystem backend needs 'root'")
    max_size = DEFAULT_MAX_OBJECT_SIZE
    if "max_object_size" in server:
        max_size = _int(server, "server", "max_object_size", path, 1, 1 << 40)
    return ServerConfig(
        path=path,
        data_dir=base,
        host=_str(server, "server", "host", path),
        port=_int(server, "server", "port", path, 1, 65535),
        cert=_file(base, tls, "tls", "cert", path),
        key=_file(base, tls, "tls", "key", path),
        ca_cert=_file(base, tls, "tls", "ca_cert", path),
        client_ca=_file(base, tls, "tls", "client_ca", path) if "client_ca" in tls else None,
        storage_backend=backend,
        storage_root=base / _str(storage, "storage", "root", path),
        max_object_size=max_size,
        raw=doc,
    )


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def render_server_toml(
    *,
    host: str,
    port: int,
    cert: str,
    key: str,
    ca_cert: str,
    storage_root: str,
    client_ca: str | None = None,
    max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
) -> str:
    """The text of a ``server.toml`` (paths as given: relative ones are relative to the file)."""
    client = f"client_ca = {_q(client_ca)}" if client_ca else f"# client_ca = {_q(ca_cert)}"
    return f"""\
# opsbackup storage server configuration, written by `opsbackup server init`.
# Relative paths are relative to this file's directory.

[server]
host = {_q(host)}
port = {port}
# The largest object (pack, manifest) a client may upload, in bytes.
max_object_size = {max_object_size}

[tls]
# The server's certificate and key (renew with `opsbackup server renew-cert`).
cert = {_q(cert)}
key = {_q(key)}
# The private CA every client pins.
ca_cert = {_q(ca_cert)}
# Require client certificates issued by this CA (mutual TLS):
{client}

[storage]
backend = "filesystem"
root = {_q(storage_root)}
"""
