"""The whole CLI path against a live TLS server: keys init, publish, host init, add-host, backup,
snapshots, ls, find, restore, dump, check; and a stolen host directory restores nothing.

Every step is the real command through ``opsbackup.cli.main``. The account's key files are made
by ``keys init`` itself (with the test KDF, ``OPSBACKUP_INSECURE_TEST_KDF=1``).
"""

from __future__ import annotations

import json
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyfile import TEST_PARAMS, PrivateKey, load_key, load_public, save_key
from crypto.primitives import public_key_der, public_key_id
from formats.roles import Role
from opsbackup.client.config import load_config, load_root_public_key
from opsbackup.demo.sample import compare_trees
from opsbackup.server.accounts import Scope
from tests.cli._run import run
from tests.cli._world import PASSPHRASE, World, flags, make_world, ok, private_file


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("workflow")) as w:
        yield w


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_init_writes_private_key_files_that_name_the_root(world: World) -> None:
    assert mode(world.keys) == 0o700
    root = load_root_public_key(world.keys / "root.pub.pem")
    assert public_key_id(root).hex() == world.fingerprint
    assert mode(world.keys / "root.pub.pem") == 0o644
    for role in (Role.ROOT, Role.DATA, Role.BROWSE, Role.DELETION, Role.DEDUP):
        path = world.keys / f"{role.label}.key"
        assert mode(path) == 0o600, path
        key = load_key(path, None if role is Role.DEDUP else PASSPHRASE, expect_role=role)
        assert public_key_der(key.root_public_key) == public_key_der(root)
    assert "next" in world.init_output.lower()
    assert "server account add" in world.init_output


def test_keys_init_never_overwrites(world: World, tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in world.keys.iterdir() if p.is_file()}
    done = run(["keys", "init", "--dir", world.keys, "--passphrase-file", world.passphrase], env=world.env)
    assert done.code == 30
    assert "refusing to overwrite" in done.err
    assert done.err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in world.keys.iterdir() if p.is_file()} == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.key").write_bytes(b"precious")
    done = run(["keys", "init", "--dir", other, "--passphrase-file", world.passphrase], env=world.env)
    assert done.code == 30, done
    assert sorted(p.name for p in other.iterdir()) == ["data.key"]
    assert (other / "data.key").read_bytes() == b"precious"


def test_publishing_version_1_twice_is_refused(world: World) -> None:
    done = world.admin("keys", "publish", "--account-id", "00" * 16)
    assert done.code == 2, done
    assert "already has keyring version" in done.err


def test_host_init_leaves_no_reading_key_on_the_host(world: World) -> None:
    assert mode(world.host) == 0o700
    for name in ("host.key", "dedup.key", "credential", "config.toml"):
        assert mode(world.host / name) == 0o600, name
    config = load_config(world.host / "config.toml")
    assert config.need_host().name == "web1"
    assert config.backup.paths == (world.src,)
    assert load_public(world.host / "host.key").role is Role.HOST
    roles = set()
    for path in world.host.iterdir():
        if path.is_file() and path.read_bytes()[:4] == b"OBKF":
            roles.add(load_key(path, None).role)
    assert roles == {Role.HOST, Role.DEDUP}


def test_snapshots_lists_the_backup_for_the_admin_and_the_host(world: World) -> None:
    table = ok(world.admin("snapshots")).text
    assert world.backup_id[:16] in table
    assert "web1" in table
    assert "first" in table
    listed = json.loads(ok(world.on_host("snapshots", "--json")).out)
    assert [s["id"] for s in listed] == [world.backup_id]
    assert listed[0]["files"] >= 4


def test_ls_with_the_browse_key_shows_modes_sizes_and_links(world: World) -> None:
    prefix = str(world.src).lstrip("/")
    text = ok(world.admin("ls", world.backup_id[:12])).text
    assert f"{prefix}/etc/current.conf -> app/app.conf" in text
    assert "-rw-r--r--" in text
    assert "700000" in text
    assert f"{prefix}/data/caf\\xe9.txt" in text
    lines = [
        json.loads(line)
        for line in ok(world.admin("ls", "latest", str(world.src / "etc"), "--json")).out.splitlines()
    ]
    paths = {entry["path"] for entry in lines}
    assert f"{prefix}/etc/hosts.txt" in paths
    assert not any("/data/" in p for p in paths)


def test_find_searches_every_snapshot(world: World) -> None:
    done = ok(world.admin("find", "*.conf"))
    assert "etc/app/app.conf" in done.text
    assert "etc/current.conf" in done.text
    assert world.backup_id[:16] in done.text


def test_restore_with_the_admin_config_is_exact(world: World) -> None:
    target = world.tmp / "restored"
    done = ok(world.admin("restore", "latest", "--target", target))
    assert "restored" in done.text
    compared, problems = compare_trees(world.src, target / world.src.relative_to("/"))
    assert problems == []
    assert compared >= 9


def test_restore_of_one_path_on_a_fresh_machine_needs_only_url_ca_credential_and_key(world: World) -> None:
    target = world.tmp / "fresh"
    fresh = flags(
        target=target,
        server=world.server.url,
        ca=world.server.ca,
        credential_file=world.creds[Scope.RESTORE],
        key=world.keys / "data.key",
        passphrase_file=world.passphrase,
    )
    done = run(
        ["restore", world.backup_id, str(world.src / "etc"), *fresh, "--json"],
        env={**world.env, "XDG_STATE_HOME": str(world.tmp / "fresh-state")},
    )
    assert done.code == 0, done
    assert json.loads(done.out)["files"] == 2
    base = target / world.src.relative_to("/")
    assert (base / "etc" / "app" / "app.conf").read_bytes() == (
        world.src / "etc" / "app" / "app.conf"
    ).read_bytes()
    assert not (base / "data").exists()


def test_dump_writes_one_file_to_stdout(world: World) -> None:
    path = str(world.src / "data" / "blob.hardlink")
    assert ok(world.admin("dump", "latest", path)).out == (world.src / "data" / "blob.bin").read_bytes()


def test_check_finds_no_problem(world: World) -> None:
    assert "no problems" in ok(world.admin("check")).text
    result = json.loads(ok(world.on_host("check", "--read-data", "--json")).out)
    assert result["ok"] is True
    assert result["read_data"] is True


def test_a_wrong_passphrase_is_one_line_and_exit_12(world: World) -> None:
    wrong = private_file(world.tmp / "wrong-passphrase", "not the passphrase")
    done = run(
        ["ls", "latest", "--config", world.keys / "config.toml", "--passphrase-file", wrong], env=world.env
    )
    assert done.code == 12
    assert done.err == f"opsbackup: error: wrong passphrase for key file {world.keys / 'browse.key'}\n"


def test_a_key_of_another_account_is_refused_before_the_network(
    world: World, tmp_path: Path, rsa4096: rsa.RSAPrivateKey
) -> None:
    other = tmp_path / "other-data.key"
    data = PrivateKey(role=Role.DATA, label="data", rsa_key=rsa4096)  # of an account whose root is it too
    save_key(other, data, PASSPHRASE, root_public_key=rsa4096.public_key(), cost=TEST_PARAMS)
    done = world.admin("restore", "latest", "--target", tmp_path / "t", "--key", other)
    assert done.code == 12, done
    assert "belongs to the account with root" in done.err
    assert not (tmp_path / "t").exists()


def test_a_copy_of_the_host_directory_restores_nothing(world: World, tmp_path: Path) -> None:
    stolen = tmp_path / "stolen"
    shutil.copytree(world.host, stolen)
    config = stolen / "config.toml"
    target = tmp_path / "target"
    done = run(["restore", "latest", "--target", target, "--config", config], env=world.env)
    assert done.code == 2, done
    assert "--key" in done.err  # no [keys] dir: nothing to restore with
    tried = 0
    for path in sorted(stolen.rglob("*")):
        if not path.is_file():
            continue
        tried += 1
        for command in (["restore", "latest", "--target", target], ["ls", "latest"], ["dump", "latest", "x"]):
            done = run(
                [*command, "--config", config, "--key", path, "--passphrase-file", world.passphrase],
                env=world.env,
            )
            assert done.code in (11, 12), (path, done)
            assert done.err.count("\n") == 1, done.err
            assert "cannot read backups" in done.err or "not an opsbackup key file" in done.err, done.err
        assert not target.exists()
    assert tried >= 7


def test_a_backup_with_warnings_exits_3_and_names_them(world: World) -> None:
    odd = world.tmp / "with-socket"
    odd.mkdir()
    (odd / "file.txt").write_text("kept\n")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(odd / "control.sock"))
        done = world.on_host("backup", odd)
    finally:
        sock.close()
    assert done.code == 3, done
    assert "opsbackup: warning:" in done.err
    assert "control.sock" in done.err
    assert done.err.endswith("opsbackup: completed with 1 warning (listed above)\n")
    assert "snapshot" in done.text


def test_backup_reads_stdin_under_a_name(world: World) -> None:
    done = run(
        ["backup", "--config", world.host / "config.toml", "--stdin-name", "db.sql", "--json"],
        input=b"CREATE TABLE t (x int);\n",
        env=world.env,
    )
    assert done.code == 0, done
    backup_id = json.loads(done.out)["backup_id"]
    assert ok(world.admin("dump", backup_id, "db.sql")).out == b"CREATE TABLE t (x int);\n"
