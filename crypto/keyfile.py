"""Make, save, load and re-protect key files (format: :mod:`formats.keyfile`).

A key file holds one RSA private key or the 32-byte dedup secret. With a passphrase the secret is
sealed with AES-256-GCM under ``Argon2id(NFC(passphrase) as UTF-8, salt, params)``, the AAD being
every byte before the nonce. Without one (KDF none, allowed for host keys and the dedup secret
only) the secret is stored in the clear and the file mode 0600 is its only protection. Files are
written atomically with mode 0600 and never replace an existing key unless asked to. Loading
refuses a file that group or others can access.

Every key file also names the account root it trusts (``root_public_key`` of :func:`save_key`,
RSA-4096; a root key names itself), so a fresh machine with only a key file can pin the root the
keyring must be signed by. The root sits before the nonce: the passphrase seal authenticates it.
"""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from crypto.atomic_file import write_atomic
from crypto.primitives import (
    GCM_NONCE_SIZE,
    KEY_SIZE,
    aes_gcm_decrypt,
    aes_gcm_encrypt,
    public_key_der,
    public_key_id,
    random_bytes,
)
from crypto.private import generate_rsa_key
from crypto.private_file import read_private_file
from formats import keyfile as fmt
from formats.errors import (
    FormatError,
    IntegrityError,
    LocalIOError,
    UsageError,
    WrongPassphraseError,
    WrongRoleError,
)
from formats.roles import KEY_BITS, Role

__all__ = [
    "DEFAULT_PARAMS",
    "MAX_KEY_FILE",
    "TEST_PARAMS",
    "KdfCost",
    "PrivateKey",
    "PublicKeyInfo",
    "change_passphrase",
    "export_public_pem",
    "generate_key",
    "import_public_pem",
    "load_key",
    "load_public",
    "load_trusted_root",
    "save_key",
]

#: A key file larger than this is not read (the largest real one is under 3 KiB).
MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True)
class KdfCost:
    """Argon2id cost: memory in KiB, iterations (passes) and lanes (parallelism)."""

    memory_kib: int
    iterations: int
    lanes: int


#: RFC 9106 section 4, second recommended option: 64 MiB, 3 passes, 4 lanes.
DEFAULT_PARAMS = KdfCost(memory_kib=65536, iterations=3, lanes=4)
#: The cheapest parameters a key file may carry; for tests only.
TEST_PARAMS = KdfCost(memory_kib=fmt.MIN_MEMORY_KIB, iterations=1, lanes=1)


@dataclass(frozen=True, repr=False)
class PrivateKey:
    """The secret of a key file: an RSA private key, or (role dedup) the 32-byte dedup secret."""

    role: Role
    label: str
    rsa_key: rsa.RSAPrivateKey | None = None
    dedup_secret: bytes | None = None
    #: The account root this key file trusts; ``None`` only for a key not yet saved (generate_key).
    trusted_root: rsa.RSAPublicKey | None = None

    def __repr__(self) -> str:
        return f"PrivateKey(role={self.role.label}, label={self.label!r})"

    @property
    def root_public_key(self) -> rsa.RSAPublicKey:
        """The account root public key named by the key file (RSA-4096, canonical DER checked)."""
        if self.trusted_root is None:
            raise ValueError(f"key {self.label!r} was not loaded from a key file: it names no root")
        return self.trusted_root

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        """The RSA private key; :class:`WrongRoleError` for the dedup secret."""
        if self.rsa_key is None:
            raise WrongRoleError(f"key {self.label!r} is the dedup secret, not an RSA key")
        return self.rsa_key

    @property
    def secret(self) -> bytes:
        """The dedup secret; :class:`WrongRoleError` for an RSA key."""
        if self.dedup_secret is None:
            raise WrongRoleError(f"key {self.label!r} holds a {self.role.label} key, not the dedup secret")
        return self.dedup_secret

    @property
    def key_id(self) -> bytes | None:
        """SHA-256 of the DER public key; ``None`` for the dedup secret."""
        return None if self.rsa_key is None else public_key_id(self.rsa_key.public_key())


@dataclass(frozen=True)
class PublicKeyInfo:
    """The clear half of a key file: readable without the passphrase, and not authenticated by it."""

    role: Role
    label: str
    public_key: rsa.RSAPublicKey
    root_public_key: rsa.RSAPublicKey  # the account root the key file names

    @property
    def key_id(self) -> bytes:
        return public_key_id(self.public_key)


def generate_key(role: Role, *, label: str) -> PrivateKey:
    """A fresh key of ``role`` from the OS CSPRNG: RSA of the role's size, or 32 random bytes."""
    if role is Role.DEDUP:
        return PrivateKey(role=role, label=label, dedup_secret=random_bytes(KEY_SIZE))
    return PrivateKey(role=role, label=label, rsa_key=generate_rsa_key(KEY_BITS[role]))


#: Argon2id with several lanes deadlocks when two threads derive at once (cryptography 50 on
#: OpenSSL 3.x, seen here): derivations are serialised. They are rare (one per key file opened).
_ARGON2_LOCK = threading.Lock()


def _derive(passphrase: str, params: fmt.Argon2Params) -> bytes:
    if not passphrase:
        raise UsageError("an empty passphrase is not allowed; omit it only for host keys")
    with _ARGON2_LOCK:
        return _argon2id(passphrase, params)


def _argon2id(passphrase: str, params: fmt.Argon2Params) -> bytes:
    kdf = Argon2id(
        salt=params.salt,
        length=KEY_SIZE,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive(unicodedata.normalize("NFC", passphrase).encode("utf-8"))


def _root_der(key: PrivateKey, root: rsa.RSAPublicKey) -> bytes:
    """The DER of ``root`` after checking it can be the root of ``key`` (ValueError)."""
    if not isinstance(root, rsa.RSAPublicKey) or root.key_size != KEY_BITS[Role.ROOT]:
        raise ValueError(f"the account root public key must be RSA-{KEY_BITS[Role.ROOT]}")
    der = public_key_der(root)
    if key.role is Role.ROOT and (key.rsa_key is None or public_key_der(key.rsa_key.public_key()) != der):
        raise ValueError("a root key file must name its own public key as the account root")
    return der


def _encode(key: PrivateKey, passphrase: str | None, cost: KdfCost, root: rsa.RSAPublicKey) -> bytes:
    if (key.role is Role.DEDUP) != (key.rsa_key is None):
        raise WrongRoleError(f"a {key.role.label} key file cannot hold this kind of key")
    if key.rsa_key is not None:
        if key.rsa_key.key_size != KEY_BITS[key.role]:
            raise WrongRoleError(f"a {key.role.label} key must be RSA-{KEY_BITS[key.role]}")
        secret = key.rsa_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public = public_key_der(key.rsa_key.public_key())
    else:
        secret, public = key.secret, b""
    root_der = _root_der(key, root)
    if passphrase is None:
        if key.role not in fmt.UNPROTECTED_ROLES:
            raise UsageError(
                f"a {key.role.label} key must be protected by a passphrase; "
                "only host keys and the dedup secret may be stored without one"
            )
        kf = fmt.KeyFile(key.role, key.label, root_der, public, fmt.Kdf.NONE, None, b"", secret)
        return fmt.encode(kf)
    params = fmt.Argon2Params(cost.memory_kib, cost.iterations, cost.lanes, random_bytes(fmt.SALT_SIZE))
    if params.problem() is not None:
        raise ValueError(params.problem())
    nonce = random_bytes(GCM_NONCE_SIZE)
    unsealed = fmt.KeyFile(key.role, key.label, root_der, public, fmt.Kdf.ARGON2ID, params, nonce, b"")
    sealed = aes_gcm_encrypt(_derive(passphrase, params), nonce, secret, fmt.sealing_aad(unsealed))
    return fmt.encode(
        fmt.KeyFile(key.role, key.label, root_der, public, fmt.Kdf.ARGON2ID, params, nonce, sealed)
    )


def save_key(
    path: Path,
    key: PrivateKey,
    passphrase: str | None,
    *,
    root_public_key: rsa.RSAPublicKey,
    cost: KdfCost = DEFAULT_PARAMS,
    overwrite: bool = False,
) -> None:
    """Write ``key`` to ``path`` atomically, mode 0600; refuse to replace an existing file.

    ``root_public_key`` is the account root the file will name (RSA-4096; for a root key, its own
    public key: ValueError otherwise). ``passphrase=None`` stores the secret in the clear (KDF
    none), for host keys and the dedup secret only. An existing ``path`` raises
    :class:`LocalIOError` unless ``overwrite``.
    """
    data = _encode(key, passphrase, cost, root_public_key)
    try:
        write_atomic(Path(path), data, 0o600, overwrite=overwrite)
    except FileExistsError:
        raise LocalIOError(
            f"key file {path} already exists: refusing to overwrite a key; move it away first"
        ) from None
    except OSError as exc:
        raise LocalIOError(f"cannot write key file {path}: {exc.strerror or exc}") from None


def _read(path: Path, *, check_mode: bool) -> fmt.KeyFile:
    data = read_private_file(path, "key file", MAX_KEY_FILE, check_mode=check_mode)
    return fmt.decode(data, f"key file {path}")


def _check_role(kf: fmt.KeyFile, path: Path, expect_role: Role | None) -> None:
    if expect_role is not None and kf.role is not expect_role:
        raise WrongRoleError(
            f"key file {path} holds a {kf.role.label} key; a {expect_role.label} key is needed"
        )


def _public_key(der: bytes, role: Role, path: Path, what: str = "public key") -> rsa.RSAPublicKey:
    """Parse a stored public key: RSA of the role's size, in its one canonical DER (FormatError)."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise FormatError(f"key file {path} is corrupt: its {what} cannot be parsed") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != KEY_BITS[role]:
        raise FormatError(f"key file {path} is corrupt: its {what} must be RSA-{KEY_BITS[role]}")
    if public_key_der(key) != der:
        raise FormatError(f"key file {path} is corrupt: its {what} is not in canonical DER")
    return key


def _root(kf: fmt.KeyFile, path: Path) -> rsa.RSAPublicKey:
    return _public_key(kf.root_public_der, Role.ROOT, path, "account root public key")


def load_key(path: Path, passphrase: str | None, *, expect_role: Role | None = None) -> PrivateKey:
    """Open a key file. ``passphrase`` is ignored for a KDF-none file.

    Raises :class:`KeyPermissionError` (group/other access), :class:`WrongRoleError`,
    :class:`WrongPassphraseError`, :class:`FormatError` (truncated or corrupt),
    :class:`NotFoundError` or :class:`LocalIOError`.
    """
    path = Path(path)
    kf = _read(path, check_mode=True)
    _check_role(kf, path, expect_role)
    if kf.kdf is fmt.Kdf.NONE:
        secret = kf.secret
    else:
        assert kf.params is not None
        if passphrase is None:
            raise WrongPassphraseError(f"key file {path} is protected by a passphrase, and none was given")
        try:
            secret = aes_gcm_decrypt(_derive(passphrase, kf.params), kf.nonce, kf.secret, fmt.sealing_aad(kf))
        except IntegrityError:
            raise WrongPassphraseError(f"wrong passphrase for key file {path}") from None
    root = _root(kf, path)
    if kf.role is Role.DEDUP:
        return PrivateKey(role=kf.role, label=kf.label, dedup_secret=secret, trusted_root=root)
    try:
        # OpenSSL's RSA key check (primality of p and q, CRT consistency) costs about 0.3 s for
        # RSA-4096, a tenth of a small restore. It guards against a key file crafted to yield
        # faulty signatures; a passphrase-sealed secret was just authenticated by AES-GCM, so only
        # the holder of the passphrase could have crafted it: the check is skipped for those only.
        key = serialization.load_der_private_key(
            secret, password=None, unsafe_skip_rsa_key_validation=kf.kdf is not fmt.Kdf.NONE
        )
    except (ValueError, UnsupportedAlgorithm):
        raise FormatError(f"key file {path} is corrupt: its private key cannot be parsed") from None
    if not isinstance(key, rsa.RSAPrivateKey) or public_key_der(key.public_key()) != kf.public_der:
        raise FormatError(f"key file {path} is corrupt: its private key does not match its public key")
    _public_key(kf.public_der, kf.role, path)
    return PrivateKey(role=kf.role, label=kf.label, rsa_key=key, trusted_root=root)


def load_public(path: Path, *, expect_role: Role | None = None) -> PublicKeyInfo:
    """Read the public half of an RSA key file without the passphrase (no permission check)."""
    path = Path(path)
    kf = _read(path, check_mode=False)
    _check_role(kf, path, expect_role)
    if kf.role is Role.DEDUP:
        raise WrongRoleError(f"key file {path} holds the dedup secret, which has no public key")
    return PublicKeyInfo(
        role=kf.role,
        label=kf.label,
        public_key=_public_key(kf.public_der, kf.role, path),
        root_public_key=_root(kf, path),
    )


def load_trusted_root(path: Path) -> rsa.RSAPublicKey:
    """The account root public key that any key file (dedup secret included) names; no passphrase.

    Like :func:`load_public`, this reads the clear half, which only the passphrase seal (read by
    :func:`load_key`) authenticates.
    """
    path = Path(path)
    return _root(_read(path, check_mode=False), path)


def change_passphrase(
    path: Path, old: str | None, new: str | None, *, cost: KdfCost = DEFAULT_PARAMS
) -> None:
    """Re-seal the key file at ``path`` under ``new`` (fresh salt and nonce), replacing it atomically."""
    key = load_key(path, old)
    data = _encode(key, new, cost, key.root_public_key)
    try:
        write_atomic(Path(path), data, 0o600, overwrite=True)
    except OSError as exc:
        raise LocalIOError(f"cannot write key file {path}: {exc.strerror or exc}") from None


def export_public_pem(key: rsa.RSAPublicKey) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo), for sharing and for OpenSSL."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def import_public_pem(data: bytes) -> rsa.RSAPublicKey:
    """Parse a PEM public key; anything but an RSA-3072 or RSA-4096 key is a ``FormatError``."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise FormatError("not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size not in (3072, 4096):
        raise FormatError("the PEM public key is not an RSA-3072 or RSA-4096 key")
    return key
