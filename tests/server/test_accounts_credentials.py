"""Accounts and credentials in the store, and the management CLI commands with their exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from formats.errors import NotFoundError, UsageError
from opsbackup import cli
from opsbackup.server.accounts import (
    Scope,
    add_account,
    authenticate,
    find_account,
    issue_credential,
    list_credentials,
    revoke_credential,
)
from opsbackup.server.audit_log import AuditLog, entry_key
from opsbackup.storage.filesystem import FilesystemStore
from tests.server._support import MemoryStore


def test_tokens_are_stored_only_as_hashes(rsa4096: rsa.RSAPrivateKey) -> None:
    store = MemoryStore()
    account = add_account(store, "acme", rsa4096.public_key())
    token, cred = issue_credential(store, account, Scope.HOST, "web1")
    assert len(token) == 43
    assert authenticate(store, token) == cred
    everything = b"".join(store.read(k) for k in store.list(""))
    assert token.encode() not in everything
    assert find_account(store, "acme") == find_account(store, account.account_id.hex()) == account
    # wrong, malformed and non-canonical tokens
    assert authenticate(store, token[:-1] + ("A" if token[-1] != "A" else "Q")) is None
    assert authenticate(store, "x") is None
    assert authenticate(store, token + "=") is None
    revoke_credential(store, cred.credential_id)
    assert authenticate(store, token) is None
    assert list_credentials(store, account)[0].revoked


def test_account_rules(rsa4096: rsa.RSAPrivateKey, rsa3072: rsa.RSAPrivateKey) -> None:
    store = MemoryStore()
    add_account(store, "acme", rsa4096.public_key())
    with pytest.raises(UsageError, match="already exists"):
        add_account(store, "acme", rsa4096.public_key())
    with pytest.raises(UsageError, match="RSA-4096"):
        add_account(store, "other", rsa3072.public_key())
    with pytest.raises(UsageError, match="invalid account name"):
        add_account(store, "../x", rsa4096.public_key())
    with pytest.raises(NotFoundError):
        find_account(store, "nobody")
    with pytest.raises(NotFoundError):
        revoke_credential(store, "0" * 16)


def _run(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(cli.cli, list(args), standalone_mode=False, catch_exceptions=True)
    code = result.exit_code
    exc = result.exception
    if exc is not None and hasattr(exc, "exit_code"):
        code = int(exc.exit_code)
    return code, result.stdout, result.stderr + (str(exc) if exc else "")


def test_management_commands(tmp_path: Path, rsa4096: rsa.RSAPrivateKey) -> None:
    pem = tmp_path / "root.pem"
    pem.write_bytes(rsa4096.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    d = ["--data-dir", str(tmp_path / "data")]
    code, out, _ = _run("server", "account", "add", *d, "--root-key", str(pem), "acme")
    assert code == 0
    account_id = out.strip()
    assert len(account_id) == 32
    code, out, _ = _run("server", "account", "list", *d)
    assert (code, out.split()) == (0, [account_id, "acme"])
    code, out, err = _run("server", "credential", "issue", *d, "acme", "--scope", "host", "--label", "web1")
    assert code == 0
    token = out.strip()
    assert len(token) == 43
    assert "credential" in err
    code, out, _ = _run("server", "credential", "list", *d, "--json")
    rows = json.loads(out)
    assert code == 0
    assert rows[0]["scope"] == "host"
    assert not rows[0]["revoked"]
    assert token not in out
    code, out, _ = _run("server", "credential", "revoke", *d, rows[0]["id"])
    assert code == 0
    assert "revoked" in out
    code, _, _ = _run("server", "credential", "revoke", *d, "ffffffffffffffff")
    assert code == NotFoundError.exit_code
    code, _, _ = _run("server", "account", "add", *d, "--root-key", str(pem), "acme")
    assert code == UsageError.exit_code
    code, _, _ = _run("server", "credential", "list")  # neither --config nor --data-dir
    assert code == UsageError.exit_code


def test_audit_verify_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FilesystemStore(data / "storage")
    chain_id = bytes(range(16))
    log = AuditLog(store)
    for status in (200, 401, 403, 200):
        log.append(
            account_id=chain_id,
            credential_id=b"",
            remote="127.0.0.1:1",
            method="GET",
            path="/v1/keyring",
            status=status,
            reason="x",
        )
    d = ["--data-dir", str(data)]
    code, out, _ = _run("server", "audit", "verify", *d)
    assert code == 0
    assert "4 entries intact" in out
    head = out.split("head ")[1].strip()
    code, out, _ = _run("server", "audit", "verify", *d, "--account", chain_id.hex(), "--anchor", head)
    assert code == 0
    # edit entry 1 in place on disk: verify names entry 2 as the first broken one, exit code 10
    path = data / "storage" / entry_key(chain_id.hex(), 1)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01  # the low byte of the status code: 200 becomes 201, still a valid entry
    path.write_bytes(bytes(raw))
    code, out, err = _run("server", "audit", "verify", *d)
    assert code == 10
    assert "entry 2" in err
    assert chain_id.hex() in err


def test_audit_verify_via_main_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = FilesystemStore(tmp_path / "data" / "storage")
    log = AuditLog(store)
    for _ in range(3):
        log.append(
            account_id=None, credential_id=b"", remote="", method="GET", path="/", status=404, reason=""
        )
    (tmp_path / "data" / "storage" / entry_key("server", 1)).unlink()
    assert cli.main(["server", "audit", "verify", "--data-dir", str(tmp_path / "data")]) == 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "entry 1" in err[0]
    assert "gap" in err[0]
