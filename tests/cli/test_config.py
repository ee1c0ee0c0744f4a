"""The client configuration file: strict tables, relative paths, the pinned root, credential modes.

Every load failure reaches the user as one line and exit code 4 (ConfigError) through the real
CLI; a group-readable credential file is refused with "chmod 600" (exit 12).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyfile import export_public_pem
from crypto.primitives import public_key_id
from opsbackup.client.config import load_config, parse_fingerprint, read_credential
from opsbackup.errors import ConfigError, KeyPermissionError
from tests.cli._run import run

TOKEN = "A" * 43


@pytest.fixture
def conf_dir(tmp_path: Path, rsa4096: rsa.RSAPrivateKey) -> Path:
    d = tmp_path / "etc"
    d.mkdir()
    (d / "root.pub.pem").write_bytes(export_public_pem(rsa4096.public_key()))
    (d / "credential").write_text(TOKEN + "\n")
    (d / "credential").chmod(0o600)
    (d / "ca.pem").write_text("not needed to load the config\n")
    return d


def good_config(rsa4096: rsa.RSAPrivateKey, *, extra: str = "", fingerprint: str | None = None) -> str:
    fp = fingerprint or public_key_id(rsa4096.public_key()).hex()
    return f"""
[server]
url = "https://backup.example.org:8443"
ca_file = "ca.pem"
credential_file = "credential"

[account]
root_key_file = "root.pub.pem"
root_fingerprint = "{fp}"

[host]
name = "web1"
key_file = "host.key"
dedup_file = "dedup.key"
cache_dir = "/var/cache/opsbackup"

[backup]
paths = ["/etc", "srv"]
exclude = ["*.tmp"]
one_file_system = true

[keys]
dir = "keys"
{extra}
"""


def test_a_full_config_loads_with_paths_relative_to_its_directory(
    conf_dir: Path, rsa4096: rsa.RSAPrivateKey
) -> None:
    path = conf_dir / "config.toml"
    path.write_text(good_config(rsa4096))
    config = load_config(path)
    assert config.need_server().ca_file == conf_dir / "ca.pem"
    assert config.need_server().credential_file == conf_dir / "credential"
    assert config.need_host().cache_dir == Path("/var/cache/opsbackup")
    assert config.need_host().state_file is None
    assert config.backup.paths == (Path("/etc"), conf_dir / "srv")
    assert config.backup.exclude == ("*.tmp",)
    assert config.backup.one_file_system is True
    assert config.keys is not None
    assert config.keys.dir == conf_dir / "keys"
    assert public_key_id(config.need_account().root_public_key) == public_key_id(rsa4096.public_key())
    assert read_credential(config.need_server().credential_file) == TOKEN


def one_line_exit_4(args: list[str | Path], *needles: str) -> None:
    done = run(args)
    assert done.code == 4, done
    assert done.err.count("\n") == 1, done.err
    assert done.err.startswith("opsbackup: error: "), done.err
    for needle in needles:
        assert needle in done.err, done.err


def test_an_unknown_table_is_an_error(conf_dir: Path, rsa4096: rsa.RSAPrivateKey) -> None:
    path = conf_dir / "config.toml"
    path.write_text(good_config(rsa4096, extra="[backups]\npaths = []\n"))
    with pytest.raises(ConfigError):
        load_config(path)
    one_line_exit_4(["snapshots", "--config", path], "unknown table", "'backups'")


def test_a_misspelled_key_is_an_error_not_a_silent_default(
    conf_dir: Path, rsa4096: rsa.RSAPrivateKey
) -> None:
    path = conf_dir / "config.toml"
    path.write_text(good_config(rsa4096).replace("one_file_system = true", "one_file_sytem = true"))
    needles = ("unknown key", "'one_file_sytem'", "[backup]")
    one_line_exit_4(["snapshots", "--config", path], *needles)
    one_line_exit_4(["backup", "--config", path], *needles)


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    one_line_exit_4(["snapshots", "--config", tmp_path / "nope.toml"], "does not exist")
    one_line_exit_4(["check", "--config", tmp_path / "nope.toml"], "does not exist")


def test_the_config_comes_from_the_environment_too(tmp_path: Path) -> None:
    done = run(["snapshots"], env={"OPSBACKUP_CONFIG": str(tmp_path / "from-env.toml")})
    assert done.code == 4
    assert "from-env.toml does not exist" in done.err


def test_a_wrong_root_fingerprint_is_refused(conf_dir: Path, rsa4096: rsa.RSAPrivateKey) -> None:
    path = conf_dir / "config.toml"
    path.write_text(good_config(rsa4096, fingerprint="ab" * 32))
    one_line_exit_4(["snapshots", "--config", path], "fingerprint", "not the configured")


def test_a_replaced_root_key_file_is_refused(
    conf_dir: Path, rsa4096: rsa.RSAPrivateKey, rsa3072: rsa.RSAPrivateKey
) -> None:
    path = conf_dir / "config.toml"
    path.write_text(good_config(rsa4096))
    (conf_dir / "root.pub.pem").write_bytes(export_public_pem(rsa3072.public_key()))
    one_line_exit_4(["snapshots", "--config", path], "RSA-3072", "not RSA-4096")


def test_invalid_toml_and_wrong_types_are_one_line(conf_dir: Path, rsa4096: rsa.RSAPrivateKey) -> None:
    path = conf_dir / "config.toml"
    path.write_text("[server\nurl = 1\n")
    one_line_exit_4(["snapshots", "--config", path], "not valid TOML")
    path.write_text(good_config(rsa4096).replace('paths = ["/etc", "srv"]', 'paths = "/etc"'))
    one_line_exit_4(["snapshots", "--config", path], "[backup] paths must be a list")
    path.write_text(good_config(rsa4096).replace("https://backup", "http://backup"))
    one_line_exit_4(["snapshots", "--config", path], "https://")
    path.write_text(good_config(rsa4096).replace('name = "web1"\n', ""))
    one_line_exit_4(["snapshots", "--config", path], "[host] needs 'name'")


@pytest.mark.parametrize("text", ["ab" * 32, "sha256:" + "AB" * 32, ":".join(["ab"] * 32)])
def test_fingerprint_spellings(text: str) -> None:
    assert parse_fingerprint(text, "here") == b"\xab" * 32


def test_a_group_readable_credential_is_refused(conf_dir: Path, rsa4096: rsa.RSAPrivateKey) -> None:
    (conf_dir / "credential").chmod(0o640)
    with pytest.raises(KeyPermissionError, match="chmod 600"):
        read_credential(conf_dir / "credential")
    path = conf_dir / "config.toml"
    path.write_text(good_config(rsa4096))
    done = run(["snapshots", "--config", path])
    assert done.code == 12, done
    assert "chmod 600" in done.err
    assert done.err.count("\n") == 1


def test_a_credential_file_must_hold_one_token(tmp_path: Path) -> None:
    cred = tmp_path / "cred"
    cred.write_text("two words\n")
    cred.chmod(0o600)
    with pytest.raises(ConfigError, match="one credential token"):
        read_credential(cred)
    cred.write_text("")
    with pytest.raises(ConfigError, match="one credential token"):
        read_credential(cred)


def test_read_commands_without_any_config_say_what_to_give(tmp_path: Path) -> None:
    done = run(["snapshots", "--server", "https://127.0.0.1:1"])
    assert done.code == 2, done
    assert "--ca" in done.err
    assert "--credential-file" in done.err
