"""Re-wrap every backup's keys to the current keyring: the one pass behind every recipient change.

After the keyring changes a data or browse recipient (a rotation, an escrow key added or removed),
:func:`rewrap_all` walks every key envelope on the server and, for each one not wrapped to exactly
the current recipients (``crypto.envelope.check_recipients``):

1. unwraps the per-backup keys whose recipients changed with a private key the administrator
   holds (the old key, or any other recipient key given);
2. checks each unwrapped key against the commitment the backup's signed manifest names (when
   the backup still has a manifest; a forgotten backup kept only as another backup's source has
   none, and its key is checked when that backup is restored);
3. wraps it to the current recipients, keeping the records of a role whose recipients did not
   change byte for byte (so a browse rotation never needs the data key);
4. **verifies** the new records: each one addressed to a private key held here must unwrap to
   exactly the same key;
5. signs the envelope one generation up with the deletion key and stores it. The server then
   drops the older generations: the old wrapped keys are gone only once the new ones are stored.

The pass is idempotent: an envelope already matching the keyring is skipped, so a pass killed at
any point finishes when run again. Nothing else on the server changes: no pack is re-uploaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.aead import SealingKey
from crypto.envelope import (
    check_recipients,
    envelope_body,
    expected_recipients,
    open_envelope,
    readers_trusted_signers,
    wrap_role,
)
from crypto.primitives import ct_equal, public_key_id
from crypto.private import sign_object
from crypto.wrap import unwrap_key
from formats import wrapped_key
from formats.envelope import Envelope
from formats.roles import Role
from formats.wrapped_key import WrappedKey
from opsbackup.client.account import Account
from opsbackup.errors import IntegrityError, WrongKeyError

__all__ = ["RewrapReport", "rewrap_all", "rewrap_envelope"]

#: Envelopes re-wrapped at once (RSA private operations release the GIL).
_WORKERS = 4


@dataclass
class RewrapReport:
    """What a pass did: envelopes seen, re-wrapped, and already current."""

    checked: int = 0
    rewrapped: int = 0
    current: int = 0


def _commitments(account: Account) -> dict[bytes, tuple[bytes, bytes]]:
    """Backup id -> (data, metadata) key commitment, from every verified manifest on the server."""
    out: dict[bytes, tuple[bytes, bytes]] = {}
    for host, backup_id in account.repo.list_manifests():
        m = account.fetch_manifest(host, backup_id).manifest
        out[m.backup_id] = (m.data_key_commitment, m.metadata_key_commitment)
    return out


def _unwrap_with_any(
    records: Sequence[WrappedKey], role: Role, backup_id: bytes, keys: Sequence[rsa.RSAPrivateKey]
) -> bytes:
    held = {public_key_id(k.public_key()): k for k in keys}
    for rec in records:
        key = held.get(rec.recipient_id)
        if rec.role is role and rec.kind == wrapped_key.RecipientKind.RSA_OAEP_SHA256 and key is not None:
            return unwrap_key(rec, key, role=role, backup_id=backup_id)
    raise WrongKeyError(
        f"none of the keys given is a {role.label} recipient of backup {backup_id.hex()}: give the "
        "key that is being replaced (or another current recipient's key file)"
    )


def _verify_new(records: Sequence[bytes], raw: dict[Role, bytes], keys: Sequence[rsa.RSAPrivateKey]) -> None:
    """Every new record addressed to a key held here unwraps to exactly the key it must hold."""
    held = {public_key_id(k.public_key()): k for k in keys}
    for data in records:
        rec = wrapped_key.decode(data)
        key = held.get(rec.recipient_id)
        if key is None:
            continue
        got = unwrap_key(rec, key, role=rec.role, backup_id=rec.backup_id)
        if not ct_equal(got, raw[rec.role]):
            raise IntegrityError(f"a re-wrapped key of backup {rec.backup_id.hex()} does not verify")


def rewrap_envelope(
    account: Account,
    env: Envelope,
    *,
    keys: Sequence[rsa.RSAPrivateKey],
    deletion_key: rsa.RSAPrivateKey,
    commitments: tuple[bytes, bytes] | None,
) -> bytes:
    """The signed next generation of ``env``, wrapped to ``account``'s current keyring and verified."""
    keyring = account.keyring
    old = env.wrapped_keys()
    records: list[bytes] = []
    raw: dict[Role, bytes] = {}
    for i, role in enumerate((Role.DATA, Role.BROWSE)):
        mine = [wrapped_key.encode(r) for r in old if r.role is role]
        have = sorted(r.recipient_id for r in old if r.role is role)
        if have == sorted(expected_recipients(keyring, role)):
            records += mine  # this role's recipients did not change: keep its records as they are
            continue
        raw[role] = _unwrap_with_any(old, role, env.backup_id, keys)
        if commitments is not None:
            try:
                SealingKey(raw[role]).verify_commitment(commitments[i])
            except IntegrityError:
                raise IntegrityError(
                    f"the {role.label} key in backup {env.backup_id.hex()}'s envelope does not match the "
                    "commitment its manifest signs; not re-wrapping it"
                ) from None
        records += wrap_role(keyring, role, env.backup_id, raw[role])
    _verify_new(records, raw, keys)
    body = envelope_body(
        account_id=keyring.account_id,
        backup_id=env.backup_id,
        generation=env.generation + 1,
        keyring_version=keyring.version,
        records=records,
    )
    return sign_object(deletion_key, body)


def rewrap_all(
    account: Account,
    *,
    keys: Sequence[rsa.RSAPrivateKey],
    deletion_key: rsa.RSAPrivateKey,
    progress: Callable[[RewrapReport], None] | None = None,
) -> RewrapReport:
    """Make every key envelope on the server match ``account``'s current keyring (see module doc)."""
    keyring = account.keyring
    commitments = _commitments(account)
    trusted = readers_trusted_signers(keyring, None)
    report = RewrapReport()

    def one(backup_id: bytes) -> bool:
        env, _ = open_envelope(
            account.repo.get_envelope(backup_id),
            trusted=trusted,
            account_id=keyring.account_id,
            backup_id=backup_id,
        )
        try:
            check_recipients(env, keyring)
            return False
        except WrongKeyError:
            pass
        signed = rewrap_envelope(
            account, env, keys=keys, deletion_key=deletion_key, commitments=commitments.get(backup_id)
        )
        account.repo.put_envelope(backup_id, signed)
        return True

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        for changed in pool.map(one, account.repo.list_envelopes()):
            report.checked += 1
            report.rewrapped += changed
            report.current += not changed
            if progress is not None:
                progress(report)
    return report
