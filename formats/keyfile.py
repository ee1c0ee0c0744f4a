"""Key file: one private key or the dedup secret, sealed under a passphrase (or, for hosts, not).

Layout (docs/spec/key-file.md)::

    magic "OBKF" | u16 version = 1 | u8 role | utf8 label | bytes16 root public key DER
    | bytes16 public key DER | u8 kdf
    kdf 1 (Argon2id): u32 memory KiB | u32 iterations | u8 lanes | salt (16) | nonce (12)
                      | bytes16 sealed secret (AES-256-GCM ciphertext || tag)
    kdf 0 (none):     bytes16 secret in the clear
    | checksum (32) = SHA-256 of every preceding byte

The secret is the PKCS#8 DER of an RSA private key, or the 32-byte dedup secret (role 6, whose
public key field is empty). Every key file names the account root it trusts (the root key's
public DER, always present; a root key file names itself), so a fresh machine holding only a key
file can verify the keyring against a pinned root. The GCM AAD is every byte before the nonce
(:func:`sealing_aad`), the root included. The checksum catches accidental corruption (even of the
public half, which is read without the passphrase); it is not a MAC. This module checks structure
and the KDF parameter bounds only; ``crypto.keyfile`` derives keys, seals and opens.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from formats._wire import Reader, Writer, expect_header
from formats.errors import FormatError
from formats.roles import Role, role_from_code

__all__ = [
    "CHECKSUM_SIZE",
    "DEDUP_SECRET_SIZE",
    "MAGIC",
    "MAX_ITERATIONS",
    "MAX_LABEL",
    "MAX_LANES",
    "MAX_MEMORY_KIB",
    "MAX_PUBLIC_DER",
    "MAX_SECRET",
    "MIN_MEMORY_KIB",
    "NONCE_SIZE",
    "SALT_SIZE",
    "TAG_SIZE",
    "UNPROTECTED_ROLES",
    "VERSION",
    "Argon2Params",
    "Kdf",
    "KeyFile",
    "decode",
    "encode",
    "sealing_aad",
]

MAGIC = b"OBKF"
VERSION = 1
SALT_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
CHECKSUM_SIZE = 32
DEDUP_SECRET_SIZE = 32
MAX_LABEL = 255  # bytes of UTF-8
MAX_PUBLIC_DER = 2048  # an RSA-4096 SubjectPublicKeyInfo is 550 bytes
MAX_SECRET = 8192  # an RSA-4096 PKCS#8 DER is about 2 400 bytes
MIN_MEMORY_KIB = 8 * 1024  # 8 MiB
MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB
MAX_ITERATIONS = 100
MAX_LANES = 64
#: Roles whose key may be stored without a passphrase (KDF none): unattended hosts.
UNPROTECTED_ROLES = frozenset({Role.HOST, Role.DEDUP})


class Kdf(enum.IntEnum):
    NONE = 0  # secret in the clear; protection is the file mode 0600 only
    ARGON2ID = 1  # RFC 9106 Argon2id, then AES-256-GCM


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost parameters and salt, as stored in the key file."""

    memory_kib: int
    iterations: int
    lanes: int
    salt: bytes

    def problem(self) -> str | None:
        """Why these parameters are refused, or ``None`` when they are within bounds."""
        if not MIN_MEMORY_KIB <= self.memory_kib <= MAX_MEMORY_KIB:
            return f"Argon2id memory {self.memory_kib} KiB is outside {MIN_MEMORY_KIB}..{MAX_MEMORY_KIB} KiB"
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            return f"Argon2id iterations {self.iterations} is outside 1..{MAX_ITERATIONS}"
        if not 1 <= self.lanes <= MAX_LANES:
            return f"Argon2id lanes {self.lanes} is outside 1..{MAX_LANES}"
        if len(self.salt) != SALT_SIZE:
            return f"Argon2id salt must be {SALT_SIZE} bytes"
        return None


@dataclass(frozen=True, repr=False)
class KeyFile:
    """A decoded key file. ``secret`` is the sealed bytes (Argon2id) or the clear secret (none)."""

    role: Role
    label: str
    root_public_der: bytes  # DER SubjectPublicKeyInfo of the account root this key file trusts
    public_der: bytes
    kdf: Kdf
    params: Argon2Params | None
    nonce: bytes
    secret: bytes

    def __repr__(self) -> str:  # never print secret material, even sealed
        return f"KeyFile(role={self.role.label}, label={self.label!r}, kdf={self.kdf.name})"


def _secret_limits(role: Role, kdf: Kdf) -> tuple[int, int]:
    overhead = TAG_SIZE if kdf is Kdf.ARGON2ID else 0
    if role is Role.DEDUP:
        return DEDUP_SECRET_SIZE + overhead, DEDUP_SECRET_SIZE + overhead
    return 1 + overhead, MAX_SECRET + overhead


def _problem(kf: KeyFile) -> str | None:
    """The first structural rule ``kf`` breaks, or ``None``."""
    if not 1 <= len(kf.root_public_der) <= MAX_PUBLIC_DER:
        return f"root public key of {len(kf.root_public_der)} bytes (1..{MAX_PUBLIC_DER})"
    if not len(kf.public_der) <= MAX_PUBLIC_DER:
        return f"public key of {len(kf.public_der)} bytes (at most {MAX_PUBLIC_DER})"
    if kf.role is Role.ROOT and kf.root_public_der != kf.public_der:
        return "a root key file must name its own public key as the root"
    if (kf.role is Role.DEDUP) != (not kf.public_der):
        return "the public key field must be empty for the dedup secret and only for it"
    if kf.kdf is Kdf.NONE and kf.role not in UNPROTECTED_ROLES:
        return f"a {kf.role.label} key must be protected by a passphrase (KDF none is for host keys)"
    low, high = _secret_limits(kf.role, kf.kdf)
    if not low <= len(kf.secret) <= high:
        return f"secret of {len(kf.secret)} bytes (a {kf.role.label} key file holds {low}..{high})"
    return None


def _header(w: Writer, kf: KeyFile) -> Writer:
    w.header(MAGIC, VERSION).u8(kf.role).utf8_16(kf.label)
    w.bytes16(kf.root_public_der).bytes16(kf.public_der).u8(kf.kdf)
    if kf.kdf is Kdf.ARGON2ID:
        p = kf.params
        if p is None or p.problem() is not None:
            raise ValueError(p.problem() if p is not None else "Argon2id needs parameters")
        w.u32(p.memory_kib).u32(p.iterations).u8(p.lanes).fixed(p.salt, SALT_SIZE)
    elif kf.params is not None or kf.nonce:
        raise ValueError("KDF none has no parameters and no nonce")
    return w


def sealing_aad(kf: KeyFile) -> bytes:
    """The AES-GCM AAD: every byte before the nonce (header, label, root and own public key, KDF)."""
    if len(kf.label.encode("utf-8")) > MAX_LABEL:
        raise ValueError(f"a key label is at most {MAX_LABEL} bytes of UTF-8")
    return _header(Writer(), kf).getvalue()


def encode(kf: KeyFile) -> bytes:
    """The canonical bytes of a key file, checksum included."""
    problem = _problem(kf)
    if problem is not None:
        raise ValueError(problem)
    w = Writer().raw(sealing_aad(kf))
    if kf.kdf is Kdf.ARGON2ID:
        w.fixed(kf.nonce, NONCE_SIZE)
    body = w.bytes16(kf.secret).getvalue()
    return body + hashlib.sha256(body).digest()


def decode(data: bytes, what: str = "key file") -> KeyFile:
    """Decode a key file strictly; a bad checksum or any rule broken is a ``FormatError``."""
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    role = role_from_code(r.u8(), what)
    label = r.utf8_16(MAX_LABEL)
    root_public_der = r.bytes16(MAX_PUBLIC_DER)
    if not root_public_der:
        raise r.error("the root public key is empty")
    public_der = r.bytes16(MAX_PUBLIC_DER)
    kdf_code = r.u8()
    try:
        kdf = Kdf(kdf_code)
    except ValueError:
        raise r.error(f"unknown KDF {kdf_code}") from None
    params: Argon2Params | None = None
    nonce = b""
    if kdf is Kdf.ARGON2ID:
        params = Argon2Params(memory_kib=r.u32(), iterations=r.u32(), lanes=r.u8(), salt=r.take(SALT_SIZE))
        problem = params.problem()
        if problem is not None:
            raise FormatError(f"{what} is refused: {problem}")
        nonce = r.take(NONCE_SIZE)
    secret = r.bytes16(_secret_limits(role, kdf)[1])
    end = r.offset
    checksum = r.take(CHECKSUM_SIZE)
    r.finish()
    if hashlib.sha256(bytes(data[:end])).digest() != checksum:
        raise FormatError(f"{what} is corrupt: checksum mismatch (the file was damaged or truncated)")
    kf = KeyFile(
        role=role,
        label=label,
        root_public_der=root_public_der,
        public_der=public_der,
        kdf=kdf,
        params=params,
        nonce=nonce,
        secret=secret,
    )
    problem = _problem(kf)
    if problem is not None:
        raise FormatError(f"{what} is corrupt: {problem}")
    return kf
