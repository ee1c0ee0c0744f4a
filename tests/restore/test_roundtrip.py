"""Restore of honest snapshots: every kind of entry, sub paths, merging into an existing target."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from formats.backup_root import PackKind
from formats.tree import Kind
from opsbackup.restore import list_snapshots, open_snapshot, restore
from tests.client_support import ClientEnv
from tests.restore._build import Builder, Built, dir_, entries_from_dir, file, hardlink, symlink
from tests.restore._support import reader, tree_state

IS_ROOT = os.geteuid() == 0
LONG = b"n" * 255
ODD = b"caf\xe9-\xff\xfe"  # not UTF-8


def make_tree(src: Path) -> None:
    """A tree with every kind of entry, odd names and modes, several packs' worth of data."""
    base = os.fsencode(src)

    def p(rel: bytes) -> bytes:
        return base + b"/" + rel

    os.mkdir(base)
    for d in (b"empty", b"etc", b"ro", b"sticky", LONG, b"etc/deep", b"etc/deep/er"):
        os.mkdir(p(d))
    files = {
        b"etc/passwd": b"root:x:0:0::/root:/bin/sh\n",
        b"etc/empty": b"",
        b"etc/big.bin": os.urandom(200_000) + b"A" * 150_000,
        b"etc/hard1": b"linked content\n",
        b"etc/deep/er/leaf": b"leaf\n" * 3,
        b"ro/inside": b"read only dir\n",
        b"setuid": b"#!/bin/sh\n",
        ODD: b"odd name\n",
        LONG + b"/" + b"m" * 255: b"long names\n",
        b"zero-mode": b"secret\n",
    }
    for rel, content in files.items():
        with open(p(rel), "wb") as f:
            f.write(content)
    os.link(p(b"etc/hard1"), p(b"etc/hard2"))
    os.link(p(b"etc/hard1"), p(b"etc/deep/hard3"))
    os.symlink(b"/etc/passwd", p(b"etc/link_abs"))
    os.symlink(b"passwd", p(b"etc/link_rel"))
    os.symlink(b"../../nowhere", p(b"etc/dangling"))
    os.mkfifo(p(b"etc/fifo"), 0o640)
    if IS_ROOT:
        os.mknod(p(b"etc/null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.chown(p(b"etc/passwd"), 1234, 5678)
        os.chown(p(b"etc/link_rel"), 4321, 8765, follow_symlinks=False)
        os.chown(p(b"etc/deep"), 99, 98)
    os.chmod(p(b"setuid"), 0o4755)  # noqa: S103
    os.chmod(p(b"zero-mode"), 0)
    os.chmod(p(b"sticky"), 0o1777)  # noqa: S103
    os.utime(p(b"etc/passwd"), ns=(0, -123_456_789_000))  # before 1970
    os.utime(p(b"etc/link_rel"), ns=(0, 1_500_000_000_000_000_001), follow_symlinks=False)
    os.chmod(p(b"ro"), 0o555)  # noqa: S103
    for d in (b"etc/deep/er", b"etc/deep", b"etc", b"empty", b"ro", b"sticky"):
        os.utime(p(d), ns=(0, 1_400_000_000_000_000_000 + len(d)))


def backup_of(env: ClientEnv, src: Path, **options: object) -> Built:
    builder = Builder(env.keys, env.account_id)
    built = builder.build(entries_from_dir(src), **options)
    builder.upload(env, built)
    return built


def test_round_trip_of_every_kind(env: ClientEnv, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    built = backup_of(env, tmp_path / "src")
    assert len(built.pack_names(PackKind.DATA)) >= 3
    kinds = {r.kind for r in built.records}
    assert kinds == set(Kind)
    account = reader(env)
    (vm,) = list_snapshots(account)
    snapshot = open_snapshot(account, vm, env.keys.data)
    result = restore(account, snapshot, env.keys.data, tmp_path / "out", restore_owners=IS_ROOT)
    src = tree_state(tmp_path / "src")
    assert tree_state(tmp_path / "out") == src
    assert result.files == 10
    assert result.hardlinks == 2
    assert result.symlinks == 3
    assert result.bytes == sum(v.size for k, v in src.items() if stat.S_ISREG(v.mode) and v.first == k)
    assert not [n for n in os.listdir(tmp_path / "out") if n.startswith(".opsbackup")]
    out = os.fsencode(tmp_path / "out")
    assert os.stat(out + b"/etc/hard1").st_ino == os.stat(out + b"/etc/deep/hard3").st_ino
    assert result.to_json()["files"] == 10


def test_restore_of_a_sub_path_keeps_its_place_and_parents(env: ClientEnv, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    backup_of(env, tmp_path / "src", node_records=2)
    account = reader(env)
    (vm,) = list_snapshots(account)
    snapshot = open_snapshot(account, vm, env.keys.data)
    restore(account, snapshot, env.keys.data, tmp_path / "out", [b"/etc/deep/"], restore_owners=IS_ROOT)
    state = tree_state(tmp_path / "out")
    src = tree_state(tmp_path / "src")
    assert sorted(state) == [b"etc", b"etc/deep", b"etc/deep/er", b"etc/deep/er/leaf", b"etc/deep/hard3"]
    for rel in (b"etc/deep", b"etc/deep/er", b"etc/deep/er/leaf"):
        assert state[rel] == src[rel]
    # The hard link's target (etc/hard1) was not selected: the link is restored as that file.
    assert state[b"etc/deep/hard3"].detail == src[b"etc/hard1"].detail
    assert state[b"etc"].mode == src[b"etc"].mode  # a parent made by the restore gets its recorded mode


def test_records_under_a_path_seek_and_stay_in_the_subtree(env: ClientEnv, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    backup_of(env, tmp_path / "src", node_records=2)
    account = reader(env)
    (vm,) = list_snapshots(account)
    snapshot = open_snapshot(account, vm, env.keys.browse)
    paths = [r.path for r in snapshot.records(b"etc/deep") if r.kind is not Kind.CONTINUATION]
    assert paths == [b"etc/deep", b"etc/deep/er", b"etc/deep/er/leaf", b"etc/deep/hard3"]
    big = [r for r in snapshot.records(b"etc/big.bin")]
    assert big[0].kind is Kind.FILE
    assert {r.kind for r in big[1:]} == {Kind.CONTINUATION}
    assert len(big) > 3  # the file continues across nodes
    everything = [r.path for r in snapshot.records() if r.kind is not Kind.CONTINUATION]
    assert everything == sorted(everything, key=lambda p: p.split(b"/"))


def test_restore_merges_into_an_existing_target(env: ClientEnv, tmp_path: Path) -> None:
    builder = Builder(env.keys, env.account_id)
    built = builder.build(
        [dir_(b"etc"), file(b"etc/hosts", b"new hosts\n"), file(b"etc/motd", b"hello\n"), file(b"top", b"t")]
    )
    builder.upload(env, built)
    target = tmp_path / "target"
    (target / "etc").mkdir(parents=True)
    (target / "etc" / "hosts").write_bytes(b"old hosts\n")
    (target / "etc" / "keep").write_bytes(b"untouched\n")
    (target / "other").write_bytes(b"other\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (target / "top").symlink_to(outside / "victim")  # an existing symlink is replaced, not followed
    account = reader(env)
    (vm,) = list_snapshots(account)
    restore(account, open_snapshot(account, vm, env.keys.data), env.keys.data, target)
    assert (target / "etc" / "hosts").read_bytes() == b"new hosts\n"
    assert (target / "etc" / "keep").read_bytes() == b"untouched\n"
    assert (target / "etc" / "motd").read_bytes() == b"hello\n"
    assert (target / "other").read_bytes() == b"other\n"
    assert not (target / "top").is_symlink()
    assert (target / "top").read_bytes() == b"t"
    assert list(outside.iterdir()) == []


def test_existing_symlink_to_a_directory_in_the_target_is_replaced(env: ClientEnv, tmp_path: Path) -> None:
    builder = Builder(env.keys, env.account_id)
    built = builder.build([dir_(b"etc"), file(b"etc/passwd", b"restored\n")])
    builder.upload(env, built)
    target, outside = tmp_path / "target", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    (outside / "passwd").write_bytes(b"outside\n")
    (target / "etc").symlink_to(outside)
    account = reader(env)
    (vm,) = list_snapshots(account)
    restore(account, open_snapshot(account, vm, env.keys.data), env.keys.data, target)
    assert (outside / "passwd").read_bytes() == b"outside\n"
    assert not (target / "etc").is_symlink()
    assert (target / "etc" / "passwd").read_bytes() == b"restored\n"


def test_a_file_over_an_existing_directory_is_refused_before_any_move(env: ClientEnv, tmp_path: Path) -> None:
    from opsbackup.errors import UsageError
    from tests.restore._support import target_state

    builder = Builder(env.keys, env.account_id)
    built = builder.build([file(b"a", b"file a"), file(b"b", b"file b")])
    builder.upload(env, built)
    target = tmp_path / "target"
    (target / "b").mkdir(parents=True)
    (target / "b" / "inner").write_bytes(b"x")
    before = target_state(target)
    account = reader(env)
    (vm,) = list_snapshots(account)
    with pytest.raises(UsageError, match="is a directory, but the backup holds a file"):
        restore(account, open_snapshot(account, vm, env.keys.data), env.keys.data, target)
    assert target_state(target) == before


def test_without_owners_set_id_bits_are_dropped(env: ClientEnv, tmp_path: Path) -> None:
    builder = Builder(env.keys, env.account_id)
    built = builder.build([symlink(b"l", b"suid"), file(b"plain", b"y", 0o640), file(b"suid", b"x", 0o4755)])
    builder.upload(env, built)
    account = reader(env)
    (vm,) = list_snapshots(account)
    restore(
        account,
        open_snapshot(account, vm, env.keys.data),
        env.keys.data,
        tmp_path / "o",
        restore_owners=False,
    )
    assert stat.S_IMODE(os.stat(tmp_path / "o" / "suid").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "o" / "plain").st_mode) == 0o640


def test_hard_links_to_one_file_from_a_link_group(env: ClientEnv, tmp_path: Path) -> None:
    builder = Builder(env.keys, env.account_id)
    built = builder.build(
        [
            dir_(b"a"),
            file(b"a/f", b"shared", link_group=1),
            dir_(b"b"),
            hardlink(b"b/g", b"a/f"),
            hardlink(b"b/h", b"a/f"),
        ]
    )
    builder.upload(env, built)
    account = reader(env)
    (vm,) = list_snapshots(account)
    snapshot = open_snapshot(account, vm, env.keys.data)
    restore(account, snapshot, env.keys.data, tmp_path / "o", [b"b"])
    g, h = os.stat(tmp_path / "o" / "b" / "g"), os.stat(tmp_path / "o" / "b" / "h")
    assert g.st_ino == h.st_ino
    assert g.st_nlink == 2
    assert (tmp_path / "o" / "b" / "g").read_bytes() == b"shared"
    assert not (tmp_path / "o" / "a").exists()


def test_several_paths_nested_ones_once(env: ClientEnv, tmp_path: Path) -> None:
    builder = Builder(env.keys, env.account_id)
    built = builder.build(
        [
            dir_(b"a"),
            dir_(b"a/b"),
            file(b"a/b/c", b"c"),
            file(b"a/d", b"d"),
            dir_(b"e"),
            file(b"e/f", b"f"),
            file(b"g", b"g"),
        ]
    )
    builder.upload(env, built)
    account = reader(env)
    (vm,) = list_snapshots(account)
    result = restore(
        account,
        open_snapshot(account, vm, env.keys.data),
        env.keys.data,
        tmp_path / "o",
        [b"a/b", b"a", b"g"],
    )
    assert sorted(tree_state(tmp_path / "o")) == [b"a", b"a/b", b"a/b/c", b"a/d", b"g"]
    assert result.files == 3


def test_paths_longer_than_path_max(env: ClientEnv, tmp_path: Path) -> None:
    parts = [bytes([97 + i % 26]) * 200 for i in range(30)]  # a 6 kB path
    entries = [dir_(b"/".join(parts[: i + 1])) for i in range(len(parts))]
    entries.append(file(b"/".join(parts) + b"/leaf", b"deep"))
    builder = Builder(env.keys, env.account_id)
    built = builder.build(entries)
    builder.upload(env, built)
    account = reader(env)
    (vm,) = list_snapshots(account)
    restore(account, open_snapshot(account, vm, env.keys.data), env.keys.data, tmp_path / "o")
    fd = os.open(tmp_path / "o", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            new = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = new
        leaf = os.open(b"leaf", os.O_RDONLY, dir_fd=fd)
        assert os.read(leaf, 10) == b"deep"
        os.close(leaf)
    finally:
        os.close(fd)
