#!/usr/bin/env python3
"""Regenerate tests/vectors/{wrapped_key,keyfile,keyring}.json, deterministically.

Run from the repository root: ``python tests/vectors/make_key_vectors.py``. Every output is a
function of the fixed seeds below, so running it again gives the same files byte for byte.

Independence: the byte layouts are written here straight from docs/spec/*.md with the generic
``Writer`` (not with the format modules under test), and RSA keys, OAEP and PSS are computed with
plain integer arithmetic from RFC 8017 with *fixed* seeds and salts (the library randomises them).
The tests then check that opsbackup and OpenSSL accept these bytes: a known-answer test of both
the layouts and the padding. This arithmetic is for test vectors only; nothing in opsbackup uses it.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id  # noqa: E402

from formats._wire import Writer  # noqa: E402

OUT = Path(__file__).resolve().parent
E = 65537
_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, math.isqrt(p) + 1))]


class Stream:
    """Deterministic bytes: SHAKE-256 of a seed, read as a stream (test vectors only)."""

    def __init__(self, seed: str) -> None:
        self._seed = seed.encode()
        self._n = 0

    def take(self, n: int) -> bytes:
        out = hashlib.shake_256(self._seed + self._n.to_bytes(8, "big")).digest(n)
        self._n += 1
        return out


def _probable_prime(n: int, rnd: Stream) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(40):
        a = 2 + int.from_bytes(rnd.take(64), "big") % (n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rnd: Stream) -> int:
    while True:
        c = int.from_bytes(rnd.take(bits // 8), "big") | (3 << (bits - 2)) | 1
        if math.gcd(c - 1, E) == 1 and _probable_prime(c, rnd):
            return c


def det_rsa_key(bits: int, seed: str) -> rsa.RSAPrivateKey:
    rnd = Stream(seed)
    p, q = _prime(bits // 2, rnd), _prime(bits // 2, rnd)
    d = pow(E, -1, math.lcm(p - 1, q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(E, p * q),
    )  # fmt: skip
    return numbers.private_key()


def _mgf1(seed: bytes, n: int) -> bytes:
    out = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(-(-n // 32)))
    return out[:n]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def oaep_encrypt(key: rsa.RSAPublicKey, msg: bytes, label: bytes, seed: bytes) -> bytes:
    """RFC 8017 7.1.1 RSAES-OAEP-ENCRYPT, SHA-256 and MGF1-SHA-256, with a fixed seed."""
    k = key.key_size // 8
    db = hashlib.sha256(label).digest() + b"\0" * (k - len(msg) - 66) + b"\x01" + msg
    masked_db = _xor(db, _mgf1(seed, k - 33))
    em = b"\0" + _xor(seed, _mgf1(masked_db, 32)) + masked_db
    n = key.public_numbers()
    return pow(int.from_bytes(em, "big"), n.e, n.n).to_bytes(k, "big")


def pss_sign(key: rsa.RSAPrivateKey, msg: bytes, salt: bytes) -> bytes:
    """RFC 8017 8.1.1 RSASSA-PSS-SIGN, SHA-256, MGF1-SHA-256, 32-byte fixed salt."""
    em_bits = key.key_size - 1
    em_len = -(-em_bits // 8)
    h = hashlib.sha256(b"\0" * 8 + hashlib.sha256(msg).digest() + salt).digest()
    db = b"\0" * (em_len - 66) + b"\x01" + salt
    masked = bytearray(_xor(db, _mgf1(h, em_len - 33)))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    em = bytes(masked) + h + b"\xbc"
    nums = key.private_numbers()
    return pow(int.from_bytes(em, "big"), nums.d, nums.public_numbers.n).to_bytes(key.key_size // 8, "big")


def der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def kid(key: rsa.RSAPrivateKey) -> bytes:
    return hashlib.sha256(der(key)).digest()


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def signed_object(signer: rsa.RSAPrivateKey, body: bytes, salt: bytes) -> bytes:
    """docs/spec/signed-object.md: OBSO envelope around ``body``."""
    sig = pss_sign(signer, body, salt)
    return Writer().header(b"OBSO", 1).raw(kid(signer)).bytes32(body).bytes16(sig).getvalue()


# ---- wrapped key (docs/spec/wrapped-key.md) ----


def wk_bytes(role: int, backup_id: bytes, kind: int, rid: bytes, wrapped: bytes) -> bytes:
    return Writer().header(b"OBWK", 1).u8(role).raw(backup_id).u8(kind).raw(rid).bytes16(wrapped).getvalue()


def wrapped_key_vectors(data: rsa.RSAPrivateKey, browse: rsa.RSAPrivateKey) -> dict[str, Any]:
    rnd = Stream("opsbackup wrapped-key vectors")
    valid: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for role, key in ((2, data), (3, browse)):
        backup_id, secret, seed = rnd.take(16), rnd.take(32), rnd.take(32)
        label = b"opsbackup/v1/wrap/" + bytes([role]) + backup_id
        wrapped = oaep_encrypt(key.public_key(), secret, label, seed)
        valid.append(
            {
                "name": f"RSA-OAEP record, role {role}",
                "role": role, "backup_id": backup_id.hex(), "kind": 1, "recipient_id": kid(key).hex(),
                "label": label.hex(), "key": secret.hex(), "private_key": "data" if role == 2 else "browse",
                "hex": wk_bytes(role, backup_id, 1, kid(key), wrapped).hex(),
            }
        )  # fmt: skip
    opaque = rnd.take(300)
    bid, rid = rnd.take(16), rnd.take(32)
    valid.append(
        {"name": "OpenPGP record (kind 2, opaque)", "role": 2, "backup_id": bid.hex(), "kind": 2,
         "recipient_id": rid.hex(), "hex": wk_bytes(2, bid, 2, rid, opaque).hex()}
    )  # fmt: skip
    good = bytes.fromhex(valid[0]["hex"])
    bid0, rid0, wr0 = good[7:23], good[24:56], good[58:]

    def bad(name: str, raw: bytes, error: str = "FormatError") -> None:
        invalid.append({"name": name, "hex": raw.hex(), "error": error})

    bad("wrong magic", b"OBWX" + good[4:])
    bad("version 2", good[:4] + b"\x00\x02" + good[6:])
    bad("role root", wk_bytes(1, bid0, 1, rid0, wr0))
    bad("role dedup", wk_bytes(6, bid0, 1, rid0, wr0))
    bad("unknown role 9", wk_bytes(9, bid0, 1, rid0, wr0))
    bad("recipient kind 0", wk_bytes(2, bid0, 0, rid0, wr0))
    bad("recipient kind 3", wk_bytes(2, bid0, 3, rid0, wr0))
    bad("RSA wrapped 511 bytes", wk_bytes(2, bid0, 1, rid0, wr0[:511]))
    bad("RSA wrapped 513 bytes", wk_bytes(2, bid0, 1, rid0, wr0 + b"\0"))
    bad("OpenPGP wrapped empty", wk_bytes(2, bid0, 2, rid0, b""))
    bad("truncated", good[:-1])
    bad("trailing byte", good + b"\0")
    bad("empty", b"")
    unwrap_bad = [
        {"name": "flipped wrapped byte", "hex": (good[:100] + bytes([good[100] ^ 1]) + good[101:]).hex(),
         "error": "IntegrityError"},
        {"name": "role relabelled data -> browse", "hex": (good[:6] + b"\x03" + good[7:]).hex(),
         "expect_role": 3, "error": "IntegrityError"},
        {"name": "moved to another backup", "hex": wk_bytes(2, bytes(16), 1, rid0, wr0).hex(),
         "expect_backup_id": bytes(16).hex(), "error": "IntegrityError"},
        {"name": "not for this key", "hex": wk_bytes(2, bid0, 1, bytes(32), wr0).hex(),
         "error": "WrongKeyError"},
        {"name": "for another backup than expected", "hex": good.hex(), "expect_backup_id": bytes(16).hex(),
         "error": "WrongKeyError"},
    ]  # fmt: skip
    return {
        "description": "OBWK wrapped-key records (docs/spec/wrapped-key.md). Unwrap vectors use the 'data' "
        "key and expect role 2 and the backup id of the first valid record unless they say otherwise.",
        "keys": {"data": pem(data), "browse": pem(browse)},
        "valid": valid,
        "invalid": invalid,
        "unwrap_invalid": unwrap_bad,
    }


# ---- key file (docs/spec/key-file.md) ----

PASSPHRASE = "correct horse battery staple"
MIN = (8192, 1, 1)


def kf_bytes(
    role: int, label: str, root: bytes, public: bytes, kdf: int, secret: bytes, *,
    params: tuple[int, int, int] = MIN, salt: bytes = b"", nonce: bytes = b"",
    passphrase: str | None = PASSPHRASE, checksum: bool = True,
) -> bytes:  # fmt: skip
    w = Writer().header(b"OBKF", 1).u8(role).utf8_16(label).bytes16(root).bytes16(public).u8(kdf)
    if kdf == 1:
        w.u32(params[0]).u32(params[1]).u8(params[2]).raw(salt)
        aad = w.getvalue()
        if passphrase is not None:
            k = Argon2id(salt=salt, length=32, iterations=params[1], lanes=params[2], memory_cost=params[0])
            secret = AESGCM(k.derive(passphrase.encode())).encrypt(nonce, secret, aad)
        w.raw(nonce)
    body = w.bytes16(secret).getvalue()
    return body + (hashlib.sha256(body).digest() if checksum else bytes(32))


def keyfile_vectors(root: rsa.RSAPrivateKey, host: rsa.RSAPrivateKey) -> dict[str, Any]:
    rnd = Stream("opsbackup key-file vectors")
    rt = der(root)  # the account root every key file names
    dedup, salt, nonce = rnd.take(32), rnd.take(16), rnd.take(12)
    host_der = host.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    root_der = root.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    valid: list[dict[str, Any]] = [
        {"name": "dedup secret, Argon2id", "role": 6, "label": "dedup", "kdf": 1, "secret": dedup.hex(),
         "hex": kf_bytes(6, "dedup", rt, b"", 1, dedup, salt=salt, nonce=nonce).hex()},
        {"name": "dedup secret, KDF none", "role": 6, "label": "dedup", "kdf": 0, "secret": dedup.hex(),
         "hex": kf_bytes(6, "dedup", rt, b"", 0, dedup).hex()},
        {"name": "host key, KDF none", "role": 4, "label": "web-1", "kdf": 0, "key_id": kid(host).hex(),
         "hex": kf_bytes(4, "web-1", rt, der(host), 0, host_der).hex()},
        {"name": "root key, Argon2id", "role": 1, "label": "root \u00e9", "kdf": 1, "key_id": kid(root).hex(),
         "hex": kf_bytes(1, "root \u00e9", rt, der(root), 1, root_der, salt=salt, nonce=nonce).hex()},
    ]  # fmt: skip
    good = bytes.fromhex(valid[0]["hex"])

    def bad(
        name: str, raw: bytes, error: str = "FormatError", stage: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        # stage "decode": formats.keyfile.decode refuses it; "load": only opening the key does
        if stage is None:
            stage = "decode" if error == "FormatError" and "not matching" not in name else "load"
        return {"name": name, "hex": raw.hex(), "error": error, "stage": stage, **extra}

    def dd(**kw: Any) -> bytes:
        return kf_bytes(6, "dedup", rt, b"", 1, dedup, salt=salt, nonce=nonce, **kw)

    def params(p: tuple[int, int, int]) -> bytes:  # refused before any KDF runs: not sealed
        return kf_bytes(
            6, "dedup", rt, b"", 1, dedup + bytes(16), params=p, salt=salt, nonce=nonce, passphrase=None
        )

    invalid = [
        bad("wrong passphrase", good, "WrongPassphraseError", passphrase="Correct horse battery staple"),
        bad("no passphrase given", good, "WrongPassphraseError", passphrase=None),
        bad("sealed under another passphrase", dd(passphrase="other"), "WrongPassphraseError"),
        bad("key of the wrong role", bytes.fromhex(valid[2]["hex"]), "WrongRoleError", expect_role=1),
        bad("truncated", good[:-1]),
        bad("truncated in the header", good[:20]),
        bad("bad checksum", dd(checksum=False)),
        bad("trailing byte", good + b"\0"),
        bad("wrong magic", b"OBKX" + good[4:]),
        bad("version 2", good[:4] + b"\0\2" + good[6:]),
        bad("unknown KDF 2", kf_bytes(6, "dedup", rt, b"", 2, dedup)),
        bad("memory 8191 KiB", params((8191, 1, 1))),
        bad("memory above 4 GiB", params((4 * 1024 * 1024 + 1, 1, 1))),
        bad("iterations 0", params((8192, 0, 1))),
        bad("iterations 101", params((8192, 101, 1))),
        bad("lanes 0", params((8192, 1, 0))),
        bad("KDF none for a root key", kf_bytes(1, "root", rt, der(root), 0, root_der)),
        bad("dedup secret of 31 bytes", kf_bytes(6, "dedup", rt, b"", 0, dedup[:31])),
        bad("dedup secret with a public key", kf_bytes(6, "dedup", rt, der(host), 0, dedup)),
        bad("host key without its public key", kf_bytes(4, "web-1", rt, b"", 0, host_der)),
        bad("private key not matching the public key", kf_bytes(4, "web-1", rt, der(root), 0, host_der)),
        bad("no root public key", kf_bytes(4, "web-1", b"", der(host), 0, host_der)),
        bad("root public key above 2048 bytes", kf_bytes(4, "web-1", bytes(2049), der(host), 0, host_der)),
        bad("root key file naming another root", kf_bytes(1, "root", der(host), der(root), 1, root_der,
                                                          salt=salt, nonce=nonce)),
        bad("root public key not RSA-4096", kf_bytes(4, "web-1", der(host), der(host), 0, host_der),
            stage="load"),
        bad("root public key not a key", kf_bytes(4, "web-1", b"\x30\x03junk", der(host), 0, host_der),
            stage="load"),
    ]  # fmt: skip
    return {
        "description": "OBKF key files (docs/spec/key-file.md), Argon2id at the minimum parameters "
        f"(m={MIN[0]} KiB, t={MIN[1]}, p={MIN[2]}). Passphrase unless a vector says otherwise: "
        f"{PASSPHRASE!r}.",
        "passphrase": PASSPHRASE,
        "root_public_der": rt.hex(),
        "keys": {"root": pem(root), "host": pem(host)},
        "valid": valid,
        "invalid": invalid,
    }


# ---- keyring (docs/spec/keyring.md) ----

# role, key id, label, public key, revoked-at (0 = active), kind (1 RSA, 2 OpenPGP), last trusted manifest
Ent = tuple[int, bytes, str, bytes, int, int, bytes]
NO_HEAD = bytes(32)


def kr_body(account: bytes, version: int, created: int, entries: list[Ent], magic: bytes = b"OBKR") -> bytes:
    w = Writer().header(magic, 1).raw(account).u64(version).u64(created).u16(len(entries))
    for role, key_id, label, public, revoked, kind, head in entries:
        w.u8(role).u8(kind).raw(key_id).utf8_16(label).bytes16(public).u8(1 if revoked else 0).u64(revoked)
        w.raw(head)
    return w.getvalue()


def rsa_ent(role: int, key: rsa.RSAPrivateKey, label: str, revoked: int = 0, head: bytes = NO_HEAD) -> Ent:
    return (role, kid(key), label, der(key), revoked, 1, head)


def keyring_vectors(
    root: rsa.RSAPrivateKey, data: rsa.RSAPrivateKey, host: rsa.RSAPrivateKey, root2: rsa.RSAPrivateKey
) -> dict[str, Any]:
    rnd = Stream("opsbackup keyring vectors")
    account = rnd.take(16)
    head = rnd.take(32)  # the hash of the revoked host key's last trusted manifest
    pgp = b"\x99" + rnd.take(400)  # an OpenPGP key is opaque to the keyring: any bytes, id = SHA-256
    t0 = 1_700_000_000
    r_e = rsa_ent(1, root, "root")
    d_e = rsa_ent(2, data, "data 2024")
    h_e = rsa_ent(4, host, "web-1.example.net")
    g_e: Ent = (2, hashlib.sha256(pgp).digest(), "yubikey 0xA1B2", pgp, 0, 2, NO_HEAD)
    by_id = sorted([d_e, g_e], key=lambda e: e[1])
    v1 = kr_body(account, 1, t0, [r_e, d_e, h_e])
    v2 = kr_body(account, 2, t0 + 60, [r_e, d_e, rsa_ent(4, host, h_e[2], t0 + 60, head)])
    v2b = kr_body(account, 2, t0 + 61, [r_e, d_e])
    v3 = kr_body(account, 3, t0 + 120, [r_e, *by_id])
    # root handover: version 4 names root2 active and root revoked, signed by the OLD root; 5 by root2
    roots = sorted([rsa_ent(1, root, "root", t0 + 180), rsa_ent(1, root2, "root 2")], key=lambda e: e[1])
    v4 = kr_body(account, 4, t0 + 180, [*roots, *by_id])
    v5 = kr_body(account, 5, t0 + 240, [*roots, d_e])

    def so(body: bytes, signer: rsa.RSAPrivateKey = root) -> bytes:
        return signed_object(signer, body, rnd.take(32))

    s1, s2, s3, s4, s5 = so(v1), so(v2), so(v3), so(v4), so(v5, root2)
    valid: list[dict[str, Any]] = [
        {"name": name, "hex": s.hex(), "body": b.hex(), "version": v, "account_id": account.hex(),
         "digest": hashlib.sha256(b).hexdigest(), "signer": signer, "root_id": kid(active).hex()}
        for name, v, s, b, signer, active in (
            ("version 1", 1, s1, v1, "root", root),
            ("version 2: host revoked with a trusted head", 2, s2, v2, "root", root),
            ("version 3: an OpenPGP data key (kind 2)", 3, s3, v3, "root", root),
            ("version 4: root handover, signed by the old root", 4, s4, v4, "root", root2),
            ("version 5: signed by the new root", 5, s5, v5, "root2", root2),
        )
    ]  # fmt: skip
    valid[1]["revoked"] = {kid(host).hex(): t0 + 60}
    valid[1]["trusted_heads"] = {kid(host).hex(): head.hex()}
    valid[2]["openpgp"] = {g_e[1].hex(): pgp.hex()}
    valid[3]["revoked"] = {kid(root).hex(): t0 + 180}
    valid[3]["openpgp"] = valid[2]["openpgp"]
    valid[4]["revoked"] = valid[3]["revoked"]
    flipped_sig = s1[:-5] + bytes([s1[-5] ^ 0x40]) + s1[-4:]
    flipped_body = bytearray(s1)
    flipped_body[60] ^= 1

    def bad(name: str, entries: list[Ent], error: str = "FormatError", signer: rsa.RSAPrivateKey = root,
            version: int = 1) -> dict[str, Any]:  # fmt: skip
        return {"name": name, "hex": so(kr_body(account, version, t0, entries), signer).hex(), "error": error}

    host_active_head = rsa_ent(4, host, "x", 0, head)
    data_revoked_head = rsa_ent(2, data, "x", t0, head)
    invalid = [
        {"name": "keyring version 2 after 3", "hex": s2.hex(), "min_version": 3, "error": "RollbackError"},
        {"name": "keyring version 1 after 2", "hex": s1.hex(), "min_version": 2, "error": "RollbackError"},
        {"name": "version 2 with another body (equivocation)", "hex": so(v2b).hex(), "min_version": 2,
         "seen_digest": hashlib.sha256(v2).hexdigest(), "error": "IntegrityError"},
        {"name": "flipped signature bit", "hex": flipped_sig.hex(), "error": "IntegrityError"},
        {"name": "flipped body byte", "hex": bytes(flipped_body).hex(), "error": "IntegrityError"},
        {"name": "signed by the data key", "hex": so(v1, data).hex(), "error": "WrongKeyError"},
        bad("names another root than its signer", [rsa_ent(1, data, "root"), h_e], "WrongKeyError"),
        {"name": "signed object of another type", "hex": so(kr_body(account, 1, t0, [r_e], b"OBMF")).hex(),
         "error": "FormatError"},
        bad("entries not sorted", [r_e, h_e, d_e]),
        bad("duplicate entry", [r_e, d_e, d_e]),
        bad("no active root", [rsa_ent(1, root, "root", t0), d_e]),
        bad("key id not SHA-256 of the DER", [r_e, (2, kid(host), "x", der(data), 0, 1, NO_HEAD)],
            "IntegrityError"),
        bad("host key of RSA-4096", [r_e, (4, kid(data), "x", der(data), 0, 1, NO_HEAD)]),
        {"name": "keyring version 0", "hex": so(kr_body(account, 0, t0, [r_e])).hex(),
         "error": "FormatError"},
        {"name": "active entry with a revocation time", "error": "FormatError",
         "hex": so(v1[:-41] + b"\0" + (5).to_bytes(8, "big") + v1[-32:]).hex()},
        bad("key kind 0", [r_e, (2, kid(data), "x", der(data), 0, 0, NO_HEAD)]),
        bad("key kind 3", [r_e, (2, kid(data), "x", der(data), 0, 3, NO_HEAD)]),
        bad("OpenPGP key as a host key", [r_e, (4, g_e[1], "x", pgp, 0, 2, NO_HEAD)]),
        bad("OpenPGP key as the root", [(1, g_e[1], "x", pgp, 0, 2, NO_HEAD)]),
        bad("OpenPGP key id not SHA-256 of its bytes", [r_e, (2, kid(data), "x", pgp, 0, 2, NO_HEAD)],
            "IntegrityError"),
        bad("OpenPGP key of 8193 bytes", [r_e, (2, bytes(32), "x", bytes(8193), 0, 2, NO_HEAD)]),
        bad("RSA key of 2049 bytes", [r_e, (2, bytes(32), "x", bytes(2049), 0, 1, NO_HEAD)]),
        bad("trusted head on an active host key", sorted([r_e, host_active_head], key=lambda e: e[0])),
        bad("trusted head on a revoked data key", [r_e, data_revoked_head]),
        bad("new root without the old one revoked", [rsa_ent(1, root2, "root 2"), d_e], "WrongKeyError",
            version=4),
        bad("handover signed by the new root", roots, "WrongKeyError", root2, version=4),
        {"name": "trailing byte after the body", "hex": so(v1 + b"\0").hex(), "error": "FormatError"},
        {"name": "trailing byte after the envelope", "hex": (s1 + b"\0").hex(), "error": "FormatError"},
        {"name": "truncated envelope", "hex": s1[:-1].hex(), "error": "FormatError"},
    ]  # fmt: skip
    return {
        "description": "OBKR keyrings (docs/spec/keyring.md) in OBSO envelopes (RSA-PSS, SHA-256, salt "
        "32). Open each valid one with its 'signer' key as the trusted root; open each invalid one with "
        "the 'root' key; min_version 0 and no seen digest unless a vector says otherwise.",
        "keys": {"root": pem(root), "data": pem(data), "host": pem(host), "root2": pem(root2)},
        "valid": valid,
        "invalid": invalid,
    }


def main() -> None:
    root = det_rsa_key(4096, "opsbackup test root key")
    data = det_rsa_key(4096, "opsbackup test data key")
    browse = det_rsa_key(4096, "opsbackup test browse key")
    host = det_rsa_key(3072, "opsbackup test host key")
    out = {
        "wrapped_key": wrapped_key_vectors(data, browse),
        "keyfile": keyfile_vectors(root, host),
        "keyring": keyring_vectors(root, data, host, browse),
    }
    for name, doc in out.items():
        (OUT / f"{name}.json").write_text(
            json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"wrote tests/vectors/{name}.json")


if __name__ == "__main__":
    main()
