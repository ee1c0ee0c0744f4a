"""Two ``opsbackup server run`` instances over one bucket, as behind a load balancer.

Both are real server processes started from their own ``server.toml`` (``[storage] backend =
"s3"``, same bucket and prefix, one certificate from one private CA; instance A uploads in 5 MiB
parts, B in one request per pack). Host web1 backs up through A while web2 backs up through B;
then each backup is restored through the *other* instance, ``check --read-data`` runs through
each, and ``opsbackup server audit verify`` (a management command reading the bucket) finds every
chain intact, with the account's requests through both instances in its one chain.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from formats import audit
from opsbackup.backup import BackupRequest, BackupResult, run_backup
from opsbackup.pki import create_ca, issue_server_cert
from opsbackup.restore import open_snapshot, resolve_snapshot, restore
from opsbackup.restore.check import check
from opsbackup.server.accounts import Scope, get_account, issue_credential
from opsbackup.server.audit_log import verify_chain
from opsbackup.server.config import S3Settings, load_server_config, render_server_toml
from opsbackup.storage.s3 import MIN_PART_SIZE
from tests.client_support import AccountKeys, ClientEnv
from tests.e2e.test_round_trip import restored_root
from tests.e2e.trees import describe, make_tree
from tests.s3_support import S3_ENV, moto_endpoint, new_bucket, setup_account
from tests.server._support import LiveServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).parents[2]
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**keep, **S3_ENV, "PYTHONPATH": str(REPO)}


def _opsbackup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsbackup", *args], env=_env(), capture_output=True, text=True, timeout=120
    )


@dataclass
class Instance:
    name: str
    config: Path
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def _run(name: str, config: Path, port: int, log: Path) -> Iterator[Instance]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "opsbackup", "server", "run", "--config", str(config)],
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"instance {name} exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"instance {name} did not start") from None
                time.sleep(0.1)
        yield Instance(name, config, f"https://127.0.0.1:{port}", process, log)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class World:
    envs: dict[str, ClientEnv]  # instance name -> a client environment that talks to it
    instances: dict[str, Instance]
    srcs: dict[str, Path]
    results: dict[str, BackupResult]  # host -> its backup
    tmp: Path
    web2_credential: bytes


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, account_keys: AccountKeys) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("two-instances")
    bucket = new_bucket()
    ca = create_ca(tmp / "ca")
    cert = issue_server_cert(tmp / "ca", tmp / "tls", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    configs: dict[str, tuple[Path, int]] = {}
    for name, part_size in (("a", MIN_PART_SIZE), ("b", None)):
        port = _free_port()
        s3 = S3Settings(bucket=bucket, endpoint=moto_endpoint(), prefix="prod/", part_size=part_size)
        text = render_server_toml(
            host="127.0.0.1",
            port=port,
            cert=str(cert.cert),
            key=str(cert.key),
            ca_cert=str(ca.cert),
            s3=s3,
        )
        (tmp / f"server-{name}.toml").write_text(text)
        configs[name] = (tmp / f"server-{name}.toml", port)
    store = load_server_config(configs["a"][0]).open_store()  # what `server account add` would use
    account_id, tokens, keyring = setup_account(store, account_keys)
    account = get_account(store, account_id)
    # web2 gets its own host credential (as every real host does), so the audit log tells them apart
    web2_token, web2_cred = issue_credential(store, account, Scope.HOST, "web2")
    host_tokens = {"a": tokens, "b": {**tokens, Scope.HOST: web2_token}}
    srcs = {
        "web1": make_tree(tmp / "src-web1", large_mib=6),
        "web2": make_tree(tmp / "src-web2", large_mib=3),
    }
    with contextlib.ExitStack() as stack:
        instances = {
            name: stack.enter_context(_run(name, path, port, tmp / f"instance-{name}.log"))
            for name, (path, port) in configs.items()
        }
        envs = {}
        for name, inst in instances.items():
            session = requests.Session()
            session.trust_env = False
            session.verify = str(ca.cert)
            stack.callback(session.close)
            server = LiveServer(inst.url, ca.cert, store, session)
            envs[name] = ClientEnv(server, account_keys, account_id, host_tokens[name], keyring, tmp)
        results: dict[str, BackupResult] = {}
        errors: list[BaseException] = []

        def backup(host: str, through: str) -> None:
            try:
                env = envs[through]
                results[host] = run_backup(
                    env.account(Scope.HOST, tmp / f"state-{host}.json"),
                    env.host(host),
                    BackupRequest(paths=(srcs[host],)),
                )
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [
            threading.Thread(target=backup, args=("web1", "a")),
            threading.Thread(target=backup, args=("web2", "b")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert errors == []
        yield World(envs, instances, srcs, results, tmp, bytes.fromhex(web2_cred.credential_id))


def test_two_instances_one_bucket_nothing_lost_and_one_audit_chain(world: World) -> None:
    """One test, not several: under xdist each test module's fixture would run once per worker."""
    for host, through in (("web1", "b"), ("web2", "a")):  # restore through the other instance
        env = world.envs[through]
        reader = env.account(Scope.RESTORE)
        backup_id = world.results[host].backup_id
        snapshot = open_snapshot(reader, resolve_snapshot(reader, backup_id), env.keys.data)
        target = world.tmp / f"restore-{host}-via-{through}"
        target.mkdir()
        restore(reader, snapshot, env.keys.data, target)
        assert describe(restored_root(target, world.srcs[host])) == describe(world.srcs[host]), host

    for through in ("a", "b"):  # check --read-data through either instance
        result = check(world.envs[through].account(Scope.RESTORE), read_data=True)
        assert result.errors == [], through
        assert result.counts["manifests"] == 2
        assert result.counts["hosts"] == 2

    for inst in world.instances.values():
        assert inst.process.poll() is None, inst.log.read_text(errors="replace")[-2000:]
    done = _opsbackup("server", "audit", "verify", "--config", str(world.instances["b"].config))
    assert done.returncode == 0, done.stderr
    account = world.envs["a"].account_id.hex()
    assert f"audit chain {account}: " in done.stdout
    assert "intact" in done.stdout
    store = world.envs["a"].server.store
    report = verify_chain(store, account)
    assert report.ok, report.problem
    entries = [audit.decode(store.read(k)) for k in store.list(f"audit/{account}/")]
    paths = [e.path for e in entries]
    for host in ("web1", "web2"):  # each host's manifest upload is in the one chain
        assert any(p.startswith(f"/v1/manifests/{host}/") for p in paths), paths[-20:]
    assert [e.sequence for e in entries] == list(range(len(entries)))
    # Hammer both instances at once with small requests under two credentials (web1's through A,
    # web2's through B): with 30 requests each in flight over the same second, the instances race
    # for the chain's next numbers. The entries must interleave, and the chain stay one.
    before = report.entries
    barrier = threading.Barrier(2)

    def hammer(through: str) -> None:
        env = world.envs[through]
        barrier.wait()
        for _ in range(30):
            assert env.server.call("GET", "/v1/keyring", env.tokens[Scope.HOST]).status_code == 200

    threads = [threading.Thread(target=hammer, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    report = verify_chain(store, account)
    assert report.ok, report.problem
    assert report.entries == before + 60
    recent = [audit.decode(store.read(k)).credential_id for k in store.list(f"audit/{account}/")][before:]
    via_b = [i for i, c in enumerate(recent) if c == world.web2_credential]
    assert len(via_b) == 30
    assert any(via_b[0] < i < via_b[-1] for i in range(len(recent)) if i not in via_b), "no interleaving"
