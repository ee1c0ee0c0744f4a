"""One release per test session (tools/release.py, signed with a throwaway GnuPG key), shared by workers.

Building takes about a minute, so the first worker that asks builds it under a file lock in the
session's shared temporary directory and the other workers reuse it (or its failure).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["ROOT", "Release", "gpg", "kill_agent", "require_tool", "run"]

ROOT = Path(__file__).resolve().parents[2]
RELEASE_UID = "opsbackup release test <release-test@example.invalid>"


@dataclass(frozen=True)
class Release:
    """What one run of tools/release.py produced: its output directory, the .deb and the signing key."""

    dist: Path
    deb: Path
    fingerprint: str
    public_key: Path  # the signing key's public half, ASCII-armoured
    seconds: float  # how long tools/release.py took


def run(
    cmd: list[str | Path], *, check: bool = True, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output as text; on failure (with ``check``) fail showing it."""
    argv = [str(c) for c in cmd]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, cwd=cwd)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _shared_dir(factory: pytest.TempPathFactory) -> Path:
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def require_tool(factory: pytest.TempPathFactory, tool: str, package: str) -> str:
    """The path of ``tool``; as root with apt-get, install ``package`` if missing; else fail saying so."""
    found = shutil.which(tool)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{tool} is missing: install the Debian package {package} (apt-get install {package})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with _locked(_shared_dir(factory) / "apt.lock"):
        if shutil.which(tool) is None:
            run(["apt-get", "update", "-q"], env=env)
            run(["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", package], env=env)
    found = shutil.which(tool)
    assert found, f"installing {package} did not provide {tool}"
    return found


def gpg(home: Path, *args: str | Path) -> list[str | Path]:
    """A batch-mode gpg command line using ``home``."""
    return ["gpg", "--homedir", home, "--batch", "--no-tty", *args]


def kill_agent(home: Path) -> None:
    """Stop the gpg-agent that gpg may have started for ``home``."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)


def _build(where: Path) -> dict[str, object]:
    home = where / "gnupg"
    home.mkdir(mode=0o700)
    try:
        run(gpg(home, "--passphrase", "", "--quick-gen-key", RELEASE_UID, "ed25519", "sign", "never"))
        listing = run(gpg(home, "--with-colons", "--list-secret-keys")).stdout
        fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        public = where / "release-key.asc"
        run(gpg(home, "--armor", "--output", public, "--export", fingerprint))
        started = time.monotonic()
        release: list[str | Path] = [
            sys.executable,
            ROOT / "tools/release.py",
            "--gpg-key",
            fingerprint,
            "--gnupghome",
            home,
        ]
        done = run([*release, "--out", where / "dist"], check=False)
        seconds = time.monotonic() - started
    finally:
        kill_agent(home)
    if done.returncode != 0:
        return {"error": f"tools/release.py exited {done.returncode}:\n{done.stdout}\n{done.stderr}"}
    return {"fingerprint": fingerprint, "public_key": str(public), "seconds": seconds, "stdout": done.stdout}


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """The release built once for the whole session (by whichever worker asked first)."""
    require_tool(tmp_path_factory, "gpg", "gnupg")
    shared = _shared_dir(tmp_path_factory)
    where = shared / "opsbackup-release"
    result = where / "result.json"
    with _locked(shared / "opsbackup-release.lock"):
        if not result.exists():
            where.mkdir(exist_ok=True)
            result.write_text(json.dumps(_build(where)))
    built = json.loads(result.read_text())
    if "error" in built:
        pytest.fail(built["error"])
    debs = sorted((where / "dist").glob("*.deb"))
    assert len(debs) == 1, f"expected one .deb in {where / 'dist'}, found {debs}"
    return Release(where / "dist", debs[0], built["fingerprint"], Path(built["public_key"]), built["seconds"])
