"""``opsbackup run``: everything the configuration says, under the run lock, with one summary.

Order: the ``[backup]`` paths (one snapshot), then each ``[[backup.command]]`` (one snapshot
each, its stdout streamed in as a file named after it), then forget by ``[retention]`` for this
host when the deletion key can be opened unattended. A command that exits non-zero is a warning,
and its output is never recorded: the stream raises an I/O error at its end, the engine drops the
file, and a snapshot holding only that file is not made at all (the engine refuses an empty
backup), so a partial dump is never stored as if it were whole.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyfile import load_key
from crypto.primitives import ct_equal, public_key_der
from formats.roles import Role
from opsbackup.backup import BackupRequest, BackupResult, run_backup
from opsbackup.client.account import Account
from opsbackup.client.config import BackupCommand, ClientConfig, default_state_file
from opsbackup.client.identity import HostIdentity
from opsbackup.client.passphrase import PASSPHRASE_FILE_ENV, read_passphrase_file
from opsbackup.errors import UsageError, WrongKeyError
from opsbackup.ops.forget import delete_in_batches, plan_forget
from opsbackup.ops.lock import LOCK_NAME
from opsbackup.ops.log import Log
from opsbackup.ops.retention import Policy

__all__ = ["CommandStream", "RunSummary", "lock_path", "policy_of", "run_all"]


class CommandStream(io.RawIOBase):
    """A command's stdout that, at its end, waits for the command and fails unless it exited 0."""

    def __init__(self, proc: subprocess.Popen[bytes], name: str) -> None:
        super().__init__()
        assert proc.stdout is not None
        self.proc, self.name, self._out = proc, name, proc.stdout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._out.read1(len(buffer)) if hasattr(self._out, "read1") else self._out.read(len(buffer))
        if data:
            n = len(data)
            buffer[:n] = data
            return n
        code = self.proc.wait()
        if code != 0:
            what = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            raise OSError(errno.EIO, f"command {self.name!r} failed ({what}); its output is not kept")
        return 0


@dataclass
class RunSummary:
    """What one run did: the JSON object of ``--json``, and the one summary line."""

    status: str = "done"
    exit_code: int = 0
    snapshots: list[str] = field(default_factory=list)
    files: int = 0
    dirs: int = 0
    total_bytes: int = 0
    new_bytes: int = 0
    stored_bytes: int = 0
    commands: dict[str, str] = field(default_factory=dict)
    forget: str = "not configured"
    warnings: int = 0
    duration: float = 0.0

    def add(self, result: BackupResult) -> None:
        self.snapshots.append(result.backup_id)
        self.files += result.files
        self.dirs += result.dirs
        self.total_bytes += result.total_bytes
        self.new_bytes += result.new_bytes
        self.stored_bytes += result.uploaded_bytes

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "snapshots": self.snapshots,
            "files": self.files,
            "dirs": self.dirs,
            "total_bytes": self.total_bytes,
            "new_bytes": self.new_bytes,
            "stored_bytes": self.stored_bytes,
            "commands": self.commands,
            "forget": self.forget,
            "warnings": self.warnings,
            "duration": round(self.duration, 3),
        }

    def line(self) -> str:
        return (
            f"opsbackup run: {self.status}: {len(self.snapshots)} snapshots, {self.files} files, "
            f"{self.total_bytes} bytes read, {self.new_bytes} new, {self.stored_bytes} stored, "
            f"{len(self.commands)} commands, forget {self.forget}, {self.warnings} warnings, "
            f"{self.duration:.1f} s"
        )


def lock_path(config: ClientConfig) -> Path:
    """The run lock: ``run.lock`` next to the host's state file (the writable state directory)."""
    host = config.need_host()
    state = host.state_file if host.state_file is not None else default_state_file()
    return state.parent / LOCK_NAME


def policy_of(config: ClientConfig) -> Policy | None:
    r = config.retention
    if r is None:
        return None
    return Policy(r.keep_last, r.keep_hourly, r.keep_daily, r.keep_weekly, r.keep_monthly, r.keep_yearly)


def _identity(config: ClientConfig) -> HostIdentity:
    host = config.need_host()
    root = config.need_account().root_public_key
    signing = load_key(host.key_file, None, expect_role=Role.HOST)
    dedup = load_key(host.dedup_file, None, expect_role=Role.DEDUP)
    for key, path in ((signing, host.key_file), (dedup, host.dedup_file)):
        if not ct_equal(public_key_der(key.root_public_key), public_key_der(root)):
            raise WrongKeyError(f"key file {path} belongs to another account than the configured root key")
    return HostIdentity(host.name, signing.private_key, dedup.secret, host.cache_dir)


def _command_backup(
    account: Account, identity: HostIdentity, command: BackupCommand, log: Log
) -> tuple[BackupResult | None, str]:
    try:
        proc = subprocess.Popen(  # an argv list from the root-owned config, no shell
            list(command.command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, close_fds=True
        )
    except OSError as exc:
        log("warning", f"command {command.name!r} could not be started: {exc.strerror or exc}")
        return None, f"not started ({exc.strerror or exc})"
    stream = CommandStream(proc, command.name)
    tags = ("command",) + ((f"command={command.name}",) if _tag_ok(command.name) else ())
    result: BackupResult | None = None
    try:
        request = BackupRequest(stdin=io.BufferedReader(stream), stdin_name=command.name, tags=tags)
        result = run_backup(account, identity, request)
    except UsageError:
        # The stream's only file failed (the command failed): the engine stores no snapshot at all.
        if proc.poll() in (None, 0):
            raise
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    code = proc.returncode
    if code == 0:
        return result, "ok"
    return result, f"killed by signal {-code}" if code < 0 else f"failed (exit status {code})"


def _tag_ok(name: str) -> bool:
    return len(name) <= 50 and all(c.isascii() and (c.isalnum() or c in "._:=@+-") for c in name)


def _deletion_key(config: ClientConfig) -> tuple[rsa.RSAPrivateKey | None, str]:
    """The deletion private key when it can be opened unattended, else None and why not."""
    if config.keys is None:
        return None, "skipped (no [keys] dir: this host holds no deletion key)"
    path = config.keys.dir / "deletion.key"
    if not path.exists():
        return None, f"skipped (no {path}: this host holds no deletion key)"
    passphrase_file = os.environ.get(PASSPHRASE_FILE_ENV)
    if not passphrase_file:
        return None, f"skipped (no {PASSPHRASE_FILE_ENV} to open {path} unattended)"
    key = load_key(path, read_passphrase_file(Path(passphrase_file)), expect_role=Role.DELETION)
    root = config.need_account().root_public_key
    if not ct_equal(public_key_der(key.root_public_key), public_key_der(root)):
        raise WrongKeyError(f"key file {path} belongs to another account than the configured root key")
    return key.private_key, ""


def run_all(config: ClientConfig, account: Account, log: Log, summary: RunSummary) -> None:
    """Back up the paths, then each command, then forget; fills ``summary`` (warnings are logged)."""
    started = time.monotonic()
    identity = _identity(config)
    backup = config.backup
    if backup.paths:
        request = BackupRequest(
            paths=tuple(p.absolute() for p in backup.paths),
            excludes=backup.exclude,
            tags=("paths",),
            one_file_system=backup.one_file_system,
        )
        result = run_backup(account, identity, request)
        summary.add(result)
        for warning in result.warnings:
            log("warning", warning)
            summary.warnings += 1
    for command in backup.commands:
        result_or_none, status = _command_backup(account, identity, command, log)
        summary.commands[command.name] = status
        if result_or_none is not None:
            summary.add(result_or_none)
            for warning in result_or_none.warnings:
                log("warning", warning)
                summary.warnings += 1
        if status != "ok" and (result_or_none is None or not result_or_none.warnings):
            log("warning", f"command {command.name!r}: {status}")
            summary.warnings += 1
    policy = policy_of(config)
    if policy is not None:
        key, why = _deletion_key(config)
        if key is None:
            summary.forget = why
            log("notice", f"forget {why}")
        else:
            plan = plan_forget(account, policy, identity.name)
            gone = [(vm.host, vm.manifest.backup_id) for vm in plan.removed]
            if gone:
                delete_in_batches(account, key, manifests=gone)
            summary.forget = f"removed {len(gone)} snapshots"
    summary.duration = time.monotonic() - started
