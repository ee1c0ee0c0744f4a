"""Revoking a host key and replacing one: the revocation's trusted head keeps old backups restorable.

Real parts: a live TLS server, backups by the backup engine, restores by the restore engine, the
commands through click's runner with key files, a passphrase file and a credential on disk. The
thief's backdated manifest is a named fake: signed with the revoked key and put straight into the
server's storage, because the server itself refuses it through the API (shown first).
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyfile import export_public_pem
from crypto.primitives import public_key_id
from crypto.private import generate_rsa_key, sign_object
from formats import manifest, signed
from opsbackup.backup import BackupRequest, run_backup
from opsbackup.client.account import RevokedSignerError, VerifiedManifest
from opsbackup.client.identity import HostIdentity
from opsbackup.commands import keys_add_host, keys_revoke_host
from opsbackup.commands._client import utc_time
from opsbackup.errors import IntegrityError, NotFoundError, ServerRefusedError, UsageError
from opsbackup.restore import list_snapshots, open_snapshot, restore
from opsbackup.server.accounts import Scope
from tests.backup.support import backup, small
from tests.client_support import ClientEnv
from tests.keys.test_rotate_data import PASSPHRASE, keys_dir


def private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def admin_args(env: ClientEnv, tmp_path: Path) -> list[str]:
    """``--server --ca --credential-file --dir --passphrase-file`` of the admin, keys made once."""
    directory = tmp_path / "keys"
    if not directory.exists():
        keys_dir(env, directory)
    cred = private_file(tmp_path / "admin.cred", env.tokens[Scope.ADMIN])
    phrase = private_file(tmp_path / "passphrase", PASSPHRASE)
    return [
        "--server", env.server.url, "--ca", str(env.server.ca), "--credential-file", str(cred),
        "--dir", str(directory), "--passphrase-file", str(phrase),
    ]  # fmt: skip


def invoke(command: object, args: list[str], tmp_path: Path) -> Result:
    """Run a command object; the operator's client state lives under ``tmp_path``."""
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg-state")}
    return CliRunner().invoke(command, args, env=env, catch_exceptions=True)  # type: ignore[arg-type]


def two_backups(env: ClientEnv, tmp_path: Path, host: str = "web1") -> dict[str, bytes]:
    """Two backups of ``host`` (the second one chained to the first); backup id -> file bytes."""
    src = tmp_path / f"src-{host}"
    src.mkdir(exist_ok=True)
    out = {}
    with small():
        for i in range(2):
            (src / "f.bin").write_bytes(os.urandom(30_000) + bytes([i]))
            out[backup(env, src, host=host).backup_id] = (src / "f.bin").read_bytes()
    return out


def restores(env: ClientEnv, expected: dict[str, bytes], tmp_path: Path) -> None:
    """Each backup in ``expected`` is listed, verifies and restores its bytes with the data key."""
    account = env.account(Scope.RESTORE)
    for backup_id, data in expected.items():
        vm = account.fetch_manifest("web1", backup_id)
        target = tmp_path / f"r-{backup_id}-{os.urandom(3).hex()}"
        restore(account, open_snapshot(account, vm, env.keys.data), env.keys.data, target)
        assert next(target.rglob("f.bin")).read_bytes() == data


def forge_backdated(env: ClientEnv, model: VerifiedManifest, key: rsa.RSAPrivateKey, time: int) -> str:
    """A thief's manifest: ``model``'s content under a new id, chained after it, dated ``time``,
    signed with ``key`` and stored straight into the server's storage. Returns its backup id."""
    body = dataclasses.replace(
        model.manifest, backup_id=os.urandom(16), time=time, previous_manifest_hash=model.hash
    )
    data = sign_object(key, manifest.encode(body))
    backup_id = manifest.decode(signed.decode(data).body).backup_id.hex()
    path = f"accounts/{env.account_id.hex()}/manifests/web1/{backup_id}"
    assert env.server.store.put(path, io.BytesIO(data), overwrite=False)
    return backup_id


def test_revoke_host_trusts_its_newest_backup_and_refuses_later_ones(env: ClientEnv, tmp_path: Path) -> None:
    expected = two_backups(env, tmp_path)
    first, second = expected
    web1 = public_key_id(env.keys.hosts["web1"].public_key())
    done = invoke(keys_revoke_host.command, ["web1", *admin_args(env, tmp_path)], tmp_path)
    assert done.exit_code == 0, done.output
    second_vm = env.account(Scope.RESTORE).fetch_manifest("web1", second)
    assert f"keyring version 2: host key {web1.hex()[:16]} of web1 is revoked" in done.output
    when = utc_time(second_vm.manifest.time)
    assert (
        f"trusted head: backup {second} of {when} (the newest backup of web1 on the server); "
        "restore keeps accepting it and the 1 backup before it on its chain"
    ) in done.output
    assert "--dry-run" in done.output
    assert "--trusted-head BACKUP_ID" in done.output
    entry = env.account().keyring.entry(web1)
    assert entry.revoked_at is not None
    assert entry.trusted_head == second_vm.hash

    # The host (or a thief of its key) backs up again: the server refuses the upload.
    src = tmp_path / "src-web1"
    with small(), pytest.raises(ServerRefusedError, match="current host"):
        backup(env, src, host="web1")
    # So the thief stores a manifest straight into storage, dated before the revocation.
    forged = forge_backdated(env, second_vm, env.keys.hosts["web1"], second_vm.manifest.time - 3600)
    account = env.account(Scope.RESTORE)
    with pytest.raises(RevokedSignerError, match=f"backup {forged} was signed by host key {web1.hex()[:16]}"):
        account.fetch_manifest("web1", forged)
    with pytest.raises(IntegrityError, match=f"manifest web1/{forged}"):
        list_snapshots(account, "web1")
    restores(env, expected, tmp_path)
    assert first != second


def test_dry_run_then_an_earlier_trusted_head_or_none(env: ClientEnv, tmp_path: Path) -> None:
    expected = two_backups(env, tmp_path)
    first, second = expected
    args = admin_args(env, tmp_path)
    dry = invoke(
        keys_revoke_host.command, ["web1", "--dry-run", "--trusted-head", first[:10], *args], tmp_path
    )
    assert dry.exit_code == 0, dry.output
    assert f"trusted head: backup {first} of " in dry.output
    assert f"1 backup of web1 signed by this key will be refused by restore: {second}" in dry.output
    assert "dry run: nothing revoked" in dry.output
    assert env.account().keyring.version == 1
    both = invoke(
        keys_revoke_host.command, ["web1", "--trust-none", "--trusted-head", first, *args], tmp_path
    )
    assert isinstance(both.exception, UsageError)
    unknown = invoke(
        keys_revoke_host.command, ["web1", "--trusted-head", "0123456789abcdef", *args], tmp_path
    )
    assert isinstance(unknown.exception, UsageError)
    assert "is not a backup of host web1" in str(unknown.exception)
    done = invoke(keys_revoke_host.command, ["web1", "--trusted-head", first, *args], tmp_path)
    assert done.exit_code == 0, done.output
    restores(env, {first: expected[first]}, tmp_path)
    with pytest.raises(RevokedSignerError):
        env.account(Scope.RESTORE).fetch_manifest("web1", second)
    # web2 trusts none: none of its backups verifies any more.
    web2 = two_backups(env, tmp_path, host="web2")
    none = invoke(keys_revoke_host.command, ["web2", "--trust-none", *args], tmp_path)
    assert none.exit_code == 0, none.output
    assert "trusted head: none" in none.output
    assert "2 backups of web2 signed by this key will be refused by restore" in none.output
    for backup_id in web2:
        with pytest.raises(RevokedSignerError):
            env.account(Scope.RESTORE).fetch_manifest("web2", backup_id)
    again = invoke(keys_revoke_host.command, ["web2", *args], tmp_path)
    assert isinstance(again.exception, NotFoundError)
    assert "host 'web2' has no active key" in str(again.exception)


def test_add_host_replace_keeps_old_backups_and_new_ones_use_the_new_key(
    env: ClientEnv, tmp_path: Path
) -> None:
    expected = two_backups(env, tmp_path)
    old_id = public_key_id(env.keys.hosts["web1"].public_key())
    new_key = generate_rsa_key(3072)
    pem = tmp_path / "host.pub.pem"
    pem.write_bytes(export_public_pem(new_key.public_key()))
    args = ["web1", "--public-key", str(pem), "--replace", *admin_args(env, tmp_path)]
    done = invoke(keys_add_host.command, args, tmp_path)
    assert done.exit_code == 0, done.output
    newest = list(expected)[-1]
    assert f"the host's old key {old_id.hex()[:16]} is revoked" in done.output
    assert f"trusted head: backup {newest} of " in done.output
    keyring = env.account().keyring
    newest_vm = env.account(Scope.RESTORE).fetch_manifest("web1", newest)
    assert keyring.entry(old_id).trusted_head == newest_vm.hash  # not zeros: old backups restore
    # The reinstalled host backs up with its new key (same name, dedup secret and state file).
    host = HostIdentity(
        name="web1", signing_key=new_key, dedup_secret=env.keys.dedup_secret, cache_dir=tmp_path / "cache2"
    )
    src = tmp_path / "src-web1"
    (src / "f.bin").write_bytes(os.urandom(20_000))
    with small():
        later = run_backup(
            env.account(Scope.HOST, env.root / "state-web1.json"), host, BackupRequest(paths=(src,))
        )
    expected[later.backup_id] = (src / "f.bin").read_bytes()
    account = env.account(Scope.RESTORE)
    assert account.fetch_manifest("web1", later.backup_id).manifest.host_key_id == public_key_id(
        new_key.public_key()
    )
    assert [vm.backup_id for vm in list_snapshots(account, "web1")] == list(expected)
    restores(env, expected, tmp_path)
