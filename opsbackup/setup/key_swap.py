"""The key-file half of every resumable rotation: write the new key beside the old, then swap.

Step 1, :func:`pending_key`: the new key is generated and written to ``<role>.key.next``
(atomic, mode 0600, the same passphrase and Argon2id cost as the file it replaces), or read back
from there after a kill. Last step, :func:`swap_in`: the old file is kept as
``<role>.key.replaced-<id16>`` (a hard link, so ``<role>.key`` exists at every moment) and the new
one is renamed over ``<role>.key``. Each is safe to repeat after a kill at any point.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from crypto.atomic_file import fsync_dir
from crypto.keyfile import DEFAULT_PARAMS, KdfCost, PrivateKey, generate_key, load_key, save_key
from formats import keyfile as keyfile_format
from formats.roles import Role
from opsbackup.errors import LocalIOError
from opsbackup.setup.admin import KEY_FILE_NAMES

__all__ = ["Step", "cost_of", "next_key_path", "pending_key", "replaced_key_path", "swap_in"]

#: Called with a step's name after it is done (tests stop a rotation there, as a kill would).
Step = Callable[[str], None]


def next_key_path(directory: Path, role: Role) -> Path:
    """Where step 1 writes the new key: ``<role>.key.next``."""
    return directory / f"{KEY_FILE_NAMES[role]}.next"


def replaced_key_path(directory: Path, role: Role, old_id: bytes) -> Path:
    """Where the last step keeps the replaced key: ``<role>.key.replaced-<first 16 hex of its id>``."""
    return directory / f"{KEY_FILE_NAMES[role]}.replaced-{old_id.hex()[:16]}"


def cost_of(path: Path) -> KdfCost:
    """The Argon2id cost ``path`` was sealed with (the default for an unsealed file)."""
    try:
        params = keyfile_format.decode(path.read_bytes(), f"key file {path}").params
    except OSError as exc:
        raise LocalIOError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    if params is None:
        return DEFAULT_PARAMS
    return KdfCost(memory_kib=params.memory_kib, iterations=params.iterations, lanes=params.lanes)


def pending_key(
    directory: Path, role: Role, passphrase: str, *, old: Path, root: PrivateKey | None
) -> PrivateKey:
    """Step 1: the new key, generated now or (after a kill) read back from ``<role>.key.next``.

    ``root`` is the account root the new file names; ``None`` for a new root key, which names
    itself. The file is sealed with ``passphrase`` at the cost of ``old``, the file it replaces.
    """
    path = next_key_path(directory, role)
    if not path.exists():
        fresh = generate_key(role, label=role.label)
        names = fresh if root is None else root
        save_key(path, fresh, passphrase, root_public_key=names.private_key.public_key(), cost=cost_of(old))
    return load_key(path, passphrase, expect_role=role)


def swap_in(directory: Path, role: Role, old_id: bytes, step: Step) -> Path:
    """The last step; ``<role>.key`` always exists. Safe to repeat after a kill between its moves."""
    current, pending = directory / KEY_FILE_NAMES[role], next_key_path(directory, role)
    replaced = replaced_key_path(directory, role, old_id)
    try:
        if pending.exists():
            if not replaced.exists():
                try:
                    os.link(current, replaced)
                except OSError:  # no hard links here: an exact copy (mode 0600) does as well
                    shutil.copy2(current, replaced)
                fsync_dir(directory)
            step("swap-middle")
            os.replace(pending, current)
            fsync_dir(directory)
    except OSError as exc:
        raise LocalIOError(f"cannot rename the key files in {directory}: {exc.strerror or exc}") from None
    return replaced
