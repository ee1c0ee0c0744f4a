"""restic for the comparison: ``rclone serve restic`` over HTTPS on loopback with its own CA.

The same shape as opsbackup's server: a private CA made here with openssl, a server certificate
for 127.0.0.1, HTTP basic authentication, and the client pinned to that CA (``--cacert``). Debian's
packages: ``apt-get install -y restic rclone``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.bench._measure import Measured, run_measured, tree_bytes
from tests.bench._opsbackup_side import free_port, secret_file, wait_for_port

__all__ = ["MISSING_HELP", "ResticSide", "missing_tools", "start_restic"]

HOST = "bench-host"
MISSING_HELP = (
    "the comparison needs Debian's restic and rclone: run `apt-get install -y restic rclone` "
    "(as root) and try again"
)


def missing_tools() -> list[str]:
    return [tool for tool in ("restic", "rclone", "openssl") if shutil.which(tool) is None]


def make_ca_and_cert(tls: Path) -> tuple[Path, Path, Path]:
    """A private CA (P-256) and a server certificate for IP 127.0.0.1 signed by it: (ca, cert, key)."""
    tls.mkdir(parents=True)
    ca_key, ca, key, csr, cert = (
        tls / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = tls / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n"
    )

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(ca_key))
    openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(ca_key),
        "-sha256",
        "-days",
        "30",
        "-subj",
        "/CN=restic bench CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        str(ca),
    )
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    openssl("req", "-new", "-key", str(key), "-subj", "/CN=127.0.0.1", "-out", str(csr))
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    return ca, cert, key


@dataclass
class ResticSide:
    """A running ``rclone serve restic`` and a restic client pinned to its CA."""

    work: Path
    server: subprocess.Popen[bytes]
    repo_dir: Path
    env: dict[str, str]
    base: list[str]
    log: Path

    name = "restic"

    def backup(self, path: Path) -> Measured:
        return run_measured(
            [*self.base, "backup", "--json", "--host", HOST, str(path)], env=self.env, log=self.log
        )

    def restore(self, target: Path) -> Measured:
        return run_measured(
            [*self.base, "restore", "latest", "--host", HOST, "--target", str(target)],
            env=self.env,
            log=self.log,
        )

    def stored_bytes(self) -> int:
        return tree_bytes(self.repo_dir)

    def stop(self) -> None:
        if self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()


def start_restic(work: Path) -> ResticSide:
    """Make the CA, start ``rclone serve restic`` on loopback HTTPS, ``restic init`` the repository."""
    work.mkdir(parents=True)
    log = work / "restic.log"
    ca, cert, key = make_ca_and_cert(work / "tls")
    repo_dir = work / "repo"
    repo_dir.mkdir()
    port = free_port()
    user, password = "bench", secrets.token_urlsafe(18)
    rclone_env = {**os.environ, "RCLONE_CONFIG": str(work / "rclone.conf")}
    (work / "rclone.conf").write_text("")
    server_log = (work / "rclone.log").open("ab")
    server = subprocess.Popen(
        [
            "rclone",
            "serve",
            "restic",
            str(repo_dir),
            "--addr",
            f"127.0.0.1:{port}",
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--user",
            user,
            "--pass",
            password,
        ],
        stdout=server_log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=rclone_env,
    )
    try:
        wait_for_port(port, server, "rclone serve restic")
        env = {
            **os.environ,
            "RESTIC_PASSWORD_FILE": str(secret_file(work / "password", secrets.token_urlsafe(18))),
            "RESTIC_REPOSITORY": f"rest:https://{user}:{password}@127.0.0.1:{port}/",
        }
        base = ["restic", "--cacert", str(ca), "--cache-dir", str(work / "cache")]
        run_measured([*base, "init"], env=env, log=log)
    except BaseException:
        server.terminate()
        server.wait()
        raise
    return ResticSide(work=work, server=server, repo_dir=repo_dir, env=env, base=base, log=log)
