"""A real S3 API server on loopback for the S3 backend's tests: moto's standalone server.

:func:`moto_endpoint` starts one moto server (``moto.server.ThreadedMotoServer`` in a child
process) per test process (each xdist worker has its own) on a free port and returns its URL;
tests then talk to it over HTTP exactly as to AWS S3, MinIO or Ceph RGW, through
:class:`S3Store` and boto3. Credentials come from
the environment, as in production (boto3's chain): :func:`moto_endpoint` sets dummy ones.
:func:`new_bucket` makes a fresh bucket, so tests never see each other's objects.
:func:`s3_client_env` is ``tests.client_support.client_env`` over an S3Store (a new helper here
rather than a parameter there, so the shared helpers stay as they are).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import requests

from crypto.keyring import new_keyring_body
from crypto.private import sign_object
from formats.roles import Role
from opsbackup.pki import create_ca, issue_server_cert
from opsbackup.server.accounts import Scope, add_account, issue_credential
from opsbackup.server.app import create_app
from opsbackup.server.keyrings import store_keyring
from opsbackup.server.tls import serve_in_thread
from opsbackup.storage.base import ObjectStore
from opsbackup.storage.s3 import MIN_PART_SIZE, S3Store
from tests.client_support import AccountKeys, ClientEnv
from tests.server._support import LiveServer

__all__ = [
    "REGION",
    "S3_ENV",
    "moto_endpoint",
    "new_bucket",
    "new_store",
    "s3_client",
    "s3_client_env",
    "setup_account",
]

REGION = "us-east-1"
#: What a process needs in its environment to reach the moto server (dummy credentials).
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_lock = threading.Lock()
_endpoint: str | None = None


# Runs in the child: serve until the parent closes our stdin (so the server never outlives the tests).
# moto (5.2.5) checks If-None-Match and then writes, with no lock between: two racing creators can
# both pass the check (we saw it on CompleteMultipartUpload in 1 of 2 runs of 8 racers), which AWS
# S3 never allows. The two handlers that check and write run under one lock here, so the test
# server has S3's guarantee and the conformance suite tests our code, not moto's race.
_SERVE = """
import sys, threading
from moto.s3.responses import S3Response
from moto.server import ThreadedMotoServer
lock = threading.Lock()
def atomic(name):
    original = getattr(S3Response, name)
    def handler(self, *args, **kwargs):
        with lock:
            return original(self, *args, **kwargs)
    setattr(S3Response, name, handler)
atomic("put_object")
atomic("_key_response_post")  # CompleteMultipartUpload (and the other POSTs on a key)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


def moto_endpoint() -> str:
    """The URL of this process's moto S3 server (started on first use, stopped at exit).

    The server is a child process, not a thread: its memory and CPU are not the tests' (the
    conformance suite measures the client's memory with tracemalloc), as with a real S3 service.
    """
    global _endpoint
    with _lock:
        if _endpoint is None:
            for name, value in S3_ENV.items():
                os.environ.setdefault(name, value)
            os.environ.pop("AWS_PROFILE", None)
            child = subprocess.Popen(
                [sys.executable, "-c", _SERVE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, **S3_ENV},
            )
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            if not line.isdigit():
                child.kill()
                raise RuntimeError("the moto S3 server did not start")

            def stop(child: subprocess.Popen[bytes] = child) -> None:
                assert child.stdin is not None
                child.stdin.close()
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()

            atexit.register(stop)
            _endpoint = f"http://127.0.0.1:{int(line)}"
        return _endpoint


@functools.cache
def s3_client() -> Any:
    """One boto3 client per process for the tests (making one takes a few tenths of a second)."""
    endpoint = moto_endpoint()
    config = botocore.config.Config(s3={"addressing_style": "path"}, max_pool_connections=32)
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, config=config)


def new_bucket() -> str:
    """A new, empty bucket on the moto server."""
    name = f"opsbackup-{uuid.uuid4().hex[:16]}"
    s3_client().create_bucket(Bucket=name)
    return name


def new_store(*, prefix: str = "", part_size: int = MIN_PART_SIZE, bucket: str | None = None) -> S3Store:
    """An S3Store on a fresh bucket (or ``bucket``), with the smallest part size S3 allows."""
    return S3Store(bucket or new_bucket(), prefix=prefix, part_size=part_size, client=s3_client())


def setup_account(store: ObjectStore, keys: AccountKeys) -> tuple[bytes, dict[Scope, str], bytes]:
    """What ``client_env`` sets up, on any store: account "acme", keyring v1, one token per scope."""
    account = add_account(store, "acme", keys.root.public_key())
    add = [
        (Role.DATA, keys.data.public_key(), "data"),
        (Role.BROWSE, keys.browse.public_key(), "browse"),
        (Role.DELETION, keys.deletion.public_key(), "deletion"),
    ]
    add += [(Role.HOST, key.public_key(), name) for name, key in keys.hosts.items()]
    body = new_keyring_body(keys.root.public_key(), account_id=account.account_id, add=add)
    keyring = sign_object(keys.root, body)
    store_keyring(store, account, keyring)
    tokens = {scope: issue_credential(store, account, scope, f"{scope}-cred")[0] for scope in Scope}
    return account.account_id, tokens, keyring


@contextlib.contextmanager
def s3_client_env(root: Path, keys: AccountKeys, store: ObjectStore) -> Iterator[ClientEnv]:
    """``tests.client_support.client_env`` over ``store`` (an S3Store) instead of a directory."""
    ca = create_ca(root / "ca")
    srv = issue_server_cert(root / "ca", root / "srv", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    app = create_app(store)
    with serve_in_thread(app, host="127.0.0.1", port=0, cert=srv.cert, key=srv.key) as running:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(ca.cert)
        try:
            account_id, tokens, keyring = setup_account(store, keys)
            server = LiveServer(running.url, ca.cert, store, session)
            yield ClientEnv(server, keys, account_id, tokens, keyring, root)
        finally:
            session.close()
