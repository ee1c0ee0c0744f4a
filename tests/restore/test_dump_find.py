"""dump (one file to a stream) and find (names across snapshots)."""

from __future__ import annotations

import io
import os

import pytest

from formats.tree import Kind
from opsbackup.errors import IntegrityError, NotFoundError, UsageError, WrongKeyError
from opsbackup.restore import dump, find, list_snapshots, open_snapshot
from opsbackup.restore.find import matcher
from tests.client_support import ClientEnv
from tests.restore._build import Builder, Built, Entry, dir_, fifo, file, hardlink, symlink
from tests.restore._support import reader

BIG = os.urandom(120_000)
ODD = b"r\xe9sum\xe9.txt"  # Latin-1, not UTF-8


def upload(env: ClientEnv, entries: list[Entry], **options: object) -> Built:
    builder = Builder(env.keys, env.account_id)
    built = builder.build(entries, **options)
    builder.upload(env, built)
    return built


TREE = [
    dir_(b"etc"),
    file(b"etc/big", BIG, link_group=1),
    fifo(b"etc/fifo"),
    file(b"etc/hosts", b"127.0.0.1 localhost\n"),
    dir_(b"home"),
    hardlink(b"home/link", b"etc/big"),
    file(b"home/" + ODD, b"cv"),
    symlink(b"home/sym", b"../etc/hosts"),
]


def test_dump_files_and_hard_links(env: ClientEnv) -> None:
    upload(env, TREE)
    account = reader(env)
    (vm,) = list_snapshots(account)
    snapshot = open_snapshot(account, vm, env.keys.browse)
    out = io.BytesIO()
    assert dump(account, snapshot, env.keys.data, b"/etc/big", out) == len(BIG)
    assert out.getvalue() == BIG
    out = io.BytesIO()
    dump(account, snapshot, env.keys.data, b"home/link", out)
    assert out.getvalue() == BIG
    out = io.BytesIO()
    dump(account, snapshot, env.keys.data, b"home/" + ODD, out)
    assert out.getvalue() == b"cv"


@pytest.mark.parametrize(
    ("path", "error", "match"),
    [
        (b"etc", UsageError, "is a directory"),
        (b"home/sym", UsageError, "is a symlink"),
        (b"etc/fifo", UsageError, "is a special file"),
        (b"etc/nope", NotFoundError, "not in backup"),
        (b"", UsageError, "name the file"),
        (b"../etc/hosts", UsageError, "not a path inside a backup"),
    ],
)
def test_dump_refuses_what_is_not_a_file(
    env: ClientEnv, path: bytes, error: type[Exception], match: str
) -> None:
    upload(env, TREE)
    account = reader(env)
    (vm,) = list_snapshots(account)
    snapshot = open_snapshot(account, vm, env.keys.data)
    out = io.BytesIO()
    with pytest.raises(error, match=match):
        dump(account, snapshot, env.keys.data, path, out)
    assert out.getvalue() == b""


def test_dump_stops_at_a_bad_chunk(env: ClientEnv) -> None:
    def damage(pack: bytes) -> bytes:
        data = bytearray(pack)
        data[-60] ^= 1  # in the sealed index: the pack does not open
        return bytes(data)

    upload(env, [file(b"f", BIG)], data_pack=damage)
    account = reader(env)
    (vm,) = list_snapshots(account)
    with pytest.raises(IntegrityError, match="does not open"):
        dump(account, open_snapshot(account, vm, env.keys.data), env.keys.data, b"f", io.BytesIO())


def test_dump_with_the_browse_key(env: ClientEnv) -> None:
    upload(env, TREE)
    account = reader(env)
    (vm,) = list_snapshots(account)
    with pytest.raises(WrongKeyError, match="browse key"):
        dump(
            account, open_snapshot(account, vm, env.keys.browse), env.keys.browse, b"etc/hosts", io.BytesIO()
        )


def test_find_by_base_name_and_by_path(env: ClientEnv) -> None:
    first = upload(env, TREE, time=1_700_000_000)
    second = upload(env, [dir_(b"etc"), file(b"etc/hosts", b"changed")], time=1_700_000_100)
    account = reader(env)
    hits = [(vm.backup_id, rec.path) for vm, rec in find(account, "hosts", env.keys.browse)]
    assert hits == [(first.id, b"etc/hosts"), (second.id, b"etc/hosts")]
    hits = [(vm.backup_id, rec.path) for vm, rec in find(account, "/etc/*", env.keys.data)]
    assert hits == [
        (first.id, b"etc/big"),
        (first.id, b"etc/fifo"),
        (first.id, b"etc/hosts"),
        (second.id, b"etc/hosts"),
    ]
    kinds = {rec.kind for _, rec in find(account, "*", env.keys.browse)}
    assert Kind.CONTINUATION not in kinds
    assert Kind.HARDLINK in kinds
    assert [rec.path for _, rec in find(account, "r?sum?.txt", env.keys.browse)] == [b"home/" + ODD]
    assert list(find(account, "nothing-*", env.keys.browse)) == []


def test_find_with_a_key_that_opens_nothing(env: ClientEnv) -> None:
    upload(env, TREE)
    account = reader(env)
    with pytest.raises(WrongKeyError):
        list(find(account, "*", env.keys.root))
    skipped: list[str] = []
    assert list(find(account, "*", env.keys.root, on_skip=lambda vm, exc: skipped.append(vm.backup_id))) == []
    assert len(skipped) == 1


def test_matcher_rules() -> None:
    assert matcher("*.conf")(b"etc/nginx/nginx.conf")
    assert not matcher("*.conf")(b"etc/nginx.conf.d")
    assert matcher("etc/*/nginx.conf")(b"etc/nginx/nginx.conf")
    assert not matcher("etc/*.conf")(b"etc/nginx/x")  # fnmatch's * crosses /, but the name must end .conf
    assert matcher("/etc/n*")(b"etc/nginx")
    assert not matcher("Hosts")(b"etc/hosts")  # case-sensitive
