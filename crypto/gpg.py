"""OpenPGP recipients (wrapped-key kind 2): wrap per-backup keys with gpg, unwrap through gpg-agent.

A data or browse recipient may be an OpenPGP key, typically held on a smartcard, named by its full
fingerprint. Its keyring entry carries the minimal binary export of the public key; the key id is
the SHA-256 of exactly those bytes. Wrapping runs gpg in a private temporary GNUPGHOME that holds
only the pinned public keys (:class:`PinnedKeys`); unwrapping runs gpg in the user's GNUPGHOME so
that gpg-agent (and its pinentry, for a smartcard PIN) does the private-key operation.

The gpg plaintext binds role and backup like the RSA OAEP label does::

    "opsbackup/v1/wrap/" || u8 role || backup id (16) || key (32)      (67 bytes)

Byte-level spec: docs/spec/openpgp-recipient.md. Key material only ever travels on gpg's stdin and
stdout, never on a command line or in a log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from crypto import _gpg_run as run
from crypto.wrap import LABEL_PREFIX, oaep_label
from formats.errors import FormatError, IntegrityError, KeyUnusableError, WrongKeyError, WrongPassphraseError
from formats.roles import Role
from formats.wrapped_key import BACKUP_ID_SIZE, MAX_OPENPGP_WRAPPED

__all__ = [
    "OPENPGP_KIND",
    "PLAINTEXT_PREFIX",
    "PLAINTEXT_SIZE",
    "OpenPgpKey",
    "PinnedKeys",
    "export_public_key",
    "inspect_public_key",
    "openpgp_key_id",
    "unwrap",
]

OPENPGP_KIND = 2
PLAINTEXT_PREFIX = LABEL_PREFIX  # the plaintext starts with the OAEP label of the RSA wrap
KEY_SIZE = 32
PLAINTEXT_SIZE = len(PLAINTEXT_PREFIX) + 1 + BACKUP_ID_SIZE + KEY_SIZE  # 67
_FINGERPRINT = re.compile(r"[0-9A-F]{40}")
_RSA_ALGOS = frozenset({"1", "2", "3"})
_ECC_ALGOS = frozenset({"18", "19", "22"})
_CURVES = frozenset({"ed25519", "cv25519", "ed448", "cv448", "nistp384", "nistp521"})
_UNUSABLE = frozenset({"i", "d", "r", "e"})  # invalid, disabled, revoked, expired
# libgpg-error codes: bad passphrase, no secret key, canceled, fully canceled, bad PIN, no pinentry
_BAD_PASSPHRASE, _NO_SECKEY, _CANCELED, _FULLY_CANCELED = 11, 17, 99, 198
_BAD_PIN, _NO_PIN_ENTRY = 87, 85
_AES256 = "9"
_MDC = "2"


@dataclass(frozen=True)
class OpenPgpKey:
    """What gpg says about an exported public key (for checks and for display)."""

    fingerprint: str  # primary key, 40 upper-case hex digits
    algorithm: str  # "RSA-4096", "ed25519", ...
    user_ids: tuple[str, ...]
    encryption_subkey: str  # fingerprint of the subkey every wrap is encrypted to
    encryption_algorithm: str  # "RSA-4096", "cv25519", ...

    @property
    def encryption_key_id(self) -> bytes:
        """The 8-byte OpenPGP key id that a message to the encryption subkey names."""
        return bytes.fromhex(self.encryption_subkey[-16:])


def openpgp_key_id(public_key: bytes) -> bytes:
    """The recipient key id of kind 2: SHA-256 of the exact exported public key bytes."""
    return hashlib.sha256(public_key).digest()


def _algorithm(info: dict[str, Any], what: str) -> str:
    algo, length, curve = info.get("algo", ""), info.get("length", ""), info.get("curve", "")
    if algo in _RSA_ALGOS and length.isdigit() and int(length) >= 3072:
        return f"RSA-{length}"
    if algo in _ECC_ALGOS and curve in _CURVES:
        return str(curve)
    shown = f"RSA-{length}" if algo in _RSA_ALGOS else (curve or f"algorithm {algo}")
    raise FormatError(
        f"the {what} of this OpenPGP key is {shown}: use RSA-3072 or larger, Curve25519, Ed448 "
        "or NIST P-384/P-521"
    )


def _usable(info: dict[str, Any]) -> bool:
    expires = info.get("expires", "")
    return info.get("trust", "") not in _UNUSABLE and not (expires.isdigit() and int(expires) <= time.time())


def inspect_public_key(public_key: bytes) -> OpenPgpKey:
    """Parse one exported public key with gpg in a throwaway GNUPGHOME; refuse what cannot be used.

    Exactly one primary key, not revoked or expired, of an accepted algorithm, with at least one
    usable encryption subkey of an accepted algorithm (the newest one is chosen). ``FormatError``
    otherwise.
    """
    run.check_key_packets(public_key)
    home = run.make_home()
    try:
        found = list(run.client(home, isolated=True).scan_keys_mem(public_key))
    finally:
        run.kill_agents(home)
        shutil.rmtree(home, ignore_errors=True)
    if len(found) != 1 or found[0].get("type") != "pub":
        raise FormatError(f"an OpenPGP recipient must be exactly one public key, gpg found {len(found)}")
    key = found[0]
    if not _usable(key):
        raise FormatError(f"OpenPGP key {key.get('fingerprint')} is revoked, expired or invalid")
    algorithm = _algorithm(key, "primary key")
    candidates = []
    for keyid, _, fpr, *_rest in key.get("subkeys", []):
        info = key.get("subkey_info", {}).get(keyid, {})
        if "e" in info.get("cap", "") and _usable(info):
            candidates.append((int(info.get("date") or 0), str(fpr), info))
    if not candidates:
        raise FormatError(f"OpenPGP key {key.get('fingerprint')} has no usable encryption subkey")
    _, subkey, info = max(candidates, key=lambda c: (c[0], c[1]))
    return OpenPgpKey(
        fingerprint=str(key["fingerprint"]),
        algorithm=algorithm,
        user_ids=tuple(str(u) for u in key.get("uids", [])),
        encryption_subkey=subkey,
        encryption_algorithm=_algorithm(info, "encryption subkey"),
    )


def _full_fingerprint(fingerprint: str) -> str:
    fpr = "".join(fingerprint.split()).upper()
    if not _FINGERPRINT.fullmatch(fpr):
        raise FormatError(
            f"{fingerprint!r} is not a full OpenPGP fingerprint: give all 40 hex digits "
            "(`gpg --fingerprint` shows them), not a short key id, a name or an email address"
        )
    return fpr


def export_public_key(fingerprint: str, *, gnupghome: str | None) -> bytes:
    """The minimal binary export of exactly the key with this full fingerprint from the user's home."""
    fpr = _full_fingerprint(fingerprint)
    exported = run.client(gnupghome, isolated=False).export_keys([fpr], armor=False, minimal=True)
    if not isinstance(exported, bytes) or not exported:
        raise WrongKeyError(f"no OpenPGP key {fpr} in {gnupghome or 'the default GNUPGHOME'}")
    key = inspect_public_key(exported)
    if key.fingerprint != fpr:
        raise FormatError(f"{fpr} is a subkey of {key.fingerprint}: give the primary key's fingerprint")
    return exported


def _plaintext_prefix(role: int, backup_id: bytes) -> bytes:
    """What the plaintext binds: the very bytes of the RSA wrap's OAEP label (``crypto.wrap``)."""
    return oaep_label(Role(role), backup_id)


class PinnedKeys:
    """A private temporary GNUPGHOME holding only the given public keys, for wrapping.

    Use as a context manager; the home (mode 0700, short path) is removed at exit. No agent is
    started for it, and nothing of the user's ``~/.gnupg`` or ``$GNUPGHOME`` is read.
    """

    def __init__(self, public_keys: Iterable[bytes]) -> None:
        self._exports = list(public_keys)
        self._keys: dict[bytes, OpenPgpKey] = {}
        self._home: str | None = None

    @property
    def home(self) -> str:
        if self._home is None:
            raise RuntimeError("PinnedKeys is used outside its with block")
        return self._home

    def __enter__(self) -> PinnedKeys:
        keys = {openpgp_key_id(exp): (exp, inspect_public_key(exp)) for exp in self._exports}
        self._home = run.make_home()
        try:
            gpg = run.client(self._home, isolated=True)
            for exp, key in keys.values():
                result = gpg.import_keys(exp)
                if list(result.fingerprints) != [key.fingerprint]:
                    raise FormatError(f"gpg did not import OpenPGP key {key.fingerprint} as inspected")
            held = {k["fingerprint"] for k in gpg.list_keys()}
            if held != {key.fingerprint for _, key in keys.values()}:
                raise FormatError("the pinned GNUPGHOME holds other keys than the pinned ones")
        except BaseException:
            self.close()
            raise
        self._keys = {kid: key for kid, (_, key) in keys.items()}
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop any agent of the home (none should run) and remove it."""
        if self._home is not None:
            run.kill_agents(self._home)
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def wrap(self, key32: bytes, *, role: int, backup_id: bytes, recipient: bytes) -> bytes:
        """Encrypt ``key32`` bound to ``role`` and ``backup_id`` to one pinned ``recipient``."""
        if len(key32) != KEY_SIZE:
            raise ValueError(f"a per-backup key is {KEY_SIZE} bytes")
        plaintext = _plaintext_prefix(role, backup_id) + key32
        key = self._keys.get(openpgp_key_id(recipient))
        if key is None:
            raise WrongKeyError("this OpenPGP recipient is not one of the pinned keys")
        gpg = run.client(self.home, isolated=True)
        result = gpg.encrypt(
            plaintext,
            [key.encryption_subkey + "!"],
            always_trust=True,
            armor=False,
            extra_args=["--compress-algo", "none", "--cipher-algo", "AES256"],
        )
        wrapped = result.data
        if not result.ok or not isinstance(wrapped, bytes):
            raise KeyUnusableError(
                f"gpg could not encrypt to {key.fingerprint}: {run.last_gpg_line(result.stderr)}"
            )
        run.check_message(wrapped, key.encryption_key_id)
        if not 1 <= len(wrapped) <= MAX_OPENPGP_WRAPPED:
            raise FormatError(f"gpg produced {len(wrapped)} wrapped bytes, more than {MAX_OPENPGP_WRAPPED}")
        return wrapped


def _decryption_error(key: OpenPgpKey, status: list[tuple[str, list[str]]], stderr: str) -> Exception:
    codes = run.error_codes(status)
    keywords = {kw for kw, _ in status}
    why = run.last_gpg_line(stderr)
    if _BAD_PASSPHRASE in codes or _BAD_PIN in codes or "BAD_PASSPHRASE" in keywords:
        return WrongPassphraseError(f"wrong passphrase or PIN for OpenPGP key {key.fingerprint} ({why})")
    if codes & {_CANCELED, _FULLY_CANCELED, _NO_PIN_ENTRY}:
        return KeyUnusableError(
            f"the passphrase or PIN entry for OpenPGP key {key.fingerprint} was cancelled"
        )
    if _NO_SECKEY in codes or "NO_SECKEY" in keywords:
        return WrongKeyError(
            f"the secret key of OpenPGP key {key.fingerprint} is not in this GNUPGHOME "
            "(insert its smartcard, or check `gpg --card-status` and `gpg -K`)"
        )
    return IntegrityError(f"gpg could not decrypt the OpenPGP wrapped key: {why}")


def _check_status(key: OpenPgpKey, status: list[tuple[str, list[str]]]) -> None:
    enc_to = [args[0].upper() for kw, args in status if kw == "ENC_TO" and args]
    if enc_to != [key.encryption_subkey[-16:]]:
        raise IntegrityError("gpg reports the wrapped key was not encrypted to the recipient's subkey alone")
    for kw, args in status:
        if kw == "DECRYPTION_KEY" and (not args or args[0].upper() != key.encryption_subkey):
            raise IntegrityError("gpg decrypted the wrapped key with another key than the recipient's")
        if kw == "DECRYPTION_INFO" and (
            len(args) < 2 or args[1] != _AES256 or (args[0] != _MDC and (len(args) < 3 or args[2] == "0"))
        ):
            raise IntegrityError("the OpenPGP wrapped key is not AES-256 with integrity protection")
        if kw in {"BADMDC", "DECRYPTION_FAILED"}:
            raise IntegrityError("gpg reports the OpenPGP wrapped key failed its integrity check")
    keywords = [kw for kw, _ in status]
    if "DECRYPTION_OKAY" not in keywords or "DECRYPTION_INFO" not in keywords:
        raise IntegrityError("gpg did not confirm the OpenPGP wrapped key decrypted intact")


def unwrap(
    wrapped: bytes,
    *,
    role: int,
    backup_id: bytes,
    recipient_public_key: bytes,
    gnupghome: str | None,
    passphrase: str | None = None,
) -> bytes:
    """Decrypt ``wrapped`` through the user's gpg-agent and return the 32-byte per-backup key.

    ``gnupghome`` is the user's home holding the secret key or its smartcard stub (``None``: gpg's
    default). ``passphrase`` is for tests and scripted use only (loopback pinentry); without it the
    agent asks through its pinentry, as a smartcard PIN needs. The message framing is checked
    before gpg runs; gpg's status must show one recipient, the expected subkey, AES-256 with
    integrity protection; the plaintext must be 67 bytes with the expected role and backup id.
    """
    expected = _plaintext_prefix(role, backup_id)
    key = inspect_public_key(recipient_public_key)
    run.check_message(wrapped, key.encryption_key_id)
    if passphrase is not None and ("\n" in passphrase or "\r" in passphrase):
        raise WrongPassphraseError("a passphrase cannot contain a line break")
    gpg = run.client(gnupghome, isolated=False)
    out = bytearray()

    def collect(chunk: bytes) -> bool:  # keep at most one byte past the size, whatever gpg emits
        if len(out) <= PLAINTEXT_SIZE:
            out.extend(chunk[: PLAINTEXT_SIZE + 1 - len(out)])
        return False

    gpg.on_data = collect
    result = gpg.decrypt(wrapped, passphrase=passphrase)
    status = run.statuses(result.stderr)
    if not result.ok or result.returncode != 0:
        raise _decryption_error(key, status, result.stderr)
    _check_status(key, status)
    plaintext = bytes(out)
    out[:] = bytes(len(out))
    if len(plaintext) != PLAINTEXT_SIZE:
        raise IntegrityError(f"the OpenPGP wrapped key holds {len(plaintext)} bytes, not {PLAINTEXT_SIZE}")
    if not hmac.compare_digest(plaintext[: len(expected)], expected):
        raise IntegrityError(
            "this OpenPGP wrapped key is bound to another role or backup: the record was moved"
        )
    return plaintext[len(expected) :]
