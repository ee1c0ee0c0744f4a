"""GnuPG homes for tests: a temporary GNUPGHOME with a fake pinentry, loopback allowed, agents stopped.

Shared by the crypto.gpg tests and the GnuPG end-to-end tests. Keys are generated with the real
gpg; ``s2k-count`` is fixed so generation does not calibrate (slow) each time.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from crypto import _gpg_run, gpg

__all__ = ["PASSPHRASE", "Home", "agent_pids", "drop_home", "make_home"]

PASSPHRASE = "correct horse battery"

# A pinentry that answers from a file beside it, so the agent's own pinentry path is exercised.
FAKE_PINENTRY = """#!/bin/sh
echo "OK Pleased to meet you"
while read -r line; do
  case "$line" in
    GETPIN*) answer=$(cat "{answer}")
      if [ "$answer" = cancel ]; then echo "ERR 83886179 Operation cancelled"
      else echo "D $answer"; echo OK; fi ;;
    BYE*) echo OK; exit 0 ;;
    *) echo OK ;;
  esac
done
"""


@dataclass(frozen=True)
class Home:
    path: str
    answer: Path  # what the fake pinentry answers: a passphrase, or "cancel"

    def gpg(self, *args: str, stdin: bytes = b"") -> bytes:
        cmd = ["gpg", "--homedir", self.path, "--batch", "--pinentry-mode", "loopback"]
        cmd += ["--passphrase", PASSPHRASE, *args]
        return subprocess.run(cmd, input=stdin, capture_output=True, check=True, timeout=120).stdout

    def fingerprint(self, uid: str) -> str:
        out = self.gpg("--with-colons", "--list-keys", uid).decode()
        return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))

    def export(self, fpr: str) -> bytes:
        return gpg.export_public_key(fpr, gnupghome=self.path)


def agent_pids(home: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and home.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def make_home() -> Home:
    path = tempfile.mkdtemp(prefix="obgt-", dir="/tmp")
    answer = Path(path, "pinentry-answer")
    answer.write_text(PASSPHRASE)
    pinentry = Path(path, "pinentry.sh")
    pinentry.write_text(FAKE_PINENTRY.format(answer=answer))
    pinentry.chmod(0o700)
    Path(path, "gpg-agent.conf").write_text(
        "allow-loopback-pinentry\ndefault-cache-ttl 0\nmax-cache-ttl 0\n"
        "s2k-count 65536\n"  # a fixed count: no slow calibration at each key generation
        f"pinentry-program {pinentry}\n"
    )
    return Home(path, answer)


def drop_home(home: Home) -> None:
    _gpg_run.kill_agents(home.path)
    # gpgconf --kill asks the agent to stop and returns; give it a bounded moment to exit.
    deadline = time.monotonic() + 10
    while (leftover := agent_pids(home.path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(home.path, ignore_errors=True)
    assert leftover == [], f"gpg-agent still running for {home.path}: {leftover}"
