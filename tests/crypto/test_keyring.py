"""crypto.keyring: verify-then-decode, rollback and equivocation, entry checks, next versions."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.keyring import Keyring, keyring_digest, new_keyring_body, next_keyring_body, open_keyring
from crypto.primitives import public_key_id
from crypto.private import sign_object
from formats import errors
from formats import keyring as fmt
from formats.errors import (
    IntegrityError,
    NotFoundError,
    OpsbackupError,
    RollbackError,
    UsageError,
    WrongKeyError,
    WrongRoleError,
)
from formats.roles import Role
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("keyring")


def _pem(name: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(VECTORS["keys"][name].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


ROOT, DATA, HOST, ROOT2 = _pem("root"), _pem("data"), _pem("host"), _pem("root2")
ROOT_PUB = ROOT.public_key()
S1 = bytes.fromhex(VECTORS["valid"][0]["hex"])


def _valid(version: int) -> bytes:
    return bytes.fromhex(next(v["hex"] for v in VECTORS["valid"] if v["version"] == version))


@pytest.mark.parametrize("vec", VECTORS["valid"], ids=lambda v: v["name"])
def test_known_answer_open(vec: dict[str, Any]) -> None:
    raw = bytes.fromhex(vec["hex"])
    signer = _pem(vec["signer"]).public_key()
    ring = open_keyring(raw, root_public_key=signer, min_version=vec["version"])
    assert ring.version == vec["version"]
    assert ring.account_id.hex() == vec["account_id"]
    assert ring.root_id.hex() == vec["root_id"]
    assert keyring_digest(raw).hex() == vec["digest"]
    assert open_keyring(raw, root_public_key=signer, min_version=vec["version"],
                        seen_digest=bytes.fromhex(vec["digest"])) == ring  # fmt: skip
    heads = {e.key_id.hex(): e.trusted_head.hex() for e in ring.entries if any(e.trusted_head)}
    assert heads == vec.get("trusted_heads", {})
    assert {k.hex(): v.hex() for k, v in ring.openpgp_keys_for(Role.DATA).items()} == vec.get("openpgp", {})


def test_root_handover_is_followed_one_version_at_a_time() -> None:
    v4, v5 = _valid(4), _valid(5)
    ring4 = open_keyring(v4, root_public_key=ROOT_PUB)  # signed by the old root, names the new one
    assert ring4.root_id == public_key_id(ROOT2.public_key())
    assert ring4.entry(public_key_id(ROOT_PUB)).active is False
    assert ring4.root_public_key.public_numbers() == ROOT2.public_key().public_numbers()
    ring5 = open_keyring(v5, root_public_key=ring4.root_public_key, min_version=4)
    assert ring5.root_id == ring4.root_id
    with pytest.raises(WrongKeyError):  # the old root cannot sign after the handover
        open_keyring(v5, root_public_key=ROOT_PUB)
    with pytest.raises(WrongKeyError):  # nor can the new root sign its own handover
        open_keyring(v4, root_public_key=ROOT2.public_key())


def test_openpgp_entries_and_recipient_ids() -> None:
    ring = open_keyring(_valid(3), root_public_key=ROOT_PUB)
    ((pgp_id, pgp),) = ring.openpgp_keys_for(Role.DATA).items()
    data_id = public_key_id(DATA.public_key())
    assert pgp_id == hashlib.sha256(pgp).digest()
    assert set(ring.keys_for(Role.DATA)) == {data_id}  # RSA keys only: existing callers keep working
    assert ring.recipient_ids(Role.DATA) == frozenset({data_id, pgp_id})
    assert ring.recipient_ids(Role.BROWSE) == frozenset()
    assert ring.openpgp_keys_for(Role.BROWSE) == {}
    entry = ring.entry(pgp_id)
    assert (entry.kind, entry.label) == (fmt.KeyKind.OPENPGP, "yubikey 0xA1B2")
    with pytest.raises(WrongKeyError, match="OpenPGP key"):
        entry.public_key()


@pytest.mark.parametrize("vec", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vectors_raise_their_error(vec: dict[str, Any]) -> None:
    seen = bytes.fromhex(vec["seen_digest"]) if "seen_digest" in vec else None
    with pytest.raises(getattr(errors, vec["error"])) as info:
        open_keyring(bytes.fromhex(vec["hex"]), root_public_key=ROOT_PUB,
                     min_version=vec.get("min_version", 0), seen_digest=seen)  # fmt: skip
    assert type(info.value).__name__ == vec["error"]
    assert str(info.value)
    assert "\n" not in str(info.value)


def test_rollback_message_is_one_helpful_line() -> None:
    v2 = bytes.fromhex(VECTORS["valid"][1]["hex"])
    with pytest.raises(RollbackError) as info:
        open_keyring(v2, root_public_key=ROOT_PUB, min_version=5)
    assert str(info.value) == "keyring version 2 is older than version 5 already seen: refusing a rollback"


def test_keys_for_and_entry() -> None:
    v1 = open_keyring(S1, root_public_key=ROOT_PUB)
    v2 = open_keyring(bytes.fromhex(VECTORS["valid"][1]["hex"]), root_public_key=ROOT_PUB)
    host_id = public_key_id(HOST.public_key())
    assert set(v1.keys_for(Role.HOST)) == {host_id}
    assert v1.keys_for(Role.HOST)[host_id].public_numbers() == HOST.public_key().public_numbers()
    assert v2.keys_for(Role.HOST) == {}
    assert set(v2.keys_for(Role.HOST, include_revoked=True)) == {host_id}
    assert set(v2.keys_for(Role.DATA)) == {public_key_id(DATA.public_key())}
    entry = v2.entry(host_id)
    assert (entry.role, entry.label, entry.active) == (Role.HOST, "web-1.example.net", False)
    assert entry.revoked_at == VECTORS["valid"][1]["revoked"][host_id.hex()]
    with pytest.raises(WrongKeyError, match="not in the account keyring"):
        v2.entry(bytes(32))


def test_pinned_root_is_the_only_signer_accepted(rsa4096: rsa.RSAPrivateKey) -> None:
    with pytest.raises(WrongKeyError):
        open_keyring(S1, root_public_key=rsa4096.public_key())


def test_build_sign_open_and_rotate(
    rsa4096: rsa.RSAPrivateKey, rsa3072: rsa.RSAPrivateKey, rsa3072_other: rsa.RSAPrivateKey
) -> None:
    root = rsa4096.public_key()
    body1 = new_keyring_body(root, add=[(Role.HOST, rsa3072.public_key(), "web-1"),
                                        (Role.DATA, DATA.public_key(), "data")], now=100)  # fmt: skip
    s1 = sign_object(rsa4096, body1)
    ring1 = open_keyring(s1, root_public_key=root)
    assert (ring1.version, ring1.created, len(ring1.entries)) == (1, 100, 3)
    assert [e.role for e in ring1.entries] == sorted(e.role for e in ring1.entries)

    host1 = public_key_id(rsa3072.public_key())
    body2 = next_keyring_body(
        ring1, add=[(Role.HOST, rsa3072_other.public_key(), "web-2")], revoke=[host1], now=200
    )
    s2 = sign_object(rsa4096, body2)
    ring2 = open_keyring(s2, root_public_key=root, min_version=1, seen_digest=keyring_digest(s1))
    assert ring2.version == 2
    assert ring2.account_id == ring1.account_id
    assert set(ring2.keys_for(Role.HOST)) == {public_key_id(rsa3072_other.public_key())}
    assert ring2.entry(host1).revoked_at == 200
    # re-signing the same body is not equivocation: the digest covers the signed body
    assert open_keyring(sign_object(rsa4096, body2), root_public_key=root, min_version=2,
                        seen_digest=keyring_digest(s2)) == ring2  # fmt: skip
    with pytest.raises(RollbackError):
        open_keyring(s1, root_public_key=root, min_version=2)
    # the same version with another body, once version 2 has been seen
    other2 = sign_object(rsa4096, next_keyring_body(ring1, now=201))
    with pytest.raises(IntegrityError, match="equivocation"):
        open_keyring(other2, root_public_key=root, min_version=2, seen_digest=keyring_digest(s2))

    # root handover: add the new root and revoke the old one, signed by the OLD root
    body3 = next_keyring_body(ring2, add=[(Role.ROOT, ROOT_PUB, "root 2")], revoke=[ring2.root_id], now=300)
    ring3 = open_keyring(sign_object(rsa4096, body3), root_public_key=root, min_version=2)
    assert ring3.root_id == public_key_id(ROOT_PUB)
    with pytest.raises(WrongKeyError):  # the new root does not sign its own handover
        open_keyring(sign_object(ROOT, body3), root_public_key=root)
    body4 = next_keyring_body(ring3, now=400)
    assert open_keyring(sign_object(ROOT, body4), root_public_key=ring3.root_public_key).version == 4
    with pytest.raises(WrongKeyError):  # from version 4 on the old root's signature is refused
        open_keyring(sign_object(rsa4096, body4), root_public_key=ring3.root_public_key)


def test_trusted_heads_and_openpgp_additions(rsa4096: rsa.RSAPrivateKey, rsa3072: rsa.RSAPrivateKey) -> None:
    root = rsa4096.public_key()
    pgp = b"\x99\x01\x0d" + bytes(range(256)) * 30  # 7683 bytes: above the RSA limit, under OpenPGP's
    body1 = new_keyring_body(root, add=[(Role.HOST, rsa3072.public_key(), "web1")],
                             add_openpgp=[(Role.BROWSE, pgp, "auditor card")], now=1)  # fmt: skip
    ring1 = open_keyring(sign_object(rsa4096, body1), root_public_key=root)
    pgp_id = hashlib.sha256(pgp).digest()
    assert ring1.openpgp_keys_for(Role.BROWSE) == {pgp_id: pgp}
    host_id = public_key_id(rsa3072.public_key())
    head = hashlib.sha256(b"the last trusted manifest").digest()
    body2 = next_keyring_body(ring1, revoke=[host_id, pgp_id], trusted_heads={host_id: head}, now=2)
    ring2 = open_keyring(sign_object(rsa4096, body2), root_public_key=root)
    assert ring2.entry(host_id).trusted_head == head
    assert ring2.entry(pgp_id).trusted_head == fmt.NO_HEAD  # revoked, not a host key
    assert ring2.recipient_ids(Role.BROWSE) == frozenset()
    ring3 = open_keyring(sign_object(rsa4096, next_keyring_body(ring2, now=3)), root_public_key=root)
    assert ring3.entry(host_id).trusted_head == head  # kept in later versions
    with pytest.raises(UsageError, match="not being revoked"):
        next_keyring_body(ring1, trusted_heads={host_id: head})
    with pytest.raises(UsageError, match="only a host key"):
        next_keyring_body(ring1, revoke=[pgp_id], trusted_heads={pgp_id: head})
    with pytest.raises(WrongRoleError, match="data or browse"):
        next_keyring_body(ring1, add_openpgp=[(Role.HOST, pgp, "no")])
    with pytest.raises(UsageError, match="1 to 8192"):
        next_keyring_body(ring1, add_openpgp=[(Role.DATA, bytes(8193), "too long")])
    with pytest.raises(UsageError, match="already in the keyring"):
        next_keyring_body(ring1, add_openpgp=[(Role.DATA, pgp, "again")])


def test_builder_refuses_mistakes(rsa4096: rsa.RSAPrivateKey, rsa3072: rsa.RSAPrivateKey) -> None:
    ring = open_keyring(S1, root_public_key=ROOT_PUB)
    host_id = public_key_id(HOST.public_key())
    with pytest.raises(UsageError, match="already in the keyring"):
        next_keyring_body(ring, add=[(Role.DELETION, HOST.public_key(), "again")])
    with pytest.raises(NotFoundError):
        next_keyring_body(ring, revoke=[bytes(32)])
    revoked = open_keyring(bytes.fromhex(VECTORS["valid"][1]["hex"]), root_public_key=ROOT_PUB)
    with pytest.raises(UsageError, match="already revoked"):
        next_keyring_body(revoked, revoke=[host_id])
    with pytest.raises(WrongRoleError, match="RSA-3072"):
        next_keyring_body(ring, add=[(Role.HOST, rsa4096.public_key(), "too big")])
    with pytest.raises(WrongRoleError):
        new_keyring_body(rsa3072.public_key())
    with pytest.raises(UsageError, match="exactly one active root"):
        next_keyring_body(ring, add=[(Role.ROOT, rsa4096.public_key(), "second root")])
    body = fmt.decode(next_keyring_body(ring, now=5))
    assert (body.version, body.created, body.account_id) == (2, 5, ring.account_id)


def test_keyring_is_verified_before_it_is_decoded() -> None:
    # a garbage body correctly signed by another key must fail on the signer, not on parsing
    junk = sign_object(DATA, b"OBKR" + b"\xff" * 40)
    with pytest.raises(WrongKeyError):
        open_keyring(junk, root_public_key=ROOT_PUB)


@settings(max_examples=150, deadline=None)
@given(pos=st.integers(0, len(S1) - 1), delta=st.integers(1, 255))
def test_any_single_byte_change_is_detected(pos: int, delta: int) -> None:
    raw = bytearray(S1)
    raw[pos] ^= delta
    with pytest.raises(OpsbackupError):
        open_keyring(bytes(raw), root_public_key=ROOT_PUB)


def test_keyring_module_imports_no_private_key_code() -> None:
    code = (
        "import sys, crypto.keyring\n"
        "bad = {'crypto.private', 'crypto.keyfile'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_keyring_is_a_frozen_value() -> None:
    ring = open_keyring(S1, root_public_key=ROOT_PUB)
    assert isinstance(ring, Keyring)
    with pytest.raises(AttributeError):
        ring.version = 9  # type: ignore[misc]
