"""The storage server's configuration file, ``server.toml`` in the server's data directory.

``opsbackup server init`` writes it (:func:`render_server_toml`); ``opsbackup server run``
reads it (:func:`load_server_config`). Relative paths are relative to the file's directory, so
a data directory can be moved as a whole. The tables ``[server]``, ``[tls]`` and ``[storage]``
are checked strictly (an unknown key is an error, to catch typos); other tables are left to the
modules that own them and are available as :attr:`ServerConfig.raw`.

``[storage] backend`` is ``"filesystem"`` (``root``: a directory) or ``"s3"`` (``bucket``, and
optionally ``endpoint``, ``prefix``, ``region``, ``profile``, ``part_size``; credentials come from
boto3's usual chain, never from this file). docs/server.md and docs/scaling.md describe both.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbackup.errors import ConfigError, FormatError
from opsbackup.storage.base import ObjectStore, check_key
from opsbackup.storage.filesystem import FilesystemStore

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_MAX_OBJECT_SIZE",
    "DEFAULT_PORT",
    "S3Settings",
    "ServerConfig",
    "load_server_config",
    "render_server_toml",
]

CONFIG_NAME = "server.toml"
DEFAULT_PORT = 8443
DEFAULT_MAX_OBJECT_SIZE = 256 << 20
_BACKENDS = ("filesystem", "s3")
_S3_KEYS = ("bucket", "endpoint", "prefix", "region", "profile", "part_size")
_KEYS: dict[str, dict[str, bool]] = {  # table -> key -> required
    "server": {"host": True, "port": True, "max_object_size": False},
    "tls": {"cert": True, "key": True, "ca_cert": True, "client_ca": False},
    "storage": {"backend": True, "root": False, **dict.fromkeys(_S3_KEYS, False)},
}
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class S3Settings:
    """``[storage]`` of the s3 backend. Credentials are not here: boto3 finds them."""

    bucket: str
    endpoint: str | None = None
    prefix: str = ""
    region: str | None = None
    profile: str | None = None
    part_size: int | None = None

    def open(self) -> ObjectStore:
        from opsbackup.storage.s3 import DEFAULT_PART_SIZE, S3Store

        store = S3Store(
            self.bucket,
            prefix=self.prefix,
            endpoint=self.endpoint,
            region=self.region,
            profile=self.profile,
            part_size=self.part_size or DEFAULT_PART_SIZE,
        )
        store.check_bucket()
        return store


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
    filesystem_root: Path | None
    max_object_size: int = DEFAULT_MAX_OBJECT_SIZE
    s3: S3Settings | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def storage_root(self) -> Path:
        """The filesystem backend's directory (ConfigError for another backend)."""
        if self.filesystem_root is None:
            raise ConfigError(f"{self.path}: the {self.storage_backend} backend has no storage root")
        return self.filesystem_root

    def open_store(self) -> ObjectStore:
        """The configured storage backend (for s3, after checking that the bucket is reachable)."""
        if self.s3 is not None:
            return self.s3.open()
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
    root: Path | None = None
    s3: S3Settings | None = None
    if backend == "filesystem":
        if "root" not in storage:
            raise ConfigError(f"{path}: [storage] the filesystem backend needs 'root'")
        extra = [k for k in _S3_KEYS if k in storage]
        if extra:
            raise ConfigError(f"{path}: [storage] {extra[0]!r} is for the s3 backend, not filesystem")
        root = base / _str(storage, "storage", "root", path)
    else:
        s3 = _s3_settings(storage, path)
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
        filesystem_root=root,
        max_object_size=max_size,
        s3=s3,
        raw=doc,
    )


def _s3_settings(storage: Mapping[str, Any], path: Path) -> S3Settings:
    from opsbackup.storage.s3 import MIN_PART_SIZE

    if "root" in storage:
        raise ConfigError(f"{path}: [storage] the s3 backend takes 'bucket', not 'root'")
    if "bucket" not in storage:
        raise ConfigError(f"{path}: [storage] the s3 backend needs 'bucket'")
    bucket = _str(storage, "storage", "bucket", path)
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(f"{path}: [storage] bucket {bucket[:70]!r} is not a valid S3 bucket name")
    opt = {
        k: _str(storage, "storage", k, path)
        for k in ("endpoint", "prefix", "region", "profile")
        if k in storage
    }
    endpoint = opt.get("endpoint")
    if endpoint is not None and not re.fullmatch(r"https?://[^\s/]+/?", endpoint):
        raise ConfigError(f"{path}: [storage] endpoint must be an http:// or https:// URL with no path")
    prefix = opt.get("prefix", "")
    if prefix:
        prefix = prefix if prefix.endswith("/") else prefix + "/"
        try:
            check_key(prefix[:-1])
        except FormatError:
            raise ConfigError(
                f"{path}: [storage] prefix {prefix[:70]!r}: segments of a-z, 0-9, '.', '_', '-' joined by '/'"
            ) from None
    part_size = None
    if "part_size" in storage:
        part_size = _int(storage, "storage", "part_size", path, MIN_PART_SIZE, 5 << 30)
    return S3Settings(
        bucket=bucket,
        endpoint=endpoint,
        prefix=prefix,
        region=opt.get("region"),
        profile=opt.get("profile"),
        part_size=part_size,
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
    storage_root: str = "storage",
    client_ca: str | None = None,
    max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
    s3: S3Settings | None = None,
) -> str:
    """The text of a ``server.toml`` (paths as given: relative ones are relative to the file).

    With ``s3`` the ``[storage]`` table names that bucket and ``storage_root`` is not used.
    """
    client = f"client_ca = {_q(client_ca)}" if client_ca else f"# client_ca = {_q(ca_cert)}"
    storage = f"""\
[storage]
backend = "filesystem"
root = {_q(storage_root)}
# For several instances over one S3-compatible bucket (docs/scaling.md), replace the two lines
# above with: backend = "s3", bucket = "...", and optionally endpoint, prefix, region, profile.
"""
    if s3 is not None:
        lines = ['backend = "s3"', f"bucket = {_q(s3.bucket)}"]
        for name in ("endpoint", "prefix", "region", "profile"):
            value = getattr(s3, name)
            lines.append(f"{name} = {_q(value)}" if value else f"# {name} = ...")
        if s3.part_size:
            lines.append(f"part_size = {s3.part_size}")
        storage = "[storage]\n# Credentials come from the environment or ~/.aws (boto3), never from here.\n"
        storage += "\n".join(lines) + "\n"
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

{storage}"""
