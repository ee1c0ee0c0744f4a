"""A host directory and an admin key directory for the ops tests, written from the session keys.

``make_host`` writes what ``opsbackup host init`` would (config, host key, dedup secret, root
public key, CA, credential) plus, when asked, a ``[keys]`` dir holding the deletion key file,
so ``opsbackup run``, ``forget`` and ``prune`` run as real processes against ``client_env``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from crypto.keyfile import TEST_PARAMS, PrivateKey, export_public_pem, save_key
from formats.roles import Role
from opsbackup.client.config import root_fingerprint
from opsbackup.server.accounts import Scope
from tests.client_support import ClientEnv

__all__ = ["PASSPHRASE", "REPO", "cli_env", "make_host", "opsbackup"]

PASSPHRASE = "correct horse battery staple"
REPO = Path(__file__).resolve().parents[2]


def _private(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def make_host(
    env: ClientEnv,
    directory: Path,
    *,
    paths: list[Path] = (),  # type: ignore[assignment]
    extra: str = "",
    scope: Scope = Scope.HOST,
    deletion_key: bool = False,
    host: str = "web1",
) -> Path:
    """Write a host directory; return its config.toml path."""
    directory.mkdir(parents=True, exist_ok=True)
    root = env.keys.root.public_key()
    (directory / "root.pub.pem").write_bytes(export_public_pem(root))
    (directory / "ca.pem").write_bytes(env.server.ca.read_bytes())
    _private(directory / "credential", env.tokens[scope])
    save_key(
        directory / "host.key",
        PrivateKey(role=Role.HOST, label=host, rsa_key=env.keys.hosts[host]),
        None,
        root_public_key=root,
    )
    save_key(
        directory / "dedup.key",
        PrivateKey(role=Role.DEDUP, label="dedup", dedup_secret=env.keys.dedup_secret),
        None,
        root_public_key=root,
    )
    keys = ""
    if deletion_key:
        (directory / "keys").mkdir(mode=0o700)
        save_key(
            directory / "keys" / "deletion.key",
            PrivateKey(role=Role.DELETION, label="deletion", rsa_key=env.keys.deletion),
            PASSPHRASE,
            root_public_key=root,
            cost=TEST_PARAMS,
        )
        _private(directory / "passphrase", PASSPHRASE)
        keys = '[keys]\ndir = "keys"\n'
    text = f"""
[server]
url = "{env.server.url}"
ca_file = "ca.pem"
credential_file = "credential"

[account]
root_key_file = "root.pub.pem"
root_fingerprint = "{root_fingerprint(root)}"

[host]
name = "{host}"
key_file = "host.key"
dedup_file = "dedup.key"
cache_dir = "cache"
state_file = "state/state.json"

[backup]
paths = [{", ".join(f'"{p}"' for p in paths)}]

{keys}
{extra}
"""
    return _private(directory / "config.toml", text)


def cli_env(directory: Path) -> dict[str, str]:
    """The environment of a CLI process: cheap test KDF, state under ``directory``."""
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    env.update(
        {
            "OPSBACKUP_INSECURE_TEST_KDF": "1",
            "XDG_STATE_HOME": str(directory / "xdg"),
            "PYTHONPATH": str(REPO),
        }
    )
    return env


def opsbackup(*args: str | Path, env: dict[str, str], **kwargs: object) -> subprocess.Popen[bytes]:
    """Start ``python -m opsbackup ARGS`` as a real process (stdout and stderr piped)."""
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "opsbackup", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )
