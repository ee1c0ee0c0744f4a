"""``opsbackup demo``: the whole product on one machine, step by step, with the speeds it reaches.

Everything happens in one work directory: a server (private CA, certificate, filesystem store)
served over TLS on loopback; an account with admin keys and keyring; a host enrolled as
``opsbackup host init`` + ``keys add-host`` would; a backup of a generated sample tree; a
restore the way an operator does it on a fresh machine (URL, CA, read credential, data key file
and passphrase; nothing else); an exact comparison; and a second, deduplicated backup.
The same functions the commands use do the work (``opsbackup.setup``, the engines).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.atomic_file import write_atomic
from crypto.keyfile import import_public_pem, load_key, load_public
from formats.roles import Role
from opsbackup import pki
from opsbackup.backup import BackupRequest, BackupResult, run_backup
from opsbackup.client.account import open_account
from opsbackup.client.config import ServerSettings, load_config, load_root_public_key, render_config
from opsbackup.client.identity import HostIdentity
from opsbackup.client.state import ClientState
from opsbackup.commands._client import connect
from opsbackup.commands.server_init import init_server
from opsbackup.demo.sample import compare_trees, make_sample_tree
from opsbackup.errors import IntegrityError, KeyUnusableError, UsageError
from opsbackup.restore.results import RestoreResult
from opsbackup.restore.snapshots import list_snapshots, resolve_snapshot
from opsbackup.restore.tree_reader import open_snapshot
from opsbackup.restore.writer import restore
from opsbackup.server.accounts import Scope, add_account, issue_credential
from opsbackup.server.app import create_app
from opsbackup.server.config import load_server_config
from opsbackup.server.tls import serve_in_thread
from opsbackup.setup.admin import ROOT_PUB, AdminKeyFiles, init_admin_keys
from opsbackup.setup.host import HostFiles, init_host
from opsbackup.setup.publish import add_host_key, publish_first_keyring
from opsbackup.storage.base import ObjectStore

__all__ = ["DEFAULT_SIZE_MIB", "DemoResult", "run_demo"]

DEFAULT_SIZE_MIB = 64
HOST_NAME = "demo-host"
STEPS = 9


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured (MB = 10^6 bytes per second) and whether the restore was exact."""

    passed: bool
    backup_mb_s: float
    rebackup_mb_s: float
    restore_mb_s: float
    rebackup_new_chunks: int


def _mb_s(n: int, seconds: float) -> float:
    return n / 1e6 / seconds if seconds > 0 else float("inf")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Steps:
    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.n = 0
        self.t = time.monotonic()

    def step(self, text: str) -> None:
        self.n += 1
        self.t = time.monotonic()
        self.echo(f"[{self.n}/{STEPS}] {text}")

    def done(self, text: str = "") -> None:
        took = f"({time.monotonic() - self.t:.1f} s)"
        self.echo(f"      {text} {took}" if text else f"      {took}")

    def note(self, text: str) -> None:
        self.echo(f"      {text}")


def _secret_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, text.encode("utf-8") + b"\n", 0o600, overwrite=False)
    return path


def _prepare(directory: Path | None) -> tuple[Path, bool]:
    """The work directory, and whether the demo created it (so it may remove it whole)."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="opsbackup-demo-")), True
    directory = directory.absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"{directory} exists and is not an empty directory: give a new or empty --dir")
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory, created


def run_demo(
    directory: Path | None = None,
    *,
    keep: bool = False,
    size_mib: int = DEFAULT_SIZE_MIB,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Run the demo in ``directory`` (a fresh temporary one by default); remove it unless ``keep``."""
    work, created = _prepare(directory)
    echo(f"opsbackup demo in {work}" + ("" if keep else " (removed at the end; --keep keeps it)"))
    try:
        return _run(work, keep=keep, size_mib=size_mib, echo=echo)
    finally:
        if not keep:
            if created:
                shutil.rmtree(work, ignore_errors=True)
            else:
                for child in work.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)


@dataclass
class _Admin:
    """What the administrator made: key files, their passphrase, credentials, an admin client."""

    keys: AdminKeyFiles
    passphrase: str
    passphrase_file: Path
    creds: dict[Scope, Path]
    server: ServerSettings
    config: Path
    root_key: rsa.RSAPrivateKey
    state: ClientState


def _set_up_account(s: _Steps, work: Path, store: ObjectStore, url: str, ca: Path) -> _Admin:
    """Steps 2-4: ``keys init``, ``server account add`` and credentials, ``keys publish``."""
    s.step("administrator: root, data, browse (RSA-4096), deletion (RSA-3072) keys and the dedup secret")
    passphrase = secrets.token_urlsafe(18)
    passphrase_file = _secret_file(work / "admin" / "passphrase", passphrase)
    keys = init_admin_keys(work / "admin" / "keys", passphrase)
    s.done(f"in {keys.dir}, root fingerprint {keys.fingerprint[:16]}...; Argon2id-protected")

    s.step("server account with the root public key; credentials: admin, host (append-only), restore (read)")
    account = add_account(store, "demo", load_root_public_key(keys.root_pub, keys.fingerprint))
    creds = {}
    for scope, label in ((Scope.ADMIN, "admin"), (Scope.HOST, HOST_NAME), (Scope.RESTORE, "operator")):
        token, _ = issue_credential(store, account, scope, label)
        creds[scope] = _secret_file(work / "credentials" / f"{label}.credential", token)
    s.done(f"account id {account.account_id.hex()}")

    s.step("keyring version 1 (root, data, browse, deletion), signed by the root key, published")
    server = ServerSettings(url, ca, creds[Scope.ADMIN])
    state = ClientState(work / "admin" / "state.json")
    root_key = load_key(keys.key(Role.ROOT), passphrase, expect_role=Role.ROOT).private_key
    # The public halves this process just wrote (``keys publish`` opens each file with the passphrase).
    public = {
        r: load_public(keys.key(r), expect_role=r).public_key for r in (Role.DATA, Role.BROWSE, Role.DELETION)
    }
    repo = connect(server)
    try:
        publish_first_keyring(
            repo,
            account_id=account.account_id,
            root=root_key,
            data=public[Role.DATA],
            browse=public[Role.BROWSE],
            deletion=public[Role.DELETION],
            state=state,
        )
    finally:
        repo.close()
    config = keys.dir / "config.toml"
    text = render_config(server=server, account=(ROOT_PUB, keys.fingerprint), keys_dir=".")
    write_atomic(config, text.encode("utf-8"), 0o600, overwrite=False)
    s.done(f"admin configuration {config}")
    return _Admin(keys, passphrase, passphrase_file, creds, server, config, root_key, state)


def _enroll_host(s: _Steps, work: Path, admin: _Admin, url: str, ca: Path) -> HostFiles:
    """Step 5: ``host init`` on the host, ``keys add-host`` by the administrator."""
    s.step(f"host '{HOST_NAME}': 'host init' makes its signing key on the host, 'keys add-host' enrolls it")
    host_files = init_host(
        work / "host" / "etc-opsbackup",
        name=HOST_NAME,
        server_url=url,
        ca_file=ca,
        credential_file=admin.creds[Scope.HOST],
        root_key_file=admin.keys.root_pub,
        dedup_file=admin.keys.key(Role.DEDUP),
        root_fingerprint_hex=admin.keys.fingerprint,
    )
    repo = connect(admin.server)
    try:
        host_public = import_public_pem(host_files.host_pub.read_bytes())
        account = open_account(repo, admin.root_key.public_key(), admin.state)
        keyring = add_host_key(account, admin.root_key, HOST_NAME, host_public)
    finally:
        repo.close()
    s.done(f"keyring version {keyring.version}; host files in {host_files.dir}")
    try:
        load_key(host_files.host_key, None, expect_role=Role.DATA)
    except KeyUnusableError as exc:
        s.note(f"the host holds no key that reads backups: {exc}")
    return host_files


def _host_backup(config_file: Path, paths: tuple[Path, ...]) -> BackupResult:
    """One backup exactly as ``opsbackup backup --config CONFIG_FILE`` makes it."""
    config = load_config(config_file)
    host = config.need_host()
    identity = HostIdentity(
        host.name,
        load_key(host.key_file, None, expect_role=Role.HOST).private_key,
        load_key(host.dedup_file, None, expect_role=Role.DEDUP).secret,
        host.cache_dir,
    )
    repo = connect(config.need_server())
    try:
        account = open_account(repo, config.need_account().root_public_key, ClientState(host.state_file))
        return run_backup(account, identity, BackupRequest(paths=paths))
    finally:
        repo.close()


def _fresh_restore(
    server: ServerSettings, key_file: Path, passphrase: str, backup_id: str, target: Path
) -> tuple[int, RestoreResult]:
    """A restore with nothing but URL, CA, a read credential and a data key file: (snapshots seen, result)."""
    data_key = load_key(key_file, passphrase, expect_role=Role.DATA)
    repo = connect(server)
    try:
        reader = open_account(repo, data_key.root_public_key, ClientState(None))
        seen = len(list_snapshots(reader))
        snapshot = open_snapshot(reader, resolve_snapshot(reader, backup_id), data_key.private_key)
        return seen, restore(reader, snapshot, data_key.private_key, target)
    finally:
        repo.close()


def _run(work: Path, *, keep: bool, size_mib: int, echo: Callable[[str], None]) -> DemoResult:
    s = _Steps(echo)
    port = _free_port()
    s.step("server: private CA, server certificate for 127.0.0.1, filesystem store, TLS on loopback")
    ca, cert, server_toml = init_server(
        work / "server", names=["localhost"], ips=["127.0.0.1"], host="127.0.0.1", port=port
    )
    server_config = load_server_config(server_toml)
    store = server_config.open_store()
    app = create_app(store, max_object_size=server_config.max_object_size)
    with serve_in_thread(app, host="127.0.0.1", port=port, cert=cert.cert, key=cert.key) as running:
        url = running.url
        s.done(f"{url}, CA fingerprint sha256:{pki.fingerprint(ca.cert)[:16]}...")
        admin = _set_up_account(s, work, store, url, ca.cert)
        host_files = _enroll_host(s, work, admin, url, ca.cert)

        s.step(f"sample tree of {size_mib} MiB: text and random files, symlinks, a hard link, an empty dir")
        sample = make_sample_tree(work / "data" / "sample", size_mib << 20)
        s.done(
            f"{sample.files} files in {sample.dirs} dirs, {_mib(sample.total_bytes)} "
            f"({_mib(sample.text_bytes)} text, {_mib(sample.random_bytes)} random), a non-UTF-8 name"
        )

        s.step("backup by the host (public keys only: it can write, not read)")
        first = _host_backup(host_files.config, (sample.root,))
        s.done(_backup_line(first))

        s.step("restore on a 'fresh machine': server URL, CA, a read credential, data.key and its passphrase")
        target = work / "restore"
        reader = ServerSettings(url, ca.cert, admin.creds[Scope.RESTORE])
        seen, restored = _fresh_restore(
            reader, admin.keys.key(Role.DATA), admin.passphrase, first.backup_id, target
        )
        rate = _mb_s(restored.bytes, restored.duration)
        s.done(
            f"{seen} snapshot listed and verified; {restored.files} files, {_mib(restored.bytes)} "
            f"in {restored.duration:.2f} s = {rate:.0f} MB/s"
        )
        compared, problems = compare_trees(sample.root, target / sample.root.relative_to("/"))
        for problem in problems[:20]:
            s.note(f"DIFFERENCE {problem}")
        if not problems:
            s.note(
                f"compared {compared} entries: every byte, mode, mtime, symlink target and hard link "
                "is identical"
            )

        s.step("backup again, nothing changed: the cache makes unchanged files free, nothing new is stored")
        second = _host_backup(host_files.config, (sample.root,))
        s.done(_backup_line(second))

    result = DemoResult(
        passed=not problems,
        backup_mb_s=_mb_s(first.total_bytes, first.duration),
        rebackup_mb_s=_mb_s(second.total_bytes, second.duration),
        restore_mb_s=rate,
        rebackup_new_chunks=second.new_chunks,
    )
    echo(
        f"speed: backup {result.backup_mb_s:.0f} MB/s, re-backup {result.rebackup_mb_s:.0f} MB/s, "
        f"restore {result.restore_mb_s:.0f} MB/s (MB = 10^6 bytes)"
    )
    if keep:
        echo(
            f"kept {work}. To look around:\n"
            f"  opsbackup server run --config {server_toml}      # in another terminal\n"
            f"  opsbackup snapshots --config {admin.config}\n"
            f"  opsbackup ls latest --config {admin.config} --passphrase-file {admin.passphrase_file}\n"
            f"  opsbackup backup --config {host_files.config} {sample.root}"
        )
    if not result.passed:
        raise IntegrityError(
            f"demo failed: the restored tree differs from the original ({len(problems)} differences)"
        )
    echo("demo passed: the restore is identical to the original")
    return result


def _backup_line(result: BackupResult) -> str:
    rate = _mb_s(result.total_bytes, result.duration)
    return (
        f"{result.files} files, {_mib(result.total_bytes)} in {result.duration:.2f} s = {rate:.0f} MB/s; "
        f"{result.new_chunks} new chunks, {result.reused_chunks} reused, "
        f"uploaded {_mib(result.uploaded_bytes)} in {result.uploaded_objects} objects"
    )
