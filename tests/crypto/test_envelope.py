"""crypto/envelope.py and crypto/envelope_check.py: wrap to the keyring, check recipients, open safely."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.envelope import (
    check_recipients,
    envelope_body,
    open_envelope,
    readers_trusted_signers,
    storers_trusted_signers,
    wrap_backup_keys,
)
from crypto.keyring import Keyring, new_keyring_body, next_keyring_body, open_keyring
from crypto.primitives import public_key_id, random_bytes
from crypto.private import generate_rsa_key, sign_object
from crypto.wrap import select_record, unwrap_key
from formats import signed
from formats.errors import FormatError, IntegrityError, WrongKeyError
from formats.roles import Role
from tests.client_support import AccountKeys

ACCOUNT = bytes(range(16))


@pytest.fixture(scope="module")
def keyring(account_keys: AccountKeys) -> Keyring:
    return _open(account_keys, _v1(account_keys))


def _v1(keys: AccountKeys) -> bytes:
    add = [
        (Role.DATA, keys.data.public_key(), "data"),
        (Role.BROWSE, keys.browse.public_key(), "browse"),
        (Role.DELETION, keys.deletion.public_key(), "deletion"),
        (Role.HOST, keys.hosts["web1"].public_key(), "web1"),
    ]
    body = new_keyring_body(keys.root.public_key(), account_id=ACCOUNT, add=add, now=1_700_000_000)
    return sign_object(keys.root, body)


def _open(keys: AccountKeys, signed_keyring: bytes) -> Keyring:
    return open_keyring(signed_keyring, root_public_key=keys.root.public_key())


def _sealed(
    keyring: Keyring, signer: rsa.RSAPrivateKey, backup_id: bytes, data_key: bytes, meta_key: bytes
) -> bytes:
    records = wrap_backup_keys(backup_id, data_key=data_key, metadata_key=meta_key, keyring=keyring)
    body = envelope_body(
        account_id=keyring.account_id,
        backup_id=backup_id,
        generation=0,
        keyring_version=keyring.version,
        records=records,
    )
    return sign_object(signer, body)


def test_wrapped_keys_open_with_the_right_keys_only(account_keys: AccountKeys, keyring: Keyring) -> None:
    host = account_keys.hosts["web1"]
    bid, data_key, meta_key = random_bytes(16), random_bytes(32), random_bytes(32)
    data = _sealed(keyring, host, bid, data_key, meta_key)
    trusted = readers_trusted_signers(keyring, public_key_id(host.public_key()))
    env, signer = open_envelope(data, trusted=trusted, account_id=ACCOUNT, backup_id=bid)
    assert signer == public_key_id(host.public_key())
    check_recipients(env, keyring)
    records = env.wrapped_keys()
    assert len(records) == 3  # data key to data; metadata key to browse and data
    data_id = public_key_id(account_keys.data.public_key())
    browse_id = public_key_id(account_keys.browse.public_key())
    assert (
        unwrap_key(
            select_record(records, data_id, role=Role.DATA), account_keys.data, role=Role.DATA, backup_id=bid
        )
        == data_key
    )
    for key_id, private in ((data_id, account_keys.data), (browse_id, account_keys.browse)):
        rec = select_record(records, key_id, role=Role.BROWSE)
        assert unwrap_key(rec, private, role=Role.BROWSE, backup_id=bid) == meta_key
    with pytest.raises(WrongKeyError, match="not a data recipient"):
        select_record(records, browse_id, role=Role.DATA)  # a browse key never reads file contents


def test_open_refuses_other_signers_forgeries_and_misaddressed_envelopes(
    account_keys: AccountKeys, keyring: Keyring, rsa3072_other: rsa.RSAPrivateKey
) -> None:
    host = account_keys.hosts["web1"]
    bid = random_bytes(16)
    data = _sealed(keyring, host, bid, random_bytes(32), random_bytes(32))
    trusted = readers_trusted_signers(keyring, public_key_id(host.public_key()))
    with pytest.raises(WrongKeyError, match="not trusted"):
        open_envelope(
            _sealed(keyring, rsa3072_other, bid, random_bytes(32), random_bytes(32)),
            trusted=trusted,
            account_id=ACCOUNT,
            backup_id=bid,
        )
    obj = signed.decode(data)
    forged = signed.encode(
        signed.SignedObject(obj.signer, obj.body[:-1] + bytes([obj.body[-1] ^ 1]), obj.signature)
    )
    with pytest.raises(IntegrityError, match="does not verify"):
        open_envelope(forged, trusted=trusted, account_id=ACCOUNT, backup_id=bid)
    with pytest.raises(IntegrityError, match="another backup or account"):
        open_envelope(data, trusted=trusted, account_id=ACCOUNT, backup_id=random_bytes(16))
    with pytest.raises(IntegrityError, match="another backup or account"):
        open_envelope(data, trusted=trusted, account_id=bytes(16), backup_id=bid)
    with pytest.raises(FormatError, match="OBKE"):
        open_envelope(
            sign_object(host, b"OBMF" + bytes(60)), trusted=trusted, account_id=ACCOUNT, backup_id=bid
        )


def test_recipients_must_be_exactly_the_keyrings(account_keys: AccountKeys, keyring: Keyring) -> None:
    host = account_keys.hosts["web1"]
    bid = random_bytes(16)
    data = _sealed(keyring, host, bid, random_bytes(32), random_bytes(32))
    env, _ = open_envelope(data, trusted=storers_trusted_signers(keyring), account_id=ACCOUNT, backup_id=bid)
    escrow = generate_rsa_key(4096)
    v2 = _open(
        account_keys,
        sign_object(
            account_keys.root,
            next_keyring_body(
                keyring, add=[(Role.DATA, escrow.public_key(), "escrow")], now=int(time.time())
            ),
        ),
    )
    with pytest.raises(
        WrongKeyError, match="keyring version 1, but the current keyring is version 2; re-wrap"
    ):
        check_recipients(env, v2)
    # The same records claiming version 2: the escrow key is missing from both roles.
    relabelled = envelope_body(
        account_id=ACCOUNT, backup_id=bid, generation=1, keyring_version=2, records=env.records
    )
    env2, _ = open_envelope(
        sign_object(account_keys.deletion, relabelled),
        trusted=storers_trusted_signers(v2),
        account_id=ACCOUNT,
        backup_id=bid,
    )
    with pytest.raises(WrongKeyError, match="data record to exactly the 2 recipients of keyring version 2"):
        check_recipients(env2, v2)
    rewrapped, _ = open_envelope(
        _sealed(v2, host, bid, random_bytes(32), random_bytes(32)),
        trusted=storers_trusted_signers(v2),
        account_id=ACCOUNT,
        backup_id=bid,
    )
    check_recipients(rewrapped, v2)
    assert len(rewrapped.records) == 2 + 3  # data key to 2 data keys; metadata key to browse + 2 data


def test_who_may_sign(account_keys: AccountKeys, keyring: Keyring) -> None:
    host_id = public_key_id(account_keys.hosts["web1"].public_key())
    deletion_id = public_key_id(account_keys.deletion.public_key())
    assert set(storers_trusted_signers(keyring)) == {host_id, deletion_id}  # never root, data, browse
    assert set(readers_trusted_signers(keyring, host_id)) == {host_id, deletion_id}
    assert set(readers_trusted_signers(keyring, random_bytes(32))) == {deletion_id}  # an unknown host: none
    # An earlier source's host is not known: any host key of the keyring, and the deletion keys.
    every_host = {e.key_id for e in keyring.entries if e.role is Role.HOST}
    assert set(readers_trusted_signers(keyring, None)) == every_host | {deletion_id}
    v2 = _open(
        account_keys,
        sign_object(
            account_keys.root, next_keyring_body(keyring, revoke=[deletion_id, host_id], now=int(time.time()))
        ),
    )
    assert storers_trusted_signers(v2) == {}  # revoked keys store nothing new
    assert set(readers_trusted_signers(v2, host_id)) == {host_id, deletion_id}  # and old envelopes still open
