"""Key rotation and recipients through the real CLI: keys rotate, add-recipient (OpenPGP), restore
--gpg-key through gpg-agent, remove-recipient; each against a live TLS server and real backups.

The OpenPGP key lives in a temporary GNUPGHOME whose gpg-agent uses a fake pinentry (it answers the
passphrase from a file, as a person or a smartcard PIN prompt would): the restore exercises the
agent's own pinentry path, not loopback.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto.dedup import epoch_tag
from crypto.gpg import export_public_key, openpgp_key_id
from crypto.keyfile import load_key, load_public
from formats.roles import Role
from opsbackup.demo.sample import compare_trees
from tests.cli._world import World, make_world, ok
from tests.gpg_support import Home, drop_home, make_home

#: The exit code of WrongKeyError (docs/exit-codes.md).
WRONG_KEY = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("keys-cli")) as w:
        yield w


@pytest.fixture(scope="module")
def gpg_home() -> Iterator[tuple[Home, str]]:
    home = make_home()
    try:
        home.gpg("--quick-gen-key", "Escrow <escrow@example.org>", "ed25519", "cert", "0")
        fpr = home.fingerprint("escrow@example.org")
        home.gpg("--quick-add-key", fpr, "cv25519", "encr", "0")
        yield home, fpr
    finally:
        drop_home(home)


def restore_to(world: World, target: Path, *extra: str | Path) -> int:
    done = world.admin("restore", "latest", "--target", target, *extra)
    if done.code == 0:
        compare_trees(world.src, next(p for p in target.rglob("src") if p.is_dir()))
    return done.code


def test_rotate_data_then_only_the_new_key_restores(world: World, tmp_path: Path) -> None:
    done = ok(world.admin("keys", "rotate", "--role", "data"))
    assert "1 of 1 backups re-wrapped" in done.text
    assert restore_to(world, tmp_path / "new") == 0  # the config's [keys] dir now holds the new key
    old = next(world.keys.glob("data.key.replaced-*"))
    refused = world.admin("restore", "latest", "--target", tmp_path / "old", "--key", old)
    assert refused.code == WRONG_KEY, refused
    assert "rotated out" in refused.err
    assert not (tmp_path / "old").exists()


def test_openpgp_recipient_added_restores_through_gpg_agent_and_is_removed(
    world: World, tmp_path: Path, gpg_home: tuple[Home, str]
) -> None:
    home, fpr = gpg_home
    gnupg = ("--gnupghome", home.path)
    added = ok(world.admin("keys", "add-recipient", "--role", "data", "--openpgp", fpr, *gnupg))
    assert "1 of 1 backups re-wrapped" in added.text
    assert restore_to(world, tmp_path / "gpg", "--gpg-key", fpr, *gnupg) == 0
    # A fingerprint that is no recipient is refused before anything is written.
    stranger = "0" * 40
    refused = world.admin("restore", "latest", "--target", tmp_path / "x", "--gpg-key", stranger)
    assert refused.code == WRONG_KEY, refused
    # Removing it re-wraps without it: the same OpenPGP key opens nothing any more.
    key_id = openpgp_key_id(export_public_key(fpr, gnupghome=home.path)).hex()[:16]
    removed = ok(world.admin("keys", "remove-recipient", key_id))
    assert "1 of 1 backups re-wrapped without it" in removed.text
    gone = world.admin(
        "restore", "latest", "--target", tmp_path / "gone", "--gpg-key", fpr, "--gnupghome", home.path
    )
    assert gone.code == WRONG_KEY, gone
    assert not (tmp_path / "gone").exists()


def test_the_last_data_key_cannot_be_removed(world: World) -> None:
    data_id = load_public(world.keys / "data.key").key_id.hex()[:16]
    refused = world.admin("keys", "remove-recipient", data_id)
    assert refused.code != 0
    assert "last data key" in refused.err


def test_rotate_dedup_writes_a_new_secret_and_keeps_the_old_one(world: World) -> None:
    old = load_key(world.keys / "dedup.key", None, expect_role=Role.DEDUP).secret
    done = ok(world.admin("keys", "rotate", "--role", "dedup"))
    new = load_key(world.keys / "dedup.key", None, expect_role=Role.DEDUP).secret
    assert new != old
    assert f"dedup epoch {epoch_tag(old)} -> {epoch_tag(new)}" in done.text
    replaced = world.keys / f"dedup.key.replaced-{epoch_tag(old)}"
    assert load_key(replaced, None, expect_role=Role.DEDUP).secret == old
    assert stat.S_IMODE((world.keys / "dedup.key").stat().st_mode) == 0o600
