"""Benchmark: the backup client's peak memory on a 2 GiB file and on 100,000 small files.

Not a test (nothing here asserts a time): it prints figures. The server runs in this process on
loopback TLS; each backup runs in a child process, whose peak RSS (``ru_maxrss``) is the client's
alone. Run: ``.venv/bin/python -m tests.bench.memory [--big-gib 2] [--small-files 100000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from crypto.primitives import random_bytes
from crypto.private import generate_rsa_key
from opsbackup.server.accounts import Scope
from tests.client_support import AccountKeys, ClientEnv, client_env

BLOCK = 8 << 20


def make_big_file(path: Path, size: int) -> None:
    """Half incompressible random blocks, half compressible text, so zstd and its skip both run."""
    text = (b"opsbackup memory benchmark line, compressible on purpose. " * 200)[: 1 << 20]
    with path.open("wb") as f:
        written = 0
        while written < size:
            block = os.urandom(BLOCK // 2) + text * ((BLOCK // 2) // len(text))
            block = block[: min(BLOCK, size - written)]
            f.write(block)
            written += len(block)


def make_small_files(root: Path, count: int) -> None:
    per_dir = 1000
    for i in range(count):
        d = root / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True)
        (d / f"f{i:06d}.txt").write_bytes(os.urandom(64).hex().encode() * (1 + i % 16))


def run_child(env: ClientEnv, work: Path, paths: list[Path], name: str) -> dict[str, object]:
    keys = env.keys
    host_pem = work / f"{name}-host.pem"
    host_pem.write_bytes(
        keys.hosts["web1"].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    root_pem = work / "root.pem"
    root_pem.write_bytes(
        keys.root.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    spec = {
        "url": env.server.url,
        "ca": str(env.server.ca),
        "token": env.tokens[Scope.HOST],
        "host_key": str(host_pem),
        "root_public": str(root_pem),
        "dedup": keys.dedup_secret.hex(),
        "cache": str(work / f"{name}-cache"),
        "state": str(work / f"{name}-state.json"),
        "host": "web1",
        "paths": [str(p) for p in paths],
    }
    spec_file = work / f"{name}.json"
    spec_file.write_text(json.dumps(spec))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench._backup_child", str(spec_file)],
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    out: dict[str, object] = json.loads(done.stdout)
    out["wall_s"] = round(time.perf_counter() - started, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big-gib", type=float, default=2.0)
    parser.add_argument("--small-files", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    keys = AccountKeys(
        root=generate_rsa_key(4096),
        data=generate_rsa_key(4096),
        browse=generate_rsa_key(4096),
        deletion=generate_rsa_key(3072),
        hosts={"web1": generate_rsa_key(3072), "web2": generate_rsa_key(3072)},
        dedup_secret=random_bytes(32),
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        with client_env(work / "env", keys) as env:
            big = work / "big"
            big.mkdir()
            size = int(args.big_gib * (1 << 30))
            make_big_file(big / "big.bin", size)
            small = work / "small"
            make_small_files(small, args.small_files)
            for name, paths, what in (
                ("big", [big], f"one {args.big_gib:g} GiB file"),
                ("small", [small], f"{args.small_files} small files"),
            ):
                out = run_child(env, work, paths, name)
                result = out["result"]
                assert isinstance(result, dict)
                peak_mib = int(str(out["peak_rss_kib"])) / 1024
                print(
                    f"{what:>24}: peak RSS {peak_mib:7.1f} MiB, wall {out['wall_s']} s, "
                    f"files {result.get('files')}, total {int(str(result.get('total_bytes'))) >> 20} MiB, "
                    f"uploaded {int(str(result.get('uploaded_bytes'))) >> 20} MiB"
                )


if __name__ == "__main__":
    main()
