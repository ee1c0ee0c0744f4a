#!/usr/bin/env python3
"""Make tests/vectors/signed.json and tests/vectors/manifest.json (golden vectors, hex).

Run from the repository root: ``.venv/bin/python tests/vectors/make_manifest_vectors.py``.
Everything is fixed here: the RSA-3072 test key below (a throwaway made for these vectors only,
never used for anything else), every id, time and source. RSA-PSS signatures carry a random salt,
so a fresh signature differs each run; to keep the output byte-for-byte stable the script reuses
the signature already in the vector file when it still verifies over the same body, and signs only
bodies that are new. ``--check`` regenerates in memory and fails if a file would change.

Bad vectors name the error class they expect (``FormatError``, ``IntegrityError``,
``WrongKeyError``) and are built by :func:`raw_body`, which encodes without the encoder's checks.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.primitives import public_key_id, rsa_pss_verify
from crypto.private import rsa_pss_sign
from formats import manifest, signed
from formats._wire import Writer
from formats.errors import IntegrityError
from formats.manifest import Manifest, Statistics, StoredObject

HERE = Path(__file__).resolve().parent

TEST_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIIG/gIBADANBgkqhkiG9w0BAQEFAASCBugwggbkAgEAAoIBgQDQWm09Jf/zUWI2
vgpUZV8eToOMfo0KIQTXF8GJDgUkELz2MSnGsIw162p4uyFFp+kLEmw9oxeC1KlU
ectJJt6qff/PVP/PbKDOwRRzs0roDipjZnoKKVPIcVncUPAuMJG7EHxaAWDRgCY6
JNIc/2+miqx7iz3gMVWhZ3/euiT+HG4BHAtp8LVrZpruF1pIiIyyo0KGzMxUzMUq
YKj3Y68cTFDtUOZAJrVhTjpXa2NobfMtQ44RWt7zmO+DoK3LgxRjNsPaBn+3I43d
udQ8HzIXx2HoZB57QEpE9N5H/w1xIu+1aOfNTzfo4upX5fGLlWIU3xtO0KVQOxmB
l7KbNd80fo66PsK3QTuYbN/Htl7LSHrbui0MnOH81PvtrxybqkdwexTK2HXDdWlZ
s/8ZfNrmqaoLiOryQXJz2lQUv6FkxJVquWW+Y2n3RW00OeAemnVm8znoCF8Bfk1d
AXJA2Tr4u1c7UwHnE1qwLnWtmqOAI8jqvAfLHT4P1bBGOjqMzBsCAwEAAQKCAYAb
S92H51STAhSF63va9rTxeYPOgj3kF9NUgq4+UHHn+bFn56T7fOHBpqf6TTncsFTd
uHop0RYhc88DXDl/yfHeEEfVV+Nzv12J+M2/Irwrjr+K6kAO2L87QW5uaMQuqPpO
sag4+nk+uTVI5M4KMoTkIsLaJLHkj1ISpUahXW2/ROY8ivoL1RdPjM+7ZZ/UZN9Z
//2VP3t9mJ40IRnB33Nvl6f6j2C7Atc8ek02asFJSy5Svcj9CRSwgVbPvdtHEFL8
72W+RYIQdXUR2DWgx4vJGln8kmmUdasMgIs5RSKdELA7536uOGL5MX7qLehr5pgR
5rxacUMaVSlbR0as/X97w4tgAKhCyRe8XAU8HXxvDBNfGy6OT5tZDwl04RMPxR8j
5osoNxeNL4E95lVU8tkaSgtpg90cL6dg79nRfxw0iWih4vDv0iKHnH5V1Zy4hoTe
v/9/LBPHtjoqEpM4t2tt7pl0EWdoJHA2GThnfXJIv9X3QUYwL1IlYli5zGy1eyEC
gcEA6hAa1WT62bnpQsBsDmN+7L+HBMT3V/wVStsliuk1d/B/JMWXO4+Is1kHGZng
YHQCJNJZ4oLvkzs+xC2k0IDhyuUihAvqcihZyNm5KHD5BOL2aOki47TYNz5LleoC
p9HqKUPpgUU7/BlRYKH5kyM2x+6K+16jc8dzS6kLjQQfCBk5Ok1dOTYNu9HkJ3er
vFju+Rc9OA5zLnWmanJcglKEc2Q02x3qkTIy9nLQ9Q3S1vN/3+ardmjzM8hZXLsK
K82pAoHBAOPhd4iPJHDlkn+BYi+bPkUlOJphujlLBQccxWLZ+gRtvBnb8pkNOuE0
fdGuzLd5RexjZKkFNgTJ1lBjYF/IHhzhyC19y1is/gh4kS4v+StWmM6xYpvufRSH
pW7Fo8vi5F+sjYnKkjRlJRwWR0K43y5wh9mBFbMrHdmPmTtQ9K/eEnIHpe0GK/Ab
CwmoyOxEWIjJfmlifLx+IXtzrN9sh7qmhdJvyN+TBtowkRSvllXCiouZ+9zMjYHQ
c7XC+bL+IwKBwGjPy2RRcq86vASDLCAJV9XmMizlkqkYneRGW/pnUeUikZzCymUG
cj11mWNSb5JhgHBCrbNr1KJGfmXU1p/zhqiXkKw2tcZm4UW6kVpVtH0GsTbrZw82
dTfPsoMwJf5GVqgh3BdiDGloYPN3tM25kBdZb2z+xQzcfHmd+iksdkTnHqRH7n3n
AaFgbN1rjkCqRmDOkkBe4B8m2d2C1oAZOWx+q9iO/fIE26NWaNHDXe2ZXmLB5XgB
qR5AEhwfOX/B+QKBwQDKA6yl4M+bTckLQ7W5IlSXk6GUKqKd+8VfQsAxG6+qkWU5
P2TXDYVu88u+QMm2tMmp/4rS043JvOxCo3ZiMtOPIxEEUwobeHBTLh715Q1sv/4C
7fnO5iL4OjAL/SVxr5howF1RE8V8sVWuioltutoPHy8vQGHuTYDOx6A9l0zzQ1jy
wZj0gI4e8rpcO8ayvPwHdyibX/XYW7Bu8mMERgAlFU54+SQIHxzp/DgBMI+DQ0zy
6PUADk48EIEjVs9pQCUCgcEArO9kdviEuLBXgbI521IhlErVCNMbabFhKqnrR7H4
4EeYG5R7noWhzno7KFcVSS8qmLxsJG2ZP8NEtdAcHZZSr3tLncdVKFGZnadQZglG
yboFkajmugAV2asY6GgOYrw8tb2C60VtQfNQqYuto+9/EJd5AbbzwEh1UNkHHZyJ
klKI4lcYzpcFExLKokPPERuQ7t+lQkkLAIVCLYmQQ24wdj1ARL50X+/nOZl+2FCN
SRY++8GikxDS8jmnWe2mF96c
-----END PRIVATE KEY-----

"""


def load_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(TEST_KEY_PEM.encode("ascii"), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


KEY = load_key()
KEY_ID = public_key_id(KEY.public_key())
PUBLIC_PEM = (
    KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode("ascii")
)


def h(label: str) -> bytes:
    """A fixed 32-byte value derived from a label (stands in for ids, hashes, commitments)."""
    return hashlib.sha256(label.encode()).digest()


def backup_id(label: str) -> bytes:
    """A fixed 16-byte backup id derived from a label."""
    return h(label)[:16]


def objects(*labels: str, size: int = 4 * 1024 * 1024) -> tuple[StoredObject, ...]:
    return tuple(sorted((StoredObject(h(x), size + i) for i, x in enumerate(labels)), key=lambda o: o.name))


OBJS_MIN = objects("pack-0", "chunk-index")
OBJS_FULL = objects("pack-0", "pack-1", "pack-2", "chunk-index-2")

MINIMAL = Manifest(
    backup_id=bytes(range(16)),
    account_id=bytes(range(16, 32)),
    host_key_id=KEY_ID,
    time=1_700_000_000,
    previous_manifest_hash=manifest.FIRST_PREVIOUS,
    keyring_version=1,
    data_key_commitment=h("data-commitment"),
    metadata_key_commitment=h("metadata-commitment"),
    tree_root=h("tree-root"),
    tree_root_pack=h("pack-0"),
    chunk_index=h("chunk-index"),
    host_name="web-1",
    sources=(),
    objects=OBJS_MIN,
)
FULL = Manifest(
    backup_id=bytes(range(100, 116)),
    account_id=bytes(range(16, 32)),
    host_key_id=KEY_ID,
    time=1_700_086_400,
    previous_manifest_hash=h("previous signed manifest"),
    keyring_version=7,
    data_key_commitment=h("data-commitment-2"),
    metadata_key_commitment=h("metadata-commitment-2"),
    tree_root=h("tree-root-2"),
    tree_root_pack=h("pack-1"),
    chunk_index=h("chunk-index-2"),
    host_name="db01.example.internal",
    sources=tuple(
        sorted([backup_id("earlier backup a"), backup_id("earlier backup b"), backup_id("earlier backup c")])
    ),
    objects=OBJS_FULL,
    statistics=Statistics(files=12_345, total_bytes=9_876_543_210, added_bytes=12_582_918),
    tags=("daily", "env=prod"),
)


def raw_body(m: Manifest, **over: Any) -> bytes:
    """Encode like manifest.encode but without its checks; ``over`` replaces raw fields."""
    w = Writer().raw(over.get("magic", manifest.MAGIC)).u16(over.get("version", 1))
    w.raw(m.backup_id).raw(m.account_id).raw(m.host_key_id).u64(m.time)
    w.raw(m.previous_manifest_hash).u64(m.keyring_version)
    w.raw(m.data_key_commitment).raw(m.metadata_key_commitment).raw(m.tree_root).raw(m.tree_root_pack)
    w.raw(over.get("chunk_index", m.chunk_index))
    w.u64(m.statistics.files).u64(m.statistics.total_bytes).u64(m.statistics.added_bytes)
    w.bytes16(over.get("host_name", m.host_name.encode()))
    tags = over.get("tags", [t.encode() for t in m.tags])
    w.u8(len(tags))
    for t in tags:
        w.bytes16(t)
    sources = over.get("sources", list(m.sources))
    w.u16(over.get("source_count", len(sources)))
    for src in sources:
        w.raw(src)
    objs = over.get("objects", [(o.name, o.size) for o in m.objects])
    lw = Writer().u32(over.get("object_count", len(objs)))
    for name, size in objs:
        lw.raw(name).u64(size)
    obj_list = lw.getvalue()
    w.raw(obj_list).raw(over.get("root_hash", hashlib.sha256(obj_list).digest()))
    return w.getvalue()


class Signer:
    """Signs bodies, reusing a previous run's signature for the same body if it verifies."""

    def __init__(self, previous: dict[str, str]) -> None:
        self.previous = previous

    def sig(self, body: bytes) -> bytes:
        old = self.previous.get(body.hex())
        if old is not None:
            try:
                rsa_pss_verify(KEY.public_key(), body, bytes.fromhex(old))
                return bytes.fromhex(old)
            except IntegrityError:
                pass
        sig = rsa_pss_sign(KEY, body)
        self.previous[body.hex()] = sig.hex()
        return sig

    def envelope(self, body: bytes, signer: bytes = KEY_ID) -> bytes:
        return signed.encode(signed.SignedObject(signer=signer, body=body, signature=self.sig(body)))


def previous_signatures(path: Path) -> dict[str, str]:
    """body hex -> signature hex from every good signed entry of an existing vector file."""
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    for entry in json.loads(path.read_text(encoding="utf-8")).get("good", []):
        obj = signed.decode(bytes.fromhex(entry.get("signed", entry.get("hex", ""))))
        out[obj.body.hex()] = obj.signature.hex()
    return out


def key_block() -> dict[str, str]:
    return {"private_pem": TEST_KEY_PEM, "public_pem": PUBLIC_PEM, "key_id": KEY_ID.hex()}


def signed_vectors(s: Signer) -> dict[str, Any]:
    body = b"OBMF" + b"\x00\x01" + b"any body: the envelope never parses it"
    good = s.envelope(body)
    sig = s.sig(body)
    env = signed.encode(signed.SignedObject(KEY_ID, body, sig))
    l_off = 38  # u32 body length; body at 42; u16 signature length at 42 + L
    sig_off = 42 + len(body)

    def patch(data: bytes, at: int, new: bytes) -> bytes:
        return data[:at] + new + data[at + len(new) :]

    flipped_sig = patch(env, sig_off + 2 + 100, bytes([env[sig_off + 2 + 100] ^ 1]))
    flipped_body = patch(env, 42 + 10, bytes([env[42 + 10] ^ 0x20]))
    bad = [
        ("empty input", b"", "FormatError", "decode"),
        ("wrong magic", patch(env, 0, b"OBSX"), "FormatError", "decode"),
        ("unsupported version 2", patch(env, 4, b"\x00\x02"), "FormatError", "decode"),
        ("truncated in the signer key id", env[:20], "FormatError", "decode"),
        ("truncated: last signature byte missing", env[:-1], "FormatError", "decode"),
        ("trailing byte", env + b"\x00", "FormatError", "decode"),
        (
            "body length past the end",
            patch(env, l_off, (len(body) + 1000).to_bytes(4, "big")),
            "FormatError",
            "decode",
        ),
        (
            "body length above 256 MiB",
            patch(env, l_off, (signed.MAX_BODY + 1).to_bytes(4, "big")),
            "FormatError",
            "decode",
        ),
        (
            "body shorter than its type tag",
            signed.encode(signed.SignedObject(KEY_ID, b"OBMF", sig))[:38]
            + b"\x00\x00\x00\x03OBM"
            + env[sig_off:],
            "FormatError",
            "decode",
        ),
        ("empty signature", env[:sig_off] + b"\x00\x00", "FormatError", "decode"),
        (
            "signature longer than 512 bytes",
            env[:sig_off] + (513).to_bytes(2, "big") + bytes(513),
            "FormatError",
            "decode",
        ),
        ("signature altered", flipped_sig, "IntegrityError", "verify"),
        ("body altered after signing", flipped_body, "IntegrityError", "verify"),
        ("signer not trusted", patch(env, 6, h("someone else")), "WrongKeyError", "verify"),
        (
            "validly signed, wrong type tag (OBKR where OBMF expected)",
            s.envelope(b"OBKR\x00\x01keyring"),
            "FormatError",
            "verify",
        ),
    ]
    return {
        "description": "Signed objects (docs/spec/signed-object.md). 'decode' vectors fail "
        "formats.signed.decode; 'verify' vectors decode but fail crypto.signing.verify with "
        "trusted = {key_id: key} and type_tag = 'OBMF'.",
        "generator": "tests/vectors/make_manifest_vectors.py",
        "key": key_block(),
        "good": [
            {
                "name": "OBMF type tag, arbitrary body",
                "hex": good.hex(),
                "signer": KEY_ID.hex(),
                "body": body.hex(),
                "signature": sig.hex(),
                "type_tag": "OBMF",
            }
        ],
        "bad": [{"name": n, "hex": d.hex(), "error": e, "stage": st} for n, d, e, st in bad],
    }


def fields(m: Manifest) -> dict[str, Any]:
    return {
        "backup_id": m.backup_id.hex(),
        "account_id": m.account_id.hex(),
        "host_key_id": m.host_key_id.hex(),
        "time": m.time,
        "previous_manifest_hash": m.previous_manifest_hash.hex(),
        "keyring_version": m.keyring_version,
        "data_key_commitment": m.data_key_commitment.hex(),
        "metadata_key_commitment": m.metadata_key_commitment.hex(),
        "tree_root": m.tree_root.hex(),
        "tree_root_pack": m.tree_root_pack.hex(),
        "chunk_index": m.chunk_index.hex(),
        "host_name": m.host_name,
        "sources": [x.hex() for x in m.sources],
        "objects": [[o.name.hex(), o.size] for o in m.objects],
        "statistics": {
            "files": m.statistics.files,
            "total_bytes": m.statistics.total_bytes,
            "added_bytes": m.statistics.added_bytes,
        },
        "tags": list(m.tags),
    }


def manifest_vectors(s: Signer) -> dict[str, Any]:
    m = FULL
    objs = [(o.name, o.size) for o in m.objects]
    srcs = list(m.sources)
    good_body = manifest.encode(m)
    bad_bodies: list[tuple[str, bytes]] = [
        ("empty input", b""),
        ("wrong magic", raw_body(m, magic=b"OBKR")),
        ("unsupported version 2", raw_body(m, version=2)),
        ("truncated: last byte of the root hash missing", good_body[:-1]),
        ("truncated inside the fixed fields", good_body[:100]),
        ("trailing byte", good_body + b"\x00"),
        ("empty host name", raw_body(m, host_name=b"")),
        ("host name with a slash", raw_body(m, host_name=b"../x")),
        ("host name with a control character", raw_body(m, host_name=b"web\x1b[1")),
        ("host name not UTF-8", raw_body(m, host_name=b"web\xff")),
        ("host name longer than 63 bytes", raw_body(m, host_name=b"a" * 64)),
        ("host name with upper case", raw_body(m, host_name=b"Web-1")),
        ("17 tags", raw_body(m, tags=[b"t%02d" % i for i in range(17)])),
        ("tags not sorted", raw_body(m, tags=[b"env=prod", b"daily"])),
        ("duplicate tag", raw_body(m, tags=[b"daily", b"daily"])),
        ("tag with a space", raw_body(m, tags=[b"two words"])),
        ("empty tag", raw_body(m, tags=[b""])),
        ("sources not sorted", raw_body(m, sources=srcs[::-1])),
        ("duplicate source", raw_body(m, sources=[srcs[0], *srcs])),
        ("source names the backup itself", raw_body(m, sources=sorted([*srcs, m.backup_id]))),
        ("source count larger than the bytes that remain", raw_body(m, source_count=0xFFFF)),
        ("no objects", raw_body(m, objects=[])),
        ("object list not sorted", raw_body(m, objects=objs[::-1])),
        ("duplicate object", raw_body(m, objects=[objs[0], *objs])),
        ("object of size zero", raw_body(m, objects=[(objs[0][0], 0), *objs[1:]])),
        (
            "tree root pack not in the object list",
            raw_body(m, objects=[o for o in objs if o[0] != m.tree_root_pack]),
        ),
        (
            "chunk index not in the object list",
            raw_body(m, objects=[o for o in objs if o[0] != m.chunk_index]),
        ),
        ("chunk index is the tree root pack", raw_body(m, chunk_index=m.tree_root_pack)),
        ("one object only", raw_body(m, objects=[o for o in objs if o[0] == m.tree_root_pack])),
        ("object count larger than the bytes that remain", raw_body(m, object_count=1000)),
        ("object count above the limit", raw_body(m, object_count=manifest.MAX_OBJECTS + 1)),
        ("root hash does not match the object list", raw_body(m, root_hash=h("not the list"))),
    ]
    env = s.envelope(good_body)
    body_at = 42

    def flip(at: int) -> bytes:
        return env[:at] + bytes([env[at] ^ 1]) + env[at + 1 :]

    other_host = Manifest(**{**m.__dict__, "host_key_id": h("another host key")})
    bad_signed: list[tuple[str, bytes, str]] = [
        ("signature altered", flip(len(env) - 5), "IntegrityError"),
        ("time altered after signing", flip(body_at + 6 + 16 + 16 + 32 + 7), "IntegrityError"),
        ("object size altered after signing", flip(len(env) - 384 - 2 - 32 - 1), "IntegrityError"),
        ("signer not among the host keys", env[:6] + h("unknown key") + env[38:], "WrongKeyError"),
        (
            "body names another host key than its signer",
            s.envelope(manifest.encode(other_host)),
            "IntegrityError",
        ),
        (
            "validly signed keyring body, not a manifest",
            s.envelope(raw_body(m, magic=b"OBKR")),
            "FormatError",
        ),
        (
            "validly signed but malformed body (objects not sorted)",
            s.envelope(raw_body(m, objects=objs[::-1])),
            "FormatError",
        ),
        ("envelope with a trailing byte", env + b"\x00", "FormatError"),
    ]
    return {
        "description": "Manifests (docs/spec/manifest.md). 'bad_bodies' fail formats.manifest.decode; "
        "'bad_signed' fail crypto.manifest_check.verify_manifest with host_keys = {key_id: key}. "
        "Sources are backup ids derived from labels; wrapped keys are in key envelopes, not here.",
        "generator": "tests/vectors/make_manifest_vectors.py",
        "key": key_block(),
        "good": [
            {
                "name": name,
                "body": manifest.encode(g).hex(),
                "signed": s.envelope(manifest.encode(g)).hex(),
                "root_hash": g.root_hash.hex(),
                "fields": fields(g),
            }
            for name, g in (("first backup, no tags", MINIMAL), ("later backup with tags", FULL))
        ],
        "bad_bodies": [{"name": n, "body": b.hex(), "error": "FormatError"} for n, b in bad_bodies],
        "bad_signed": [{"name": n, "signed": d.hex(), "error": e} for n, d, e in bad_signed],
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    changed = []
    for name, make in (("signed", signed_vectors), ("manifest", manifest_vectors)):
        path = HERE / f"{name}.json"
        prev = previous_signatures(path)
        if path.exists() and name == "manifest":  # bad_signed entries are signed too
            for e in json.loads(path.read_text(encoding="utf-8"))["bad_signed"]:
                try:
                    obj = signed.decode(bytes.fromhex(e["signed"]))
                except Exception:  # noqa: BLE001, S112 - malformed on purpose
                    continue
                prev.setdefault(obj.body.hex(), obj.signature.hex())
        if path.exists() and name == "signed":
            for e in json.loads(path.read_text(encoding="utf-8"))["bad"]:
                try:
                    obj = signed.decode(bytes.fromhex(e["hex"]))
                except Exception:  # noqa: BLE001, S112 - malformed on purpose
                    continue
                prev.setdefault(obj.body.hex(), obj.signature.hex())
        text = json.dumps(make(Signer(prev)), indent=1) + "\n"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            changed.append(path.name)
            if not check:
                path.write_text(text, encoding="utf-8")
    if check and changed:
        print("out of date:", ", ".join(changed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
