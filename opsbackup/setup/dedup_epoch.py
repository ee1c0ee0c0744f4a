"""``keys rotate --role dedup``: a new dedup secret, which starts a new dedup epoch for the account.

The dedup secret keys chunk ids and the chunker; it decrypts nothing. After a host compromise the
attacker knows it, so the account starts a new epoch: a new ``dedup.key`` in the administrator's
key directory (the old one is kept as ``dedup.key.replaced-<epoch tag>``), to be installed on every
remaining host. Hosts with the new secret open a new cache, skip the old epoch's chunk indexes
quietly and store their data again; old backups stay restorable (docs/keys.md, "dedup epoch").
"""

from __future__ import annotations

import os
from pathlib import Path

from crypto.dedup import epoch_tag
from crypto.keyfile import generate_key, load_key, save_key
from formats.roles import Role
from opsbackup.errors import LocalIOError
from opsbackup.setup.admin import DEDUP_KEY, load_admin_key

__all__ = ["start_epoch"]


def start_epoch(directory: Path, passphrase: str) -> tuple[str, str, Path]:
    """Replace ``dedup.key`` in ``directory``; returns (old epoch tag, new epoch tag, new file)."""
    directory = Path(directory)
    current = directory / DEDUP_KEY
    root = load_admin_key(directory, Role.ROOT, passphrase).private_key.public_key()
    pending = directory / f"{DEDUP_KEY}.next"
    if not current.exists() and pending.exists():  # killed between the two renames: finish
        done = load_key(pending, None, expect_role=Role.DEDUP).secret
        os.replace(pending, current)
        return "", epoch_tag(done), current
    old = load_key(current, None, expect_role=Role.DEDUP).secret
    old_tag = epoch_tag(old)
    fresh = generate_key(Role.DEDUP, label=Role.DEDUP.label)
    replaced = directory / f"{DEDUP_KEY}.replaced-{old_tag}"
    save_key(pending, fresh, None, root_public_key=root, overwrite=True)
    try:
        os.replace(current, replaced)
        os.replace(pending, current)
    except OSError as exc:
        raise LocalIOError(f"cannot replace {current}: {exc.strerror or exc}") from None
    return old_tag, epoch_tag(fresh.secret), current
