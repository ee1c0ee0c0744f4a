"""Accounts and credentials, kept wholly inside the :class:`ObjectStore` (the server is stateless).

Storage keys (every one created with ``put(overwrite=False)`` except a credential revocation):

- ``accounts/<account-id-hex>/account``: JSON account record (name, root public key PEM).
- ``account-names/<name>``: the account id of a name, so that names are unique.
- ``credentials/<sha256(token)-hex>``: JSON credential record (account, scope, id, label, revoked).
- ``credential-ids/<credential-id-hex>``: the token hash of a credential id (for revocation).

A token is 32 random bytes, shown once as unpadded base64url (43 characters). The server keeps only
its SHA-256; a lookup hashes the presented token, reads the record stored under that hash and
compares the stored hash in constant time. A credential id is 8 random bytes: a public handle for
logs and revocation that says nothing about the token.
"""

from __future__ import annotations

import base64
import binascii
import enum
import io
import json
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from crypto.primitives import ct_equal, random_bytes, sha256
from formats.errors import FormatError, NotFoundError, UsageError
from formats.roles import KEY_BITS, Role
from opsbackup.storage.base import ObjectStore

__all__ = [
    "ACCOUNT_ID_SIZE",
    "CREDENTIAL_ID_SIZE",
    "TOKEN_SIZE",
    "Account",
    "Credential",
    "Scope",
    "add_account",
    "authenticate",
    "find_account",
    "get_account",
    "issue_credential",
    "list_accounts",
    "list_credentials",
    "revoke_credential",
]

ACCOUNT_ID_SIZE = 16
TOKEN_SIZE = 32
CREDENTIAL_ID_SIZE = 8
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_HEX32_RE = re.compile(r"[0-9a-f]{32}")
_MAX_LABEL = 200
_MAX_RECORD = 64 * 1024


class Scope(enum.StrEnum):
    """What a credential may do (docs/api.md has the table per endpoint)."""

    HOST = "host"  # append-only: add objects and manifests, read what backup needs
    RESTORE = "restore"  # read everything of the account
    ADMIN = "admin"  # read, add, and replace the keyring


@dataclass(frozen=True)
class Account:
    """One account: its id (16 bytes), unique name and root public key (verifies its keyring)."""

    account_id: bytes
    name: str
    root_public_pem: str
    created: int

    @property
    def root_public_key(self) -> rsa.RSAPublicKey:
        key = load_pem_public_key(self.root_public_pem.encode("ascii"))
        assert isinstance(key, rsa.RSAPublicKey)
        return key


@dataclass(frozen=True)
class Credential:
    """A credential record. ``token_sha256`` is the only trace of the token the server keeps."""

    credential_id: str
    account_id: str
    scope: Scope
    label: str
    created: int
    revoked: bool
    token_sha256: str


def _put_json(store: ObjectStore, key: str, record: dict[str, Any], *, overwrite: bool = False) -> bool:
    data = json.dumps(record, sort_keys=True).encode("utf-8")
    return store.put(key, io.BytesIO(data), overwrite=overwrite)


def _get_json(store: ObjectStore, key: str) -> dict[str, Any]:
    data = store.read(key)
    if len(data) > _MAX_RECORD:
        raise FormatError(f"server record {key} is too large")
    try:
        record = json.loads(data)
    except ValueError:
        raise FormatError(f"server record {key} is not valid JSON") from None
    if not isinstance(record, dict):
        raise FormatError(f"server record {key} is not a JSON object")
    return record


def _account_key(account_id: bytes) -> str:
    return f"accounts/{account_id.hex()}/account"


def add_account(
    store: ObjectStore, name: str, root_public_key: rsa.RSAPublicKey, *, now: int | None = None
) -> Account:
    """Create an account; ``UsageError`` if the name is invalid or taken, or the key is not RSA-4096."""
    if not _NAME_RE.fullmatch(name):
        raise UsageError(f"invalid account name {name[:70]!r}: use a-z, 0-9, '.', '_', '-' (max 63)")
    if not isinstance(root_public_key, rsa.RSAPublicKey) or root_public_key.key_size != KEY_BITS[Role.ROOT]:
        raise UsageError("the root key must be an RSA-4096 public key")
    account_id = random_bytes(ACCOUNT_ID_SIZE)
    if not store.put(f"account-names/{name}", io.BytesIO(account_id.hex().encode("ascii"))):
        raise UsageError(f"an account named {name!r} already exists")
    pem = root_public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    account = Account(account_id, name, pem, int(time.time()) if now is None else now)
    record: dict[str, Any] = {"format": "opsbackup-account/1", "id": account_id.hex(), "name": name}
    record.update({"root_public_key": pem, "created": account.created})
    _put_json(store, _account_key(account_id), record)
    return account


def get_account(store: ObjectStore, account_id: bytes) -> Account:
    """The account with this id; :class:`NotFoundError` if there is none."""
    record = _get_json(store, _account_key(account_id))
    return Account(account_id, str(record["name"]), str(record["root_public_key"]), int(record["created"]))


def find_account(store: ObjectStore, name_or_id: str) -> Account:
    """The account with this name or 32-hex-digit id; :class:`NotFoundError` if there is none."""
    if _NAME_RE.fullmatch(name_or_id) and store.exists(f"account-names/{name_or_id}"):
        return get_account(store, bytes.fromhex(store.read(f"account-names/{name_or_id}").decode("ascii")))
    if _HEX32_RE.fullmatch(name_or_id):
        return get_account(store, bytes.fromhex(name_or_id))
    raise NotFoundError(f"no account named {name_or_id[:70]!r}")


def list_accounts(store: ObjectStore) -> list[Account]:
    """Every account, sorted by id."""
    keys = [k for k in store.list("accounts/") if k.count("/") == 2 and k.endswith("/account")]
    return [get_account(store, bytes.fromhex(k.split("/")[1])) for k in keys]


def _credential_from(record: dict[str, Any]) -> Credential:
    return Credential(
        credential_id=str(record["id"]),
        account_id=str(record["account"]),
        scope=Scope(record["scope"]),
        label=str(record["label"]),
        created=int(record["created"]),
        revoked=bool(record["revoked"]),
        token_sha256=str(record["token_sha256"]),
    )


def issue_credential(
    store: ObjectStore, account: Account, scope: Scope, label: str, *, now: int | None = None
) -> tuple[str, Credential]:
    """A new credential; returns ``(token, record)``. The token is never stored and never shown again."""
    if len(label) > _MAX_LABEL or not label.isprintable():
        raise UsageError(f"a credential label is printable text of at most {_MAX_LABEL} characters")
    raw = random_bytes(TOKEN_SIZE)
    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    digest = sha256(raw).hex()
    cred = Credential(
        credential_id=random_bytes(CREDENTIAL_ID_SIZE).hex(),
        account_id=account.account_id.hex(),
        scope=Scope(scope),
        label=label,
        created=int(time.time()) if now is None else now,
        revoked=False,
        token_sha256=digest,
    )
    if not store.put(f"credential-ids/{cred.credential_id}", io.BytesIO(digest.encode("ascii"))):
        raise UsageError("credential id collision; try again")  # 2^-64: a broken random source
    _put_json(store, f"credentials/{digest}", _record(cred))
    return token, cred


def _record(cred: Credential) -> dict[str, Any]:
    record = asdict(cred)
    record["id"] = record.pop("credential_id")
    record["account"] = record.pop("account_id")
    record["scope"] = str(cred.scope)
    record["format"] = "opsbackup-credential/1"
    return record


def revoke_credential(store: ObjectStore, credential_id: str) -> Credential:
    """Mark a credential revoked (idempotent); :class:`NotFoundError` if the id is unknown."""
    if not re.fullmatch(r"[0-9a-f]{16}", credential_id) or not store.exists(
        f"credential-ids/{credential_id}"
    ):
        raise NotFoundError(f"no credential with id {credential_id[:40]!r}")
    digest = store.read(f"credential-ids/{credential_id}").decode("ascii")
    cred = _credential_from(_get_json(store, f"credentials/{digest}"))
    revoked = Credential(**{**asdict(cred), "revoked": True})
    _put_json(store, f"credentials/{digest}", _record(revoked), overwrite=True)
    return revoked


def list_credentials(store: ObjectStore, account: Account | None = None) -> list[Credential]:
    """Every credential (of ``account``, when given), sorted by account, then id."""
    creds = [_credential_from(_get_json(store, k)) for k in store.list("credentials/")]
    if account is not None:
        creds = [c for c in creds if c.account_id == account.account_id.hex()]
    return sorted(creds, key=lambda c: (c.account_id, c.credential_id))


def authenticate(store: ObjectStore, token: str) -> Credential | None:
    """The live credential this token is, or ``None`` (malformed, unknown or revoked)."""
    if not _TOKEN_RE.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (binascii.Error, ValueError):
        return None
    if len(raw) != TOKEN_SIZE or base64.urlsafe_b64encode(raw).rstrip(b"=") != token.encode("ascii"):
        return None  # one token, one spelling: the unused low bits of the last character must be 0
    digest = sha256(raw).hex()
    try:
        cred = _credential_from(_get_json(store, f"credentials/{digest}"))
    except NotFoundError:
        return None
    if not ct_equal(cred.token_sha256.encode("ascii"), digest.encode("ascii")) or cred.revoked:
        return None
    return cred
