"""Child process of the memory benchmark: one backup, then its own peak RSS as JSON on stdout.

Run by ``tests/bench/memory.py`` so that the client's peak RSS is measured apart from the server
(which runs in the parent). Arguments: a JSON file naming the server, CA, token, key PEMs, the
dedup secret (hex), the cache directory and the paths to back up.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from opsbackup.backup import BackupRequest, run_backup
from opsbackup.client.account import open_account
from opsbackup.client.identity import HostIdentity
from opsbackup.client.repository import Repository
from opsbackup.client.state import ClientState
from opsbackup.client.transport import Transport


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    host_key = load_pem_private_key(Path(spec["host_key"]).read_bytes(), password=None)
    root = load_pem_public_key(Path(spec["root_public"]).read_bytes())
    assert isinstance(host_key, rsa.RSAPrivateKey)
    assert isinstance(root, rsa.RSAPublicKey)
    transport = Transport(spec["url"], Path(spec["ca"]), spec["token"])
    account = open_account(Repository(transport), root, ClientState(Path(spec["state"])))
    host = HostIdentity(
        name=spec["host"],
        signing_key=host_key,
        dedup_secret=bytes.fromhex(spec["dedup"]),
        cache_dir=Path(spec["cache"]),
    )
    result = run_backup(account, host, BackupRequest(paths=tuple(Path(p) for p in spec["paths"])))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump({"result": result.to_json(), "peak_rss_kib": peak_kib}, sys.stdout)


if __name__ == "__main__":
    main()
