"""crypto.gpg with the real gpg and gpg-agent: keys made in temporary GNUPGHOMEs, loopback pinentry."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crypto import gpg
from crypto.wrap import LABEL_PREFIX
from formats import wrapped_key as wk
from formats.errors import FormatError, IntegrityError, KeyUnusableError, WrongKeyError, WrongPassphraseError
from formats.roles import Role
from tests.gpg_support import PASSPHRASE, Home, agent_pids, drop_home, make_home

BID = bytes(range(16))
OTHER_BID = bytes(range(1, 17))
KEY = bytes(range(100, 132))


@dataclass(frozen=True)
class Keys:
    user: Home  # holds ed, rsa, signer, weak
    other: Home  # holds only stranger
    ed: str
    rsa: str
    signer: str
    weak: str
    stranger: str


@pytest.fixture(scope="session")
def keys() -> Iterator[Keys]:
    user, other = make_home(), make_home()
    try:
        user.gpg("--quick-gen-key", "Ed Admin <ed@example.org>", "ed25519", "cert", "0")
        ed = user.fingerprint("ed@example.org")
        user.gpg("--quick-add-key", ed, "cv25519", "encr", "0")
        user.gpg("--quick-gen-key", "Rsa Admin <rsa@example.org>", "rsa3072", "cert", "0")
        rsa = user.fingerprint("rsa@example.org")
        user.gpg("--quick-add-key", rsa, "rsa3072", "encr", "0")
        user.gpg("--quick-gen-key", "Signer <sign@example.org>", "ed25519", "sign", "0")
        user.gpg("--quick-gen-key", "Weak <weak@example.org>", "rsa2048", "cert", "0")
        weak = user.fingerprint("weak@example.org")
        user.gpg("--quick-add-key", weak, "rsa2048", "encr", "0")
        other.gpg("--quick-gen-key", "Stranger <stranger@example.org>", "ed25519", "cert", "0")
        stranger = other.fingerprint("stranger@example.org")
        other.gpg("--quick-add-key", stranger, "cv25519", "encr", "0")
        yield Keys(
            user=user,
            other=other,
            ed=ed,
            rsa=rsa,
            signer=user.fingerprint("sign@example.org"),
            weak=weak,
            stranger=stranger,
        )
    finally:
        drop_home(user)
        drop_home(other)


@pytest.fixture
def pinentry(keys: Keys) -> Iterator[Path]:
    """The fake pinentry's answer file; restored to the right passphrase afterwards."""
    yield keys.user.answer
    keys.user.answer.write_text(PASSPHRASE)


def _wrap(public: bytes, role: Role = Role.DATA, bid: bytes = BID) -> bytes:
    with gpg.PinnedKeys([public]) as pinned:
        return pinned.wrap(KEY, role=role, backup_id=bid, recipient=public)


def _unwrap(keys: Keys, wrapped: bytes, public: bytes, **kw: object) -> bytes:
    args: dict[str, object] = {"role": Role.DATA, "backup_id": BID, "passphrase": PASSPHRASE}
    args.update(kw)
    return gpg.unwrap(wrapped, recipient_public_key=public, gnupghome=keys.user.path, **args)  # type: ignore[arg-type]


def test_plaintext_binds_like_the_oaep_label() -> None:
    assert gpg.PLAINTEXT_PREFIX == LABEL_PREFIX
    assert gpg.PLAINTEXT_SIZE == 67
    assert gpg.OPENPGP_KIND == wk.RecipientKind.OPENPGP


@pytest.mark.parametrize("which", ["ed", "rsa"])
@pytest.mark.parametrize("role", [Role.DATA, Role.BROWSE])
def test_round_trip_fits_an_obwk_record(keys: Keys, which: str, role: Role) -> None:
    public = keys.user.export(getattr(keys, which))
    wrapped = _wrap(public, role)
    assert 1 <= len(wrapped) <= wk.MAX_OPENPGP_WRAPPED
    assert KEY not in wrapped
    record = wk.WrappedKey(role, BID, wk.RecipientKind.OPENPGP, gpg.openpgp_key_id(public), wrapped)
    assert wk.decode(wk.encode(record)) == record
    assert _unwrap(keys, wrapped, public, role=role) == KEY


def test_export_is_minimal_binary_and_the_key_id_is_its_sha256(keys: Keys) -> None:
    public = keys.user.export(keys.rsa)
    assert public == keys.user.gpg("--export", "--export-options", "export-minimal", keys.rsa)
    assert keys.user.export(keys.rsa.lower()) == public
    assert gpg.openpgp_key_id(public).hex() == hashlib.sha256(public).hexdigest()
    info = gpg.inspect_public_key(public)
    assert info.fingerprint == keys.rsa
    assert (info.algorithm, info.encryption_algorithm) == ("RSA-3072", "RSA-3072")
    assert info.encryption_subkey != keys.rsa
    assert info.user_ids == ("Rsa Admin <rsa@example.org>",)
    ed = gpg.inspect_public_key(keys.user.export(keys.ed))
    assert (ed.algorithm, ed.encryption_algorithm) == ("ed25519", "cv25519")


@pytest.mark.parametrize(
    "name", ["short", "long id", "email", "name", "spaced 39", "0x prefix"], ids=lambda n: n
)
def test_export_refuses_anything_but_a_full_fingerprint(keys: Keys, name: str) -> None:
    given = {
        "short": keys.ed[-8:],
        "long id": keys.ed[-16:],
        "email": "ed@example.org",
        "name": "Ed Admin",
        "spaced 39": " ".join(keys.ed[i : i + 4] for i in range(0, 40, 4))[:-1],
        "0x prefix": "0x" + keys.ed,
    }[name]
    with pytest.raises(FormatError, match="not a full OpenPGP fingerprint"):
        gpg.export_public_key(given, gnupghome=keys.user.path)


def test_export_refuses_unknown_subkey_signing_only_and_weak_keys(keys: Keys) -> None:
    with pytest.raises(WrongKeyError, match="no OpenPGP key"):
        gpg.export_public_key(keys.stranger, gnupghome=keys.user.path)
    subkey = gpg.inspect_public_key(keys.user.export(keys.ed)).encryption_subkey
    with pytest.raises(FormatError, match="is a subkey of"):
        gpg.export_public_key(subkey, gnupghome=keys.user.path)
    with pytest.raises(FormatError, match="no usable encryption subkey"):
        gpg.export_public_key(keys.signer, gnupghome=keys.user.path)
    with pytest.raises(FormatError, match="RSA-2048"):
        gpg.export_public_key(keys.weak, gnupghome=keys.user.path)


def test_inspect_refuses_keyrings_secret_keys_and_garbage(keys: Keys) -> None:
    two = keys.user.export(keys.ed) + keys.user.export(keys.rsa)
    with pytest.raises(FormatError, match="exactly one public key"):
        gpg.inspect_public_key(two)
    secret = keys.user.gpg("--export-secret-keys", keys.ed)
    with pytest.raises(FormatError, match="exactly one public key"):
        gpg.inspect_public_key(secret)
    for junk in (b"", b"\x00" * 10, keys.user.export(keys.ed)[:-3]):
        with pytest.raises(FormatError):
            gpg.inspect_public_key(junk)


def test_a_key_without_its_secret_in_the_home_is_the_wrong_key(keys: Keys) -> None:
    stranger = gpg.export_public_key(keys.stranger, gnupghome=keys.other.path)
    wrapped = _wrap(stranger)
    with pytest.raises(WrongKeyError, match="secret key"):
        _unwrap(keys, wrapped, stranger)
    # The same record claimed for our own key: the message names another subkey, refused before gpg.
    with pytest.raises(IntegrityError, match="not encrypted to the recipient"):
        _unwrap(keys, wrapped, keys.user.export(keys.ed))
    assert (
        gpg.unwrap(
            wrapped,
            role=Role.DATA,
            backup_id=BID,
            recipient_public_key=stranger,
            gnupghome=keys.other.path,
            passphrase=PASSPHRASE,
        )
        == KEY
    )


@pytest.mark.parametrize(("role", "bid"), [(Role.BROWSE, BID), (Role.DATA, OTHER_BID)])
def test_a_record_moved_to_another_role_or_backup_is_refused(keys: Keys, role: Role, bid: bytes) -> None:
    public = keys.user.export(keys.ed)
    wrapped = _wrap(public, Role.DATA, BID)
    with pytest.raises(IntegrityError, match="another role or backup"):
        _unwrap(keys, wrapped, public, role=role, backup_id=bid)


def test_damaged_ciphertexts_are_refused(keys: Keys) -> None:
    public = keys.user.export(keys.rsa)
    wrapped = _wrap(public)
    damaged = [wrapped[:-1], wrapped[:100], wrapped + b"\x00", b""]
    for pos in (20, 200, len(wrapped) - 30, len(wrapped) - 1):
        flipped = bytearray(wrapped)
        flipped[pos] ^= 0x01
        damaged.append(bytes(flipped))
    for bad in damaged:
        with pytest.raises(IntegrityError):
            _unwrap(keys, bad, public)


def test_forged_messages_are_refused_before_gpg_asks_for_anything(keys: Keys) -> None:
    public = keys.user.export(keys.ed)
    symmetric = keys.user.gpg("--symmetric", "--compress-algo", "none", stdin=b"x" * 67)
    sub = gpg.inspect_public_key(public).encryption_subkey
    rsa_sub = gpg.inspect_public_key(keys.user.export(keys.rsa)).encryption_subkey
    two = keys.user.gpg("--trust-model", "always", "-e", "-r", sub + "!", "-r", rsa_sub + "!", stdin=b"x")
    hidden = keys.user.gpg("--trust-model", "always", "-e", "--throw-keyids", "-r", sub + "!", stdin=b"x")
    for forged in (symmetric, two, hidden):
        with pytest.raises(IntegrityError, match="OpenPGP wrapped key"):
            _unwrap(keys, forged, public)


def test_a_message_of_the_wrong_size_is_refused(keys: Keys) -> None:
    public = keys.user.export(keys.ed)
    sub = gpg.inspect_public_key(public).encryption_subkey
    prefix = gpg.PLAINTEXT_PREFIX + bytes([Role.DATA]) + BID
    for plain in (prefix + KEY[:31], prefix + KEY + b"\x00", b"y" * 100_000):
        msg = keys.user.gpg("--trust-model", "always", "-e", "-z", "0", "-r", sub + "!", stdin=plain)
        with pytest.raises(IntegrityError, match="holds"):
            _unwrap(keys, msg, public)


def test_wrong_passphrase_and_cancelled_pin(keys: Keys, pinentry: Path) -> None:
    public = keys.user.export(keys.ed)
    wrapped = _wrap(public)
    with pytest.raises(WrongPassphraseError, match="wrong passphrase or PIN"):
        _unwrap(keys, wrapped, public, passphrase="not it")
    # No passphrase: gpg-agent asks its pinentry, as it would for a smartcard PIN.
    assert _unwrap(keys, wrapped, public, passphrase=None) == KEY
    pinentry.write_text("cancel")
    with pytest.raises(KeyUnusableError, match="cancelled"):
        _unwrap(keys, wrapped, public, passphrase=None)


def test_pinned_keys_never_read_the_users_home(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poisoned = tmp_path / "poisoned"
    poisoned.mkdir(mode=0o700)
    (poisoned / "gpg.conf").write_text("keyid-format this-is-not-a-format\narmor\n")
    (poisoned / ".gnupg").mkdir(mode=0o700)
    (poisoned / ".gnupg" / "gpg.conf").write_text("keyid-format this-is-not-a-format\narmor\n")
    # The canary works: any gpg that reads this home fails.
    env = {**os.environ, "GNUPGHOME": str(poisoned), "HOME": str(poisoned)}
    canary = subprocess.run(["gpg", "--list-keys"], env=env, capture_output=True, check=False)
    assert canary.returncode != 0
    assert b"this-is-not-a-format" in canary.stderr
    before = sorted((p.name, p.stat().st_mtime_ns) for p in poisoned.rglob("*"))
    ed, rsa = keys.user.export(keys.ed), keys.user.export(keys.rsa)
    monkeypatch.setenv("GNUPGHOME", str(poisoned))
    monkeypatch.setenv("HOME", str(poisoned))
    with gpg.PinnedKeys([ed, rsa]) as pinned:
        home = pinned.home
        assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
        assert len(home) < 60
        wrapped = pinned.wrap(KEY, role=Role.BROWSE, backup_id=BID, recipient=rsa)
        listed = subprocess.run(
            ["gpg", "--homedir", home, "--no-options", "--with-colons", "--list-keys"],
            capture_output=True,
            check=True,
        ).stdout.decode()
        held = {ln.split(":")[9] for ln in listed.splitlines() if ln.startswith("fpr:")}
        assert {keys.ed, keys.rsa} <= held
        assert keys.signer not in held
        assert keys.weak not in held
        assert agent_pids(home) == []
        stranger = gpg.export_public_key(keys.stranger, gnupghome=keys.other.path)
        with pytest.raises(WrongKeyError, match="not one of the pinned keys"):
            pinned.wrap(KEY, role=Role.DATA, backup_id=BID, recipient=stranger)
    assert not os.path.exists(home)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in poisoned.rglob("*")) == before
    monkeypatch.undo()
    assert _unwrap(keys, wrapped, rsa, role=Role.BROWSE) == KEY


def test_wrap_refuses_bad_arguments(keys: Keys) -> None:
    public = keys.user.export(keys.ed)
    with gpg.PinnedKeys([public]) as pinned:
        with pytest.raises(ValueError, match="32 bytes"):
            pinned.wrap(KEY[:31], role=Role.DATA, backup_id=BID, recipient=public)
        with pytest.raises(ValueError, match="data or browse"):
            pinned.wrap(KEY, role=Role.HOST, backup_id=BID, recipient=public)
        with pytest.raises(ValueError, match="16 bytes"):
            pinned.wrap(KEY, role=Role.DATA, backup_id=BID[:15], recipient=public)


def test_agents_are_stopped(tmp_path: Path) -> None:
    home = make_home()
    subprocess.run(
        ["gpg-connect-agent", "--homedir", home.path, "/bye"], capture_output=True, check=True, timeout=60
    )
    assert agent_pids(home.path) != []
    drop_home(home)  # asserts no agent is left for the home
    assert not os.path.exists(home.path)


def test_missing_gpg_is_a_clear_error(keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = keys.user.export(keys.ed)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KeyUnusableError, match="install GnuPG"):
        gpg.inspect_public_key(public)
    with pytest.raises(KeyUnusableError, match="install GnuPG"):
        gpg.export_public_key(keys.ed, gnupghome=keys.user.path)
