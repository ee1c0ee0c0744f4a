"""``--dedup-key FILE`` for restore and dump: also check every chunk's keyed id (HMAC).

Without the dedup secret a reader checks that each opened chunk is the one its chunk ref names
(object id bound by AES-GCM, and length); with it, it also recomputes the chunk id from the
content, which catches a chunk a compromised host of the account sealed under a false id
(docs/threat-model.md, "Dedup poisoning"). The default is ``dedup.key`` in the config's ``[keys]``
dir when that file exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from crypto.dedup import ChunkIdKey
from crypto.keyfile import load_key
from formats.roles import Role
from opsbackup.commands._client import ClientSetup

__all__ = ["chunk_id_key", "dedup_key_option"]

F = TypeVar("F", bound=Callable[..., object])


def dedup_key_option(func: F) -> F:
    return click.option(
        "--dedup-key",
        "dedup_file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help="The account's dedup secret: also check every chunk's keyed id "
        "[default: dedup.key in the config's [keys] dir, if it exists].",
    )(func)


def chunk_id_key(setup: ClientSetup, dedup_file: Path | None) -> ChunkIdKey | None:
    """The chunk-id key from ``dedup_file`` (or the [keys] dir's dedup.key), or None without one."""
    if dedup_file is None and setup.config is not None and setup.config.keys is not None:
        default = setup.config.keys.dir / "dedup.key"
        dedup_file = default if default.exists() else None
    if dedup_file is None:
        return None
    return ChunkIdKey(load_key(dedup_file, None, expect_role=Role.DEDUP).secret)
