"""``keys export --paper`` and ``keys import``: a paper key page carries admin key files to a fresh
machine byte for byte, verified, without replacing anything and without half-written files.

The commands are invoked directly (click's CliRunner on each module's ``command``); an error
surfaces as the :class:`OpsbackupError` it raises, whose exit code ``cli.main`` would return.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crypto.keyfile import TEST_PARAMS, PrivateKey, export_public_pem, load_key, save_key
from crypto.primitives import random_bytes
from crypto.private import generate_rsa_key
from formats import paper_key
from formats.roles import Role
from opsbackup.commands import keys_export, keys_import
from opsbackup.errors import FormatError, LocalIOError, NotFoundError, OpsbackupError, UsageError
from opsbackup.setup.admin import KEY_FILE_NAMES
from tests.client_support import AccountKeys

PASSPHRASE = "correct horse battery staple"
ADMIN = [Role.ROOT, Role.DATA, Role.BROWSE, Role.DELETION, Role.DEDUP]


def make_keys_dir(directory: Path, keys: AccountKeys) -> Path:
    """What ``keys init`` writes, from the session's RSA keys (fast: no key generation)."""
    directory.mkdir(mode=0o700)
    root = keys.root.public_key()
    rsa = {Role.ROOT: keys.root, Role.DATA: keys.data, Role.BROWSE: keys.browse, Role.DELETION: keys.deletion}
    for role in ADMIN:
        if role is Role.DEDUP:
            key = PrivateKey(role=role, label="dedup", dedup_secret=keys.dedup_secret)
            save_key(directory / KEY_FILE_NAMES[role], key, None, root_public_key=root)
        else:
            key = PrivateKey(role=role, label=role.label, rsa_key=rsa[role])
            save_key(
                directory / KEY_FILE_NAMES[role], key, PASSPHRASE, root_public_key=root, cost=TEST_PARAMS
            )
    (directory / "root.pub.pem").write_bytes(export_public_pem(root))
    return directory


@pytest.fixture
def keys_dir(tmp_path: Path, account_keys: AccountKeys) -> Path:
    return make_keys_dir(tmp_path / "admin", account_keys)


def invoke(module: object, args: Sequence[str | Path], input: str | None = None) -> Result:
    command = module.command  # type: ignore[attr-defined]
    return CliRunner().invoke(command, [str(a) for a in args], input=input, catch_exceptions=True)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def failure(result: Result, kind: type[OpsbackupError], *words: str) -> OpsbackupError:
    exc = result.exception
    assert isinstance(exc, kind), (result.output, exc)
    for word in words:
        assert word in exc.message, exc.message
    assert "\n" not in exc.message
    return exc


def export(keys_dir: Path, *extra: str | Path) -> str:
    return ok(invoke(keys_export, ["--paper", "--dir", keys_dir, *extra])).stdout


def fresh_import(target: Path, page: str) -> Result:
    return invoke(keys_import, ["--dir", target, "-"], input=page)


def test_export_then_import_on_a_fresh_machine_restores_every_file_byte_for_byte(
    keys_dir: Path, tmp_path: Path
) -> None:
    page = export(keys_dir, "--account-id", "00112233445566778899aabbccddeeff")
    assert page.startswith("opsbackup paper key v1\n")
    assert "account 00112233445566778899aabbccddeeff\n" in page
    assert max(len(line) for line in page.splitlines()) <= 72
    fresh = tmp_path / "fresh" / "keys"
    result = ok(fresh_import(fresh, page))
    for role in ADMIN:
        name = KEY_FILE_NAMES[role]
        assert (fresh / name).read_bytes() == (keys_dir / name).read_bytes()
        assert stat.S_IMODE((fresh / name).stat().st_mode) == 0o600
        assert name in result.stdout
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert (fresh / "root.pub.pem").read_bytes() == (keys_dir / "root.pub.pem").read_bytes()
    data = load_key(fresh / "data.key", PASSPHRASE, expect_role=Role.DATA)
    original = load_key(keys_dir / "data.key", PASSPHRASE, expect_role=Role.DATA)
    assert data.key_id == original.key_id
    assert "data key, label 'data', key id " + (data.key_id or b"").hex() in result.stdout
    assert "account id: 00112233445566778899aabbccddeeff" in result.stdout


def test_a_browse_only_page_for_an_auditor(keys_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "auditor.txt"
    ok(invoke(keys_export, ["--paper", "--dir", keys_dir, "--role", "browse", "-o", out]))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert "browse.key" in text
    assert "data.key" not in text
    assert "dedup.key" not in text
    auditor = tmp_path / "auditor"
    ok(invoke(keys_import, ["--dir", auditor, out]))
    assert sorted(p.name for p in auditor.iterdir()) == ["browse.key", "root.pub.pem"]
    load_key(auditor / "browse.key", PASSPHRASE, expect_role=Role.BROWSE)


def test_export_refuses_to_replace_an_output_file(keys_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "page.txt"
    out.write_text("something else\n")
    failure(invoke(keys_export, ["--paper", "--dir", keys_dir, "-o", out]), LocalIOError, "already exists")
    assert out.read_text() == "something else\n"


def test_export_without_paper_or_a_missing_role_is_refused(keys_dir: Path, tmp_path: Path) -> None:
    failure(invoke(keys_export, ["--dir", keys_dir]), UsageError, "--paper")
    (keys_dir / "deletion.key").unlink()
    result = invoke(keys_export, ["--paper", "--dir", keys_dir, "--role", "deletion"])
    failure(result, NotFoundError, "deletion.key")
    page = export(keys_dir)  # without --role: every file present
    assert "deletion.key" not in page
    assert "root.key" in page


def test_the_dedup_secret_in_the_clear_is_said(keys_dir: Path) -> None:
    result = ok(invoke(keys_export, ["--paper", "--dir", keys_dir, "--role", "dedup"]))
    assert "in the clear" in result.stdout
    assert "in the clear" in result.stderr


def test_import_is_idempotent_and_never_overwrites_a_different_file(
    keys_dir: Path, tmp_path: Path, account_keys: AccountKeys
) -> None:
    page = export(keys_dir)
    fresh = tmp_path / "fresh"
    ok(fresh_import(fresh, page))
    again = ok(fresh_import(fresh, page))
    assert again.stdout.count("already there") == len(ADMIN)
    # the same data key, re-sealed (fresh salt and nonce): different bytes, must not be replaced
    other = tmp_path / "other"
    other.mkdir()
    key = PrivateKey(role=Role.DATA, label="data", rsa_key=account_keys.data)
    save_key(
        other / "data.key", key, "another", root_public_key=account_keys.root.public_key(), cost=TEST_PARAMS
    )
    before = (other / "data.key").read_bytes()
    failure(fresh_import(other, page), LocalIOError, "data.key", "refusing to overwrite")
    assert sorted(p.name for p in other.iterdir()) == ["data.key"]
    assert (other / "data.key").read_bytes() == before


def test_import_refuses_a_directory_of_another_account(keys_dir: Path, tmp_path: Path) -> None:
    page = export(keys_dir, "--role", "data")
    other = tmp_path / "other"
    other.mkdir()
    stranger = generate_rsa_key(4096)
    dedup = PrivateKey(role=Role.DEDUP, label="dedup", dedup_secret=random_bytes(32))
    save_key(other / "dedup.key", dedup, None, root_public_key=stranger.public_key())
    failure(fresh_import(other, page), LocalIOError, "another account")
    assert sorted(p.name for p in other.iterdir()) == ["dedup.key"]


def test_a_typo_names_the_line_and_writes_nothing(keys_dir: Path, tmp_path: Path) -> None:
    page = export(keys_dir).splitlines()
    index = next(i for i, line in enumerate(page) if line.startswith("0042:"))
    line = page[index]
    pos = line.index(" ", 8) + 1
    page[index] = line[:pos] + ("B" if line[pos] != "B" else "C") + line[pos + 1 :]
    fresh = tmp_path / "fresh"
    failure(fresh_import(fresh, "\n".join(page)), FormatError, "line 42")
    assert not fresh.exists()


def test_a_page_whose_file_is_not_a_key_file_of_its_name_is_refused(keys_dir: Path, tmp_path: Path) -> None:
    data = (keys_dir / "browse.key").read_bytes()
    page = paper_key.encode(paper_key.PaperPage((paper_key.PaperFile("data.key", data),)))
    failure(fresh_import(tmp_path / "x", page), FormatError, "browse key, not a data key")
    page = paper_key.encode(paper_key.PaperPage((paper_key.PaperFile("notes.txt", b"hello"),)))
    failure(fresh_import(tmp_path / "x", page), FormatError, "not an admin key file")
    assert not (tmp_path / "x").exists()
