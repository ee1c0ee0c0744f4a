"""check: no private key, every problem on one line, nothing raised for what it finds."""

from __future__ import annotations

import os
from pathlib import Path

from formats.backup_root import PackKind
from opsbackup.restore import check, resolve_snapshot
from tests.client_support import ClientEnv
from tests.restore._build import Builder, Built, file, manifest_key, object_key, tamper
from tests.restore._support import reader


def make(env: ClientEnv, host: str = "web1", **options: object) -> Built:
    builder = Builder(env.keys, env.account_id, host)
    built = builder.build([file(b"f", os.urandom(70_000))], **options)
    builder.upload(env, built)
    return built


def two(env: ClientEnv) -> tuple[Built, Built]:
    a = make(env, time=1_700_000_000)
    return a, make(env, time=1_700_000_100, previous=a.hash)


def test_a_healthy_repository(env: ClientEnv) -> None:
    a, b = two(env)
    c = make(env, "web2")
    objects = {*a.sizes, *b.sizes, *c.sizes}
    for read_data in (False, True):
        result = check(reader(env), read_data=read_data)
        assert result.errors == [], result.errors
        assert result.ok
        assert result.counts["manifests"] == 3
        assert result.counts["hosts"] == 2
        assert result.counts["objects"] == len(objects)
        assert result.counts["bytes"] == sum({**a.sizes, **b.sizes, **c.sizes}.values())
        assert result.to_json()["ok"] is True


def test_missing_and_resized_objects(env: ClientEnv) -> None:
    a, b = two(env)
    gone = a.pack_names(PackKind.DATA)[0]
    env.server.store.delete(object_key(env, gone))
    cut = b.pack_names(PackKind.TREE)[0]
    tamper(env, object_key(env, cut), b.objects[cut][:-1])
    result = check(reader(env))
    assert any(gone.hex()[:16] in e and "missing" in e and f"web1/{a.id}" in e for e in result.errors)
    assert any(cut.hex()[:16] in e and "not the" in e for e in result.errors)
    assert len(result.errors) == 2
    assert not result.ok


def test_read_data_finds_what_sizes_cannot(env: ClientEnv) -> None:
    a, _ = two(env)
    name = a.pack_names(PackKind.DATA)[-1]
    data = bytearray(a.objects[name])
    data[30] ^= 1
    tamper(env, object_key(env, name), bytes(data))
    tamper(env, object_key(env, a.manifest.chunk_index), b"x" * a.sizes[a.manifest.chunk_index])
    assert check(reader(env)).errors == []
    result = check(reader(env), read_data=True)
    assert len(result.errors) == 2
    assert all("altered" in e for e in result.errors)
    assert result.counts["damaged"] == 2


def test_read_data_parses_what_it_reads(env: ClientEnv) -> None:
    """A pack whose bytes match the signed hash but do not parse (a host's fault) is reported."""
    broken = make(env, data_pack=lambda pack: pack[:-1] + b"X")
    result = check(reader(env), read_data=True)
    data_packs = len(broken.pack_names(PackKind.DATA))
    assert len(result.errors) == data_packs == result.counts["damaged"]
    assert all("trailer is not recognised" in e and f"web1/{broken.id}" in e for e in result.errors)


def test_bad_manifests_and_chains(env: ClientEnv, tmp_path: Path) -> None:
    a, b = two(env)
    fork = make(env, time=1_700_000_200, previous=a.hash)
    signed = bytearray(b.signed)
    signed[-3] ^= 1
    state = tmp_path / "state.json"
    resolve_snapshot(env.account(state=state), "latest")  # sees the fork as newest
    tamper(env, manifest_key(env, "web1", b.id), bytes(signed))
    env.server.store.delete(manifest_key(env, "web1", fork.id))
    result = check(env.account(state=state))
    assert any(f"manifest web1/{b.id}" in e for e in result.errors)
    assert any("older backup of host web1" in e for e in result.errors)
    assert result.counts["manifests"] == 1


def test_forked_history_and_foreign_previous(env: ClientEnv) -> None:
    a, _ = two(env)
    make(env, time=1_700_000_200, previous=a.hash)
    other = make(env, "web2", time=1_700_000_300, previous=a.hash)
    result = check(reader(env))
    assert any("forked history" in e for e in result.errors)
    assert any(f"web2/{other.id} names a backup of host web1" in e for e in result.errors)
