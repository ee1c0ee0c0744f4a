"""``opsbackup server run --config`` as a real process: serves TLS, audits, stops on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from opsbackup.pki import create_ca, issue_server_cert
from opsbackup.server.audit_log import SERVER_CHAIN, verify_chain
from opsbackup.server.config import render_server_toml
from opsbackup.storage.filesystem import FilesystemStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_run_serves_and_audits(tmp_path: Path) -> None:
    ca = create_ca(tmp_path / "ca")
    srv = issue_server_cert(
        tmp_path / "ca", tmp_path / "tls", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    )
    port = _free_port()
    config = tmp_path / "server.toml"
    config.write_text(
        render_server_toml(
            host="127.0.0.1",
            port=port,
            cert=str(srv.cert),
            key=str(srv.key),
            ca_cert=str(ca.cert),
            storage_root="storage",
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsbackup", "server", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        session = requests.Session()
        session.trust_env = False
        deadline = time.monotonic() + 20
        while True:
            try:
                r = session.get(f"https://127.0.0.1:{port}/v1/keyring", verify=str(ca.cert), timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert r.status_code == 401
        assert r.json()["error"].startswith("missing credential")
        session.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:  # a second signal makes uvicorn stop waiting for idle connections
            proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    store = FilesystemStore(tmp_path / "storage")
    report = verify_chain(store, SERVER_CHAIN)
    assert report.ok
    assert report.entries == 1
