"""A whole CLI world for end-to-end CLI tests: admin keys, a live TLS server, one enrolled host.

Every step is the real command through ``opsbackup.cli.main``; the account's key files are made by
``keys init`` itself (with the test KDF, ``OPSBACKUP_INSECURE_TEST_KDF=1``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opsbackup.client.config import load_root_public_key
from opsbackup.server.accounts import Scope, add_account, issue_credential
from tests.cli._run import Run, run
from tests.server._support import LiveServer, live_server

__all__ = ["PASSPHRASE", "World", "flags", "make_source", "make_world", "ok", "private_file"]

PASSPHRASE = "correct horse battery staple"


@dataclass
class World:
    tmp: Path
    env: dict[str, str]
    passphrase: Path
    keys: Path
    fingerprint: str
    server: LiveServer
    creds: dict[Scope, Path]
    host: Path
    src: Path
    backup_id: str
    init_output: str

    def admin(self, *args: str | Path) -> Run:
        """A command on the admin's machine (the key directory's config; passphrase file from env)."""
        return run([*args, "--config", self.keys / "config.toml"], env=self.env)

    def on_host(self, *args: str | Path) -> Run:
        return run([*args, "--config", self.host / "config.toml"], env=self.env)


def flags(**options: str | Path) -> list[str | Path]:
    """``--name value`` pairs (underscores become dashes)."""
    return [item for name, value in options.items() for item in (f"--{name.replace('_', '-')}", value)]


def private_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def ok(done: Run) -> Run:
    assert done.code == 0, done
    return done


def make_source(src: Path) -> Path:
    (src / "etc" / "app").mkdir(parents=True)
    (src / "etc" / "app" / "app.conf").write_text("listen = 8080\n" * 100)
    (src / "etc" / "hosts.txt").write_text("127.0.0.1 localhost\n")
    (src / "data").mkdir()
    (src / "data" / "blob.bin").write_bytes(os.urandom(700_000))
    (src / "data" / "empty").mkdir()
    os.link(src / "data" / "blob.bin", src / "data" / "blob.hardlink")
    os.symlink("app/app.conf", src / "etc" / "current.conf")
    with open(os.fsencode(src / "data") + b"/caf\xe9.txt", "wb") as f:
        f.write(b"latin-1 name\n")
    return src


@contextlib.contextmanager
def make_world(tmp: Path) -> Iterator[World]:
    """keys init, a live server with the account, keys publish, host init, add-host, one backup."""
    passphrase = private_file(tmp / "passphrase", PASSPHRASE)
    env = {
        "OPSBACKUP_INSECURE_TEST_KDF": "1",
        "XDG_STATE_HOME": str(tmp / "xdg"),
        "OPSBACKUP_PASSPHRASE_FILE": str(passphrase),  # the admin's commands read it from there
    }
    keys = tmp / "keys"
    init = ok(run(["keys", "init", "--dir", keys], env=env))
    fingerprint = init.text.split("root fingerprint: ")[1].split()[0]
    with live_server(tmp / "server") as server:
        account = add_account(server.store, "acme", load_root_public_key(keys / "root.pub.pem"))
        creds = {
            scope: private_file(
                tmp / f"{scope}.credential", issue_credential(server.store, account, scope, str(scope))[0]
            )
            for scope in Scope
        }
        server_flags = flags(server=server.url, ca=server.ca, credential_file=creds[Scope.ADMIN])
        publish = flags(dir=keys, account_id=account.account_id.hex())
        ok(run(["keys", "publish", *publish, *server_flags], env=env))
        src = make_source(tmp / "src")
        host = tmp / "host"
        enroll = flags(
            name="web1",
            server=server.url,
            ca=server.ca,
            credential_file=creds[Scope.HOST],
            root_key=keys / "root.pub.pem",
            dedup_file=keys / "dedup.key",
            dir=host,
            root_fingerprint=fingerprint,
            path=src,
        )
        ok(run(["host", "init", *enroll], env=env))
        w = World(tmp, env, passphrase, keys, fingerprint, server, creds, host, src, "", init.text)
        ok(w.admin("keys", "add-host", "web1", "--public-key", host / "host.pub.pem"))
        done = ok(w.on_host("backup", "--json", "--tag", "first"))
        w.backup_id = json.loads(done.out)["backup_id"]
        yield w
