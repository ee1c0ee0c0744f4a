"""The private CA, certificates, renewal, ``server init``/``renew-cert`` and ``server.toml``."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from opsbackup import cli, pki
from opsbackup.errors import ConfigError
from opsbackup.server.config import load_server_config, render_server_toml

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    pki.create_ca(tmp_path / "ca", permitted_dns=["backup.example"], permitted_ips=["10.0.0.5"], now=NOW)
    return tmp_path / "ca"


def test_ca_files_modes_and_extensions(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        files = pki.create_ca(tmp_path / "ca", now=NOW)
    finally:
        os.umask(old)
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.cert.stat().st_mode) & 0o077 == 0o044  # public: world-readable, not writable
    cert = _cert(files.cert)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign
    assert not ku.value.digital_signature
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=3650)
    cert.verify_directly_issued_by(cert)


def test_ca_is_never_overwritten(tmp_path: Path) -> None:
    pki.create_ca(tmp_path / "ca")
    before = (tmp_path / "ca" / "ca-key.pem").read_bytes()
    with pytest.raises(FileExistsError):
        pki.create_ca(tmp_path / "ca")
    assert (tmp_path / "ca" / "ca-key.pem").read_bytes() == before


def test_name_constraints(ca_dir: Path) -> None:
    nc = _cert(ca_dir / "ca.pem").extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    assert nc.value.permitted_subtrees == [
        x509.DNSName("backup.example"),
        x509.IPAddress(ipaddress.ip_network("10.0.0.5/32")),
    ]


def test_server_cert_sans_eku_and_key_mode(ca_dir: Path, tmp_path: Path) -> None:
    files = pki.issue_server_cert(
        ca_dir, tmp_path / "tls", dns_names=["backup.example"], ip_addresses=["10.0.0.5"], now=NOW
    )
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    cert = _cert(files.cert)
    cert.verify_directly_issued_by(_cert(ca_dir / "ca.pem"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["backup.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=397)
    assert cert.not_valid_before_utc < NOW


def test_leaf_never_outlives_the_ca(tmp_path: Path) -> None:
    pki.create_ca(tmp_path / "ca", days=100, now=NOW)
    files = pki.issue_server_cert(
        tmp_path / "ca", tmp_path / "tls", dns_names=["h"], ip_addresses=[], now=NOW
    )
    assert _cert(files.cert).not_valid_after_utc <= _cert(tmp_path / "ca" / "ca.pem").not_valid_after_utc
    with pytest.raises(ConfigError, match="expired"):
        pki.issue_server_cert(
            tmp_path / "ca",
            tmp_path / "tls2",
            dns_names=["h"],
            ip_addresses=[],
            now=NOW + dt.timedelta(days=200),
        )


def test_client_cert(ca_dir: Path, tmp_path: Path) -> None:
    files = pki.issue_client_cert(ca_dir, tmp_path / "client", common_name="host-1", now=NOW)
    cert = _cert(files.cert)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600


def test_bad_inputs(ca_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="IP address"):
        pki.issue_server_cert(ca_dir, tmp_path / "t", dns_names=[], ip_addresses=["10.0.0.300"])
    with pytest.raises(ConfigError, match="at least one"):
        pki.issue_server_cert(ca_dir, tmp_path / "t", dns_names=[], ip_addresses=[])
    other = pki.create_ca(tmp_path / "other")
    (ca_dir / "ca-key.pem").write_bytes(other.key.read_bytes())
    with pytest.raises(ConfigError, match="does not belong"):
        pki.issue_server_cert(ca_dir, tmp_path / "t", dns_names=["h"], ip_addresses=[])


def test_fingerprint_is_sha256_of_der(ca_dir: Path) -> None:
    der = ssl.PEM_cert_to_DER_cert((ca_dir / "ca.pem").read_text())
    fp = pki.fingerprint(ca_dir / "ca.pem")
    assert fp == hashlib.sha256(der).hexdigest()
    assert len(fp) == 64
    assert fp == fp.lower()
    assert ":" not in fp


def test_needs_renewal_with_injected_now(ca_dir: Path, tmp_path: Path) -> None:
    files = pki.issue_server_cert(
        ca_dir, tmp_path / "tls", dns_names=["backup.example"], ip_addresses=[], now=NOW
    )
    assert not pki.needs_renewal(files.cert, now=NOW)
    assert not pki.needs_renewal(files.cert, now=NOW + dt.timedelta(days=366))
    assert pki.needs_renewal(files.cert, now=NOW + dt.timedelta(days=368))
    assert pki.needs_renewal(files.cert, 400, now=NOW)
    assert pki.needs_renewal(files.cert, now=NOW + dt.timedelta(days=500))  # already expired


def test_renewal_keeps_names_and_changes_key(ca_dir: Path, tmp_path: Path) -> None:
    files = pki.issue_server_cert(
        ca_dir, tmp_path / "tls", dns_names=["backup.example"], ip_addresses=["10.0.0.5"], now=NOW
    )
    old_cert, old_key = _cert(files.cert), files.key.read_bytes()
    later = NOW + dt.timedelta(days=380)
    renewed = pki.renew_server_cert(ca_dir, files.cert, files.key, now=later)
    new = _cert(renewed.cert)
    assert new.serial_number != old_cert.serial_number
    assert renewed.key.read_bytes() != old_key
    assert stat.S_IMODE(renewed.key.stat().st_mode) == 0o600
    assert new.not_valid_after_utc == later + dt.timedelta(days=397)
    assert not pki.needs_renewal(renewed.cert, now=later)
    old_san = old_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == old_san
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(renewed.cert, renewed.key)  # a matching pair


# -- opsbackup server init / renew-cert, and server.toml -------------------------------------------


def test_server_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    code = cli.main(
        ["server", "init", str(data), "--name", "localhost", "--ip", "127.0.0.1", "--port", "9443"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"sha256:{pki.fingerprint(data / 'ca' / 'ca.pem')}" in out
    assert str(data / "ca" / "ca.pem") in out
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "ca" / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "tls" / "server-key.pem").stat().st_mode) == 0o600
    config = load_server_config(data / "server.toml")
    assert (config.port, config.host, config.client_ca) == (9443, "0.0.0.0", None)  # noqa: S104
    assert config.cert == data / "tls" / "server.pem"
    assert config.ca_cert == data / "ca" / "ca.pem"
    assert config.storage_backend == "filesystem"
    assert config.storage_root == data / "storage"
    assert config.storage_root.is_dir()
    assert list(config.open_store().list("")) == []
    san = _cert(config.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


def test_server_init_refuses_existing_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "something").write_text("mine")
    assert cli.main(["server", "init", str(data), "--name", "localhost"]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "already exists" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in data.iterdir()) == ["something"]
    assert cli.main(["server", "init", str(tmp_path / "new")]) == 2  # no --name nor --ip


def test_server_init_failure_leaves_nothing(tmp_path: Path) -> None:
    assert cli.main(["server", "init", str(tmp_path / "d"), "--ip", "not-an-ip"]) == ConfigError.exit_code
    assert not (tmp_path / "d").exists()


def test_renew_cert_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert cli.main(["server", "init", str(data), "--ip", "127.0.0.1"]) == 0
    before = pki.fingerprint(data / "tls" / "server.pem")
    assert cli.main(["server", "renew-cert", str(data)]) == 0
    assert "not due" in capsys.readouterr().out
    assert pki.fingerprint(data / "tls" / "server.pem") == before
    assert cli.main(["server", "renew-cert", str(data), "--force"]) == 0
    assert "renewed" in capsys.readouterr().out
    assert pki.fingerprint(data / "tls" / "server.pem") != before
    assert cli.main(["server", "renew-cert", str(tmp_path / "nothing")]) == ConfigError.exit_code


def _write_config(tmp_path: Path, **overrides: str) -> Path:
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    text = render_server_toml(
        host="127.0.0.1", port=8443, cert="c.pem", key="k.pem", ca_cert="ca.pem", storage_root="st"
    )
    for old, new in overrides.items():
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "server.toml").write_text(text)
    return tmp_path / "server.toml"


def test_config_round_trip_and_raw_tables(tmp_path: Path) -> None:
    path = _write_config(tmp_path, **{'root = "st"': 'root = "st"\n\n[audit]\nfsync = true'})
    config = load_server_config(path)
    assert config.storage_root == tmp_path / "st"
    assert config.raw["audit"] == {"fsync": True}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"port = 8443": "port = 0"}, "port must be an integer"),
        ({"port = 8443": 'port = "8443"'}, "port must be an integer"),
        ({'host = "127.0.0.1"': 'hots = "127.0.0.1"'}, "unknown key 'hots'"),
        ({'cert = "c.pem"': 'cert = "missing.pem"'}, "does not exist"),
        ({'backend = "filesystem"': 'backend = "s4"'}, "not one of"),
        ({"[tls]": "[tsl]"}, "missing table"),
        ({"[server]": "[server"}, "not valid TOML"),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_server_config(_write_config(tmp_path, **change))
    assert "\n" not in info.value.message


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="server init"):
        load_server_config(tmp_path / "server.toml")
