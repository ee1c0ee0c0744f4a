#!/usr/bin/env python3
"""Install everything the tests need into ./.venv, then run every check and every test.

This is the README's test command (``python3 tools/test.py``) and what ``.ci/run`` calls. It needs
only Python 3.11+; as root on Debian it also installs the system tools the tests drive for real
(openssl, gpg). Extra arguments go to pytest. Exit code: non-zero as soon as any step fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
#: Tools the tests drive for real -> the Debian package that provides each. The packaging tests
#: build the .deb with Debian's python3 and dpkg tools, and check it with lintian.
SYSTEM_TOOLS = {
    "openssl": "openssl",
    "gpg": "gnupg",
    "gpg-agent": "gpg-agent",
    "dpkg-deb": "dpkg",
    "dpkg-shlibdeps": "dpkg-dev",
    "strip": "binutils",
    "gcc": "gcc",
    "lintian": "lintian",
    "/usr/bin/python3": "python3",
    "systemd-analyze": "systemd",
}


def run(*cmd: str | Path) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    done = subprocess.run(list(map(str, cmd)), cwd=ROOT, check=False)
    if done.returncode != 0:
        sys.exit(f"tools/test.py: step failed with exit code {done.returncode}: {' '.join(map(str, cmd))}")


def install_system_tools() -> None:
    missing = sorted({pkg for tool, pkg in SYSTEM_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(f"tools/test.py: the tests need these packages; install them first: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env)


def main() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before anything is installed
        sys.exit("tools/test.py: opsbackup needs Python 3.11 or newer")
    install_system_tools()
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(BIN / "python", "-m", "pip", "install", "-q", "--upgrade", "pip")
    run(BIN / "python", "-m", "pip", "install", "-q", "-e", ".[test]")
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "mypy")
    run(BIN / "lint-imports")
    run(BIN / "python", "-m", "pytest", "-n", "2", *sys.argv[1:])


if __name__ == "__main__":
    main()
