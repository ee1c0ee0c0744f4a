"""opsbackup for the comparison, set up and driven through its CLI exactly as docs/setup.md says.

``server init`` (private CA, certificate for 127.0.0.1), ``server run`` in a process of its own,
``keys init``, ``server account add``, one credential per scope, ``keys publish``, ``host init``,
``keys add-host``; then ``opsbackup backup --json`` as the host and ``opsbackup restore`` as the
administrator. Each client command is one measured child process.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench._measure import Measured, run_measured

__all__ = ["OpsbackupSide", "start_opsbackup"]

HOST = "bench-host"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def secret_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path


@dataclass
class OpsbackupSide:
    """A running opsbackup server and the files a host and an administrator hold."""

    work: Path
    server: subprocess.Popen[bytes]
    host_config: Path
    admin_config: Path
    passphrase_file: Path
    store: Path
    log: Path

    name = "opsbackup"

    def backup(self, path: Path) -> Measured:
        return run_measured(
            _cli("backup", "--config", str(self.host_config), "--json", str(path)), log=self.log
        )

    def restore(self, target: Path) -> Measured:
        return run_measured(
            _cli(
                "restore",
                "latest",
                "--host",
                HOST,
                "--target",
                str(target),
                "--config",
                str(self.admin_config),
                "--passphrase-file",
                str(self.passphrase_file),
                "--json",
            ),
            log=self.log,
        )

    def stored_bytes(self) -> int:
        from tests.bench._measure import tree_bytes

        return tree_bytes(self.store)

    def stop(self) -> None:
        if self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "opsbackup", *args]


def _run(*args: str, log: Path) -> str:
    with log.open("ab") as err:
        done = subprocess.run(
            _cli(*args), check=False, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL
        )
    if done.returncode != 0:
        raise RuntimeError(f"opsbackup {' '.join(args[:3])} exited {done.returncode}; see {log}")
    return done.stdout.decode()


def start_opsbackup(work: Path) -> OpsbackupSide:
    """Set up server, account and host under ``work`` with the CLI; start the server."""
    work.mkdir(parents=True)
    log = work / "opsbackup.log"
    port = free_port()
    data = work / "server"
    _run(
        "server",
        "init",
        str(data),
        "--ip",
        "127.0.0.1",
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        log=log,
    )
    server_log = (work / "server.log").open("ab")
    server = subprocess.Popen(
        _cli("server", "run", "--config", str(data / "server.toml")),
        stdout=server_log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server, "opsbackup server run")
        url = f"https://127.0.0.1:{port}"
        ca = data / "ca" / "ca.pem"
        passphrase = secret_file(work / "passphrase", secrets.token_urlsafe(18))
        admin = work / "admin"
        _run("keys", "init", "--dir", str(admin), "--passphrase-file", str(passphrase), log=log)
        account_id = _run(
            "server",
            "account",
            "add",
            "--data-dir",
            str(data),
            "--root-key",
            str(admin / "root.pub.pem"),
            "bench",
            log=log,
        ).strip()
        creds = {}
        for scope in ("admin", "host", "restore"):
            out = _run(
                "server",
                "credential",
                "issue",
                "--data-dir",
                str(data),
                "bench",
                "--scope",
                scope,
                "--label",
                scope,
                log=log,
            )
            creds[scope] = secret_file(work / f"{scope}.credential", out.strip().splitlines()[-1])
        _run(
            "keys",
            "publish",
            "--dir",
            str(admin),
            "--account-id",
            account_id,
            "--server",
            url,
            "--ca",
            str(ca),
            "--credential-file",
            str(creds["admin"]),
            "--passphrase-file",
            str(passphrase),
            log=log,
        )
        host = work / "host"
        _run(
            "host",
            "init",
            "--name",
            HOST,
            "--server",
            url,
            "--ca",
            str(ca),
            "--credential-file",
            str(creds["host"]),
            "--root-key",
            str(admin / "root.pub.pem"),
            "--dedup-file",
            str(admin / "dedup.key"),
            "--dir",
            str(host),
            log=log,
        )
        _run(
            "keys",
            "add-host",
            HOST,
            "--public-key",
            str(host / "host.pub.pem"),
            "--config",
            str(admin / "config.toml"),
            "--passphrase-file",
            str(passphrase),
            log=log,
        )
    except BaseException:
        server.terminate()
        server.wait()
        raise
    return OpsbackupSide(
        work=work,
        server=server,
        host_config=host / "config.toml",
        admin_config=admin / "config.toml",
        passphrase_file=passphrase,
        store=data / "storage",
        log=log,
    )


def uploaded_bytes(measured: Measured) -> int | None:
    """``uploaded_bytes`` from ``backup --json``, if it printed one."""
    try:
        return int(json.loads(measured.stdout)["uploaded_bytes"])
    except (ValueError, KeyError, TypeError):
        return None
