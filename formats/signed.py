"""Signed object: an RSA-PSS signature over exact body bytes that begin with a type tag.

Layout (docs/spec/signed-object.md)::

    magic "OBSO" | u16 version = 1 | signer key id (32) | u32 body length | body
    | u16 signature length | signature

The body starts with its own 4-byte magic, which is the type tag the signature covers. Decoding a
signed object checks only the envelope: it never parses the body. The caller verifies the
signature over :attr:`SignedObject.body` and only then decodes the body (see
``crypto.signing``).
"""

from __future__ import annotations

from dataclasses import dataclass

from formats._wire import Reader, Writer, expect_header
from formats.errors import FormatError

__all__ = ["KEY_ID_SIZE", "MAGIC", "MAX_BODY", "SignedObject", "decode", "encode", "expect_type"]

MAGIC = b"OBSO"
VERSION = 1
KEY_ID_SIZE = 32
TYPE_TAG_SIZE = 4
#: A body larger than this is refused before anything is allocated (256 MiB).
MAX_BODY = 256 * 1024 * 1024
#: RSA-4096 signatures are 512 bytes; nothing larger is accepted.
MAX_SIGNATURE = 512


@dataclass(frozen=True)
class SignedObject:
    signer: bytes  # 32-byte key id: SHA-256 of the signer's DER SubjectPublicKeyInfo
    body: bytes  # exact signed bytes; body[:4] is the type tag
    signature: bytes

    @property
    def type_tag(self) -> bytes:
        return self.body[:TYPE_TAG_SIZE]


def encode(obj: SignedObject) -> bytes:
    if len(obj.body) < TYPE_TAG_SIZE or len(obj.body) > MAX_BODY:
        raise ValueError("a signed body holds at least its 4-byte type tag and at most MAX_BODY bytes")
    if not 0 < len(obj.signature) <= MAX_SIGNATURE:
        raise ValueError("signature length out of range")
    return (
        Writer()
        .header(MAGIC, VERSION)
        .fixed(obj.signer, KEY_ID_SIZE)
        .bytes32(obj.body)
        .bytes16(obj.signature)
        .getvalue()
    )


def decode(data: bytes, what: str = "signed object") -> SignedObject:
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    signer = r.take(KEY_ID_SIZE)
    body = r.bytes32(MAX_BODY)
    if len(body) < TYPE_TAG_SIZE:
        raise r.error("signed body shorter than its type tag")
    signature = r.bytes16(MAX_SIGNATURE)
    if not signature:
        raise r.error("empty signature")
    r.finish()
    return SignedObject(signer=signer, body=body, signature=signature)


def expect_type(obj: SignedObject, tag: bytes, what: str) -> None:
    """Refuse a (verified) body whose type tag is not ``tag``: a keyring is not a manifest."""
    if obj.type_tag != tag:
        raise FormatError(f"{what}: expected a signed {tag!r} object, got type tag {obj.type_tag!r}")
