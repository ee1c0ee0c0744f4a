"""The administrator's key files: one directory holding every key of an account but the hosts'.

``root.key`` (RSA-4096), ``data.key`` (RSA-4096), ``browse.key`` (RSA-4096) and
``deletion.key`` (RSA-3072) are protected by one passphrase; ``dedup.key`` (the 32-byte dedup
secret) is not, because every host needs it unattended; ``root.pub.pem`` is the root public key
that the server account and every client pin. Every key file names the root public key. Files
are mode 0600 (``root.pub.pem`` 0644) and an existing key file is never replaced.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from crypto.atomic_file import write_atomic
from crypto.keyfile import (
    DEFAULT_PARAMS,
    KdfCost,
    PrivateKey,
    export_public_pem,
    generate_key,
    load_key,
    save_key,
)
from formats.roles import Role
from opsbackup.client.config import root_fingerprint
from opsbackup.errors import LocalIOError

__all__ = [
    "BROWSE_KEY",
    "DATA_KEY",
    "DEDUP_KEY",
    "DELETION_KEY",
    "KEY_FILE_NAMES",
    "ROOT_KEY",
    "ROOT_PUB",
    "AdminKeyFiles",
    "check_free",
    "init_admin_keys",
    "load_admin_key",
]

ROOT_KEY = "root.key"
DATA_KEY = "data.key"
BROWSE_KEY = "browse.key"
DELETION_KEY = "deletion.key"
DEDUP_KEY = "dedup.key"
ROOT_PUB = "root.pub.pem"

#: The file of each role in an administrator's key directory.
KEY_FILE_NAMES: dict[Role, str] = {
    Role.ROOT: ROOT_KEY,
    Role.DATA: DATA_KEY,
    Role.BROWSE: BROWSE_KEY,
    Role.DELETION: DELETION_KEY,
    Role.DEDUP: DEDUP_KEY,
}


@dataclass(frozen=True)
class AdminKeyFiles:
    """The paths of an administrator's key directory, and the root fingerprint (hex SHA-256)."""

    dir: Path
    fingerprint: str = ""

    def key(self, role: Role) -> Path:
        return self.dir / KEY_FILE_NAMES[role]

    @property
    def root_pub(self) -> Path:
        return self.dir / ROOT_PUB

    def all_files(self) -> list[Path]:
        return [self.key(role) for role in KEY_FILE_NAMES] + [self.root_pub]


def check_free(directory: Path) -> AdminKeyFiles:
    """The key files of ``directory``; :class:`LocalIOError` if any of them already exists."""
    files = AdminKeyFiles(Path(directory))
    existing = [p for p in files.all_files() if p.exists() or p.is_symlink()]
    if existing:
        raise LocalIOError(
            f"{existing[0]} already exists: refusing to overwrite a key file; use another --dir"
        )
    return files


def init_admin_keys(directory: Path, passphrase: str, *, cost: KdfCost = DEFAULT_PARAMS) -> AdminKeyFiles:
    """Make every admin key file in ``directory`` (created 0700); refuse if any already exists.

    The RSA keys are generated in parallel (OpenSSL releases the GIL). If a step fails, the
    files this call wrote are removed again.
    """
    files = check_free(directory)
    files.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    roles = [Role.ROOT, Role.DATA, Role.BROWSE, Role.DELETION, Role.DEDUP]
    with ThreadPoolExecutor(max_workers=len(roles)) as pool:
        keys = dict(zip(roles, pool.map(lambda r: generate_key(r, label=r.label), roles), strict=True))
    root = keys[Role.ROOT].private_key.public_key()
    written: list[Path] = []
    try:
        for role in roles:
            path = files.key(role)
            secret = None if role is Role.DEDUP else passphrase
            save_key(path, keys[role], secret, root_public_key=root, cost=cost)
            written.append(path)
        try:
            write_atomic(files.root_pub, export_public_pem(root), 0o644, overwrite=False)
        except FileExistsError:
            raise LocalIOError(f"{files.root_pub} already exists: refusing to overwrite it") from None
        written.append(files.root_pub)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return AdminKeyFiles(files.dir, root_fingerprint(root))


def load_admin_key(directory: Path, role: Role, passphrase: str | None) -> PrivateKey:
    """Open the key file of ``role`` in an administrator's key directory."""
    return load_key(Path(directory) / KEY_FILE_NAMES[role], passphrase, expect_role=role)
