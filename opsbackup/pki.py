"""The operator's private CA: create it, issue server and client certificates, detect and renew.

Every client bundles the CA certificate (``ca.pem``) and pins it: the transport trusts nothing
else. Keys are ECDSA P-256 (fast handshakes, small certificates, 128-bit security); private keys
are written atomically with mode 0600 and never overwritten by accident. The CA is restricted to
issuing leaf certificates (``pathLenConstraint`` 0) and, when names are given, carries a critical
``nameConstraints`` extension so that even a stolen CA key cannot mint certificates for anyone
else's names. These are pure functions of their arguments: ``now`` is injectable (UTC) and the
only I/O is reading and writing the named files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crypto.atomic_file import write_atomic
from opsbackup.errors import ConfigError, FormatError, NotFoundError

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "CLIENT_CERT",
    "CLIENT_KEY",
    "SERVER_CERT",
    "SERVER_KEY",
    "CAFiles",
    "ClientCertFiles",
    "ServerCertFiles",
    "create_ca",
    "fingerprint",
    "issue_client_cert",
    "issue_server_cert",
    "needs_renewal",
    "not_valid_after",
    "renew_server_cert",
]

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"
CLIENT_CERT = "client.pem"
CLIENT_KEY = "client-key.pem"
#: Backdating of notBefore, so that a client whose clock is a little behind accepts a fresh cert.
_CLOCK_SKEW = dt.timedelta(minutes=5)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class CAFiles:
    """Where the CA's certificate and private key were written."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ServerCertFiles:
    """Where a server certificate and its private key were written."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ClientCertFiles:
    """Where a client certificate (for mutual TLS) and its private key were written."""

    cert: Path
    key: Path


def _now(now: dt.datetime | None) -> dt.datetime:
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return moment


def _new_key(key_type: str) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"unknown key type {key_type!r}: use 'ec' or 'rsa'")


def _write_key(path: Path, key: PrivateKey, *, overwrite: bool) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(path, pem, 0o600, overwrite=overwrite)


def _write_cert(path: Path, cert: x509.Certificate, *, overwrite: bool) -> None:
    write_atomic(path, cert.public_bytes(serialization.Encoding.PEM), 0o644, overwrite=overwrite)


def _load_cert(path: Path) -> x509.Certificate:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"certificate file {path} does not exist") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise FormatError(f"{path} is not a PEM certificate") from None


def _load_ca(ca_dir: Path) -> tuple[x509.Certificate, PrivateKey]:
    cert = _load_cert(Path(ca_dir) / CA_CERT)
    key_path = Path(ca_dir) / CA_KEY
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError:
        raise NotFoundError(f"CA private key {key_path} does not exist") from None
    except (ValueError, TypeError):
        raise FormatError(f"{key_path} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise FormatError(f"{key_path}: unsupported CA key type")
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise ConfigError(f"CA key {key_path} does not belong to the CA certificate {ca_dir / CA_CERT}")
    return cert, key


def _spki(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _parse_ips(ip_addresses: list[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(ip) for ip in ip_addresses]
    except ValueError as exc:
        raise ConfigError(f"invalid IP address: {exc}") from None


def create_ca(
    directory: Path,
    *,
    common_name: str = "opsbackup private CA",
    days: int = 3650,
    permitted_dns: list[str] | None = None,
    permitted_ips: list[str] | None = None,
    key_type: str = "ec",
    now: dt.datetime | None = None,
) -> CAFiles:
    """Create a self-signed CA in ``directory`` (``ca.pem`` and ``ca-key.pem``, mode 0600).

    With ``permitted_dns``/``permitted_ips`` the CA carries a critical nameConstraints extension
    permitting only those names (and subdomains) and those single addresses. Refuses to replace
    an existing CA (``FileExistsError``).
    """
    moment = _now(now)
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _new_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - _CLOCK_SKEW)
        .not_valid_after(moment + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
    )
    if permitted_dns or permitted_ips:
        subtrees: list[x509.GeneralName] = [x509.DNSName(n) for n in permitted_dns or []]
        subtrees += [x509.IPAddress(ipaddress.ip_network(ip)) for ip in _parse_ips(permitted_ips or [])]
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=subtrees, excluded_subtrees=None), critical=True
        )
    cert = builder.sign(key, hashes.SHA256())
    files = CAFiles(cert=directory / CA_CERT, key=directory / CA_KEY)
    _write_key(files.key, key, overwrite=False)
    _write_cert(files.cert, cert, overwrite=False)
    return files


def _issue_leaf(
    ca_dir: Path,
    *,
    subject_cn: str,
    sans: list[x509.GeneralName],
    eku: x509.ObjectIdentifier,
    days: int,
    key_type: str,
    now: dt.datetime | None,
) -> tuple[x509.Certificate, PrivateKey]:
    moment = _now(now)
    ca_cert, ca_key = _load_ca(ca_dir)
    if moment + dt.timedelta(days=days) > ca_cert.not_valid_after_utc:
        days_left = (ca_cert.not_valid_after_utc - moment).days
        if days_left < 1:
            raise ConfigError(f"the CA certificate {Path(ca_dir) / CA_CERT} has expired: make a new CA")
        days = days_left  # never outlive the CA
    key = _new_key(key_type)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - _CLOCK_SKEW)
        .not_valid_after(moment + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def issue_server_cert(
    ca_dir: Path,
    out_dir: Path,
    *,
    dns_names: list[str],
    ip_addresses: list[str],
    days: int = 397,
    key_type: str = "ec",
    overwrite: bool = False,
    now: dt.datetime | None = None,
) -> ServerCertFiles:
    """Issue a TLS server certificate (EKU serverAuth) for the given names and addresses.

    Writes ``server.pem`` and ``server-key.pem`` (mode 0600) in ``out_dir``. The validity is
    ``days`` (397 by default, the most browsers accept) but never beyond the CA's own.
    """
    if not dns_names and not ip_addresses:
        raise ConfigError("a server certificate needs at least one DNS name or IP address")
    ips = _parse_ips(ip_addresses)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ip) for ip in ips]
    cert, key = _issue_leaf(
        ca_dir,
        subject_cn=dns_names[0] if dns_names else str(ips[0]),
        sans=sans,
        eku=ExtendedKeyUsageOID.SERVER_AUTH,
        days=days,
        key_type=key_type,
        now=now,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = ServerCertFiles(cert=out_dir / SERVER_CERT, key=out_dir / SERVER_KEY)
    # Key first: a reader that sees the new certificate must find its key already in place.
    _write_key(files.key, key, overwrite=overwrite)
    _write_cert(files.cert, cert, overwrite=overwrite)
    return files


def issue_client_cert(
    ca_dir: Path,
    out_dir: Path,
    *,
    common_name: str,
    days: int = 397,
    overwrite: bool = False,
    now: dt.datetime | None = None,
) -> ClientCertFiles:
    """Issue a client certificate (EKU clientAuth) for mutual TLS: ``client.pem``, ``client-key.pem``."""
    cert, key = _issue_leaf(
        ca_dir,
        subject_cn=common_name,
        sans=[],
        eku=ExtendedKeyUsageOID.CLIENT_AUTH,
        days=days,
        key_type="ec",
        now=now,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = ClientCertFiles(cert=out_dir / CLIENT_CERT, key=out_dir / CLIENT_KEY)
    _write_key(files.key, key, overwrite=overwrite)
    _write_cert(files.cert, cert, overwrite=overwrite)
    return files


def fingerprint(cert_path: Path) -> str:
    """SHA-256 of the certificate's DER encoding, as lowercase hex without colons."""
    der = _load_cert(cert_path).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def not_valid_after(cert_path: Path) -> dt.datetime:
    """The certificate's expiry time (UTC)."""
    return _load_cert(cert_path).not_valid_after_utc


def needs_renewal(cert_path: Path, within_days: int = 30, *, now: dt.datetime | None = None) -> bool:
    """True if the certificate expires within ``within_days`` of ``now`` (or already has)."""
    return not_valid_after(cert_path) - _now(now) <= dt.timedelta(days=within_days)


def renew_server_cert(
    ca_dir: Path,
    cert: Path,
    key: Path,
    *,
    days: int = 397,
    now: dt.datetime | None = None,
) -> ServerCertFiles:
    """Replace the server certificate ``cert`` (and ``key``) with a fresh one: new key, same names.

    Each file is replaced atomically, key first; a server picks the new pair up when restarted.
    """
    current = _load_cert(cert)
    try:
        san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise FormatError(f"{cert} has no subjectAltName: cannot renew it") from None
    dns_names = san.get_values_for_type(x509.DNSName)
    ips = [
        ip
        for ip in san.get_values_for_type(x509.IPAddress)
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    ]
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ip) for ip in ips]
    new_cert, new_key = _issue_leaf(
        ca_dir,
        subject_cn=dns_names[0] if dns_names else str(ips[0]),
        sans=sans,
        eku=ExtendedKeyUsageOID.SERVER_AUTH,
        days=days,
        key_type="rsa" if isinstance(current.public_key(), rsa.RSAPublicKey) else "ec",
        now=now,
    )
    files = ServerCertFiles(cert=Path(cert), key=Path(key))
    _write_key(files.key, new_key, overwrite=True)
    _write_cert(files.cert, new_cert, overwrite=True)
    return files
