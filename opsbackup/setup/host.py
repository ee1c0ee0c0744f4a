"""Enroll a host: its signing key, its copies of what it needs to back up, and its config.toml.

:func:`init_host` runs on the host. It makes the host signing key there (RSA-3072, KDF none,
0600: the host signs unattended), and copies in the server's CA certificate, the host's
credential, the account's root public key and the dedup secret, after checking each (the CA
loads as the one pinned anchor, the root key matches its fingerprint when one is given, the
dedup secret names that root). None of these can decrypt a backup: the host's directory holds
no data, browse or root private key. The directory is made 0700, secrets 0600.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from crypto.atomic_file import write_atomic
from crypto.keyfile import export_public_pem, generate_key, load_key, save_key
from crypto.primitives import ct_equal, public_key_der, public_key_id
from formats.roles import Role
from opsbackup.client.config import (
    BackupSettings,
    HostSettings,
    ServerSettings,
    load_root_public_key,
    read_credential,
    render_config,
    root_fingerprint,
)
from opsbackup.client.transport import pinned_ssl_context
from opsbackup.errors import ConfigError, LocalIOError, WrongKeyError
from opsbackup.setup.publish import check_host_name

__all__ = [
    "CA_FILE",
    "CONFIG_FILE",
    "CREDENTIAL_FILE",
    "DEDUP_FILE",
    "HOST_KEY",
    "HOST_PUB",
    "ROOT_PUB",
    "HostFiles",
    "init_host",
]

CONFIG_FILE = "config.toml"
HOST_KEY = "host.key"
HOST_PUB = "host.pub.pem"
CA_FILE = "ca.pem"
CREDENTIAL_FILE = "credential"
ROOT_PUB = "root.pub.pem"
DEDUP_FILE = "dedup.key"
CACHE_DIR = "cache"
STATE_FILE = "state.json"
#: With the packaged layout, /etc/opsbackup is read-only to the backup (systemd ProtectSystem=strict):
#: the cache and the state (with the run lock beside it) go where the unit may write.
SYSTEM_DIR = Path("/etc/opsbackup")
SYSTEM_CACHE_DIR = "/var/cache/opsbackup"
SYSTEM_STATE_FILE = "/var/lib/opsbackup/state.json"


@dataclass(frozen=True)
class HostFiles:
    """What :func:`init_host` wrote, and the fingerprints to compare out of band."""

    dir: Path
    config: Path
    host_key: Path
    host_pub: Path
    host_fingerprint: str  # hex SHA-256 of the host public key's DER: add-host prints the same
    root_fingerprint: str


def init_host(
    directory: Path,
    *,
    name: str,
    server_url: str,
    ca_file: Path,
    credential_file: Path,
    root_key_file: Path,
    dedup_file: Path,
    root_fingerprint_hex: str | None = None,
    backup: BackupSettings | None = None,
    cache_dir: str | None = None,
    state_file: str | None = None,
) -> HostFiles:
    """Set up ``directory`` (created 0700) for host ``name``; refuse if it already holds a host.

    The cache and state default to ``cache`` and ``state.json`` inside ``directory``, except for
    the system directory /etc/opsbackup, where they are /var/cache/opsbackup and
    /var/lib/opsbackup/state.json (the packaged systemd unit may write only there).
    """
    system = Path(directory).absolute() == SYSTEM_DIR
    cache_dir = cache_dir or (SYSTEM_CACHE_DIR if system else CACHE_DIR)
    state_file = state_file or (SYSTEM_STATE_FILE if system else STATE_FILE)
    check_host_name(name)
    if not server_url.startswith("https://"):
        raise ConfigError(f"server URL must start with https:// (got {server_url[:80]!r})")
    pinned_ssl_context(ca_file)  # exactly one CA certificate, loadable
    ca_pem = ca_file.read_bytes()
    token = read_credential(credential_file)
    root = load_root_public_key(root_key_file, root_fingerprint_hex)
    dedup = load_key(dedup_file, None, expect_role=Role.DEDUP)
    if not ct_equal(public_key_der(dedup.root_public_key), public_key_der(root)):
        raise WrongKeyError(
            f"dedup secret {dedup_file} belongs to the account with root "
            f"{root_fingerprint(dedup.root_public_key)[:16]}, not to root {root_fingerprint(root)[:16]} "
            f"of {root_key_file}"
        )
    directory = Path(directory).absolute()
    names = [CONFIG_FILE, HOST_KEY, HOST_PUB, CA_FILE, CREDENTIAL_FILE, ROOT_PUB, DEDUP_FILE]
    existing = [directory / n for n in names if (directory / n).exists() or (directory / n).is_symlink()]
    if existing:
        raise LocalIOError(f"{existing[0]} already exists: this directory already holds a host; refusing")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    written: list[Path] = []

    def put(file: str, data: bytes, mode: int) -> None:
        path = directory / file
        try:
            write_atomic(path, data, mode, overwrite=False)
        except FileExistsError:
            raise LocalIOError(f"{path} already exists: refusing to overwrite it") from None
        written.append(path)

    try:
        host_key = generate_key(Role.HOST, label=name)
        save_key(directory / HOST_KEY, host_key, None, root_public_key=root)
        written.append(directory / HOST_KEY)
        host_public = host_key.private_key.public_key()
        put(HOST_PUB, export_public_pem(host_public), 0o644)
        put(CA_FILE, ca_pem, 0o644)
        put(CREDENTIAL_FILE, token.encode("ascii") + b"\n", 0o600)
        put(ROOT_PUB, export_public_pem(root), 0o644)
        save_key(directory / DEDUP_FILE, dedup, None, root_public_key=root)
        written.append(directory / DEDUP_FILE)
        (directory / cache_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        (directory / state_file).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = render_config(
            server=ServerSettings(server_url, Path(CA_FILE), Path(CREDENTIAL_FILE)),
            account=(ROOT_PUB, root_fingerprint(root)),
            host=HostSettings(name, Path(HOST_KEY), Path(DEDUP_FILE), Path(cache_dir), Path(state_file)),
            backup=backup or BackupSettings(),
        )
        put(CONFIG_FILE, text.encode("utf-8"), 0o600)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return HostFiles(
        dir=directory,
        config=directory / CONFIG_FILE,
        host_key=directory / HOST_KEY,
        host_pub=directory / HOST_PUB,
        host_fingerprint=public_key_id(host_public).hex(),
        root_fingerprint=root_fingerprint(root),
    )
