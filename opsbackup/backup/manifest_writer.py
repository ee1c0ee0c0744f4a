"""A run's two signed uploads: its key envelope, first, and its manifest, last.

:func:`check_labels` runs the manifest encoder's own checks on the host name and tags before
anything is uploaded, so a bad tag is a usage error and not a failure at the very end.
:func:`put_envelope` stores the backup's key envelope before any pack goes up (the server refuses
a manifest whose envelope, or a source's, is missing, and an interrupted run's packs stay
reusable); if the keyring changed since it was fetched, the server refuses the envelope and the
run wraps its keys again to the new keyring.
"""

from __future__ import annotations

from collections.abc import Iterable

from crypto.manifest_check import manifest_hash
from crypto.primitives import public_key_id
from crypto.private import sign_object
from formats import manifest as fmt
from formats.manifest import FIRST_PREVIOUS, Manifest, Statistics, StoredObject
from opsbackup.backup.keys import BackupKeys
from opsbackup.client.account import Account, open_account
from opsbackup.client.identity import HostIdentity
from opsbackup.errors import KeyringChangedError, UsageError

__all__ = ["check_labels", "put_envelope", "put_manifest"]

#: How many times a run re-wraps its keys to a keyring that changed under it.
_REWRAPS = 3


def check_labels(host: str, tags: Iterable[str]) -> tuple[str, ...]:
    """The tags sorted and unique; UsageError if they or the host name are not valid in a manifest."""
    ordered = tuple(sorted(set(tags), key=lambda t: t.encode("utf-8")))
    names = (bytes(32), b"\x01" * 32)
    probe = Manifest(
        backup_id=bytes(16),
        account_id=bytes(16),
        host_key_id=bytes(32),
        time=0,
        previous_manifest_hash=FIRST_PREVIOUS,
        keyring_version=0,
        data_key_commitment=bytes(32),
        metadata_key_commitment=bytes(32),
        tree_root=bytes(32),
        tree_root_pack=names[0],
        chunk_index=names[1],
        host_name=host,
        sources=(),
        objects=tuple(StoredObject(n, 1) for n in names),
        tags=ordered,
    )
    try:
        fmt.encode(probe)
    except ValueError as exc:
        raise UsageError(f"cannot back up as host {host!r} with tags {list(ordered)}: {exc}") from None
    return ordered


def put_envelope(account: Account, host: HostIdentity, keys: BackupKeys) -> Account:
    """Store the backup's key envelope; returns the account whose keyring it was wrapped to.

    A keyring changed during the run (a key rotation) makes the server refuse the envelope with
    :class:`KeyringChangedError`; the keyring is then fetched and verified again and the keys
    re-wrapped to it, up to a few times.
    """
    for attempt in range(_REWRAPS + 1):
        try:
            account.repo.put_envelope(keys.backup_id, keys.envelope(account.keyring, host.signing_key))
            return account
        except KeyringChangedError:
            if attempt == _REWRAPS:
                raise
            account = open_account(account.repo, account.root_public_key, account.state)
    raise AssertionError("unreachable")


def put_manifest(
    account: Account,
    host: HostIdentity,
    keys: BackupKeys,
    *,
    time: int,
    previous: bytes | None,
    tree_root: bytes,
    tree_root_pack: bytes,
    chunk_index: bytes,
    objects: Iterable[StoredObject],
    sources: Iterable[bytes],
    statistics: Statistics,
    tags: tuple[str, ...],
) -> tuple[bytes, bytes]:
    """Sign and store the manifest; record it as this host's head; returns its hash and previous hash.

    ``account`` is the one :func:`put_envelope` returned: the manifest names the keyring version
    the envelope was wrapped to.
    """
    body = Manifest(
        backup_id=keys.backup_id,
        account_id=account.keyring.account_id,
        host_key_id=public_key_id(host.signing_key.public_key()),
        time=time,
        previous_manifest_hash=previous if previous is not None else FIRST_PREVIOUS,
        keyring_version=account.keyring.version,
        data_key_commitment=keys.data.commitment,
        metadata_key_commitment=keys.metadata.commitment,
        tree_root=tree_root,
        tree_root_pack=tree_root_pack,
        chunk_index=chunk_index,
        host_name=host.name,
        sources=tuple(sorted(sources)),
        objects=tuple(sorted(objects, key=lambda o: o.name)),
        statistics=statistics,
        tags=tags,
    )
    signed = sign_object(host.signing_key, fmt.encode(body))
    account.repo.put_manifest(host.name, keys.backup_id.hex(), signed)
    digest = manifest_hash(signed)
    account.state.record_head(account.root_id, host.name, digest)
    return digest, body.previous_manifest_hash
