"""Running the real ``gpg`` for :mod:`crypto.gpg`: the binary, homes, status lines, packet framing.

Everything here is plumbing around python-gnupg (>= 0.5.1); no key material passes through it on a
command line or in a log line: keys and plaintexts go to gpg on stdin and come back on stdout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import gnupg

from formats.errors import FormatError, IntegrityError, KeyUnusableError

__all__ = [
    "HARDENING",
    "check_key_packets",
    "check_message",
    "client",
    "error_codes",
    "gpg_binary",
    "kill_agents",
    "last_gpg_line",
    "make_home",
    "packets",
    "statuses",
]

#: Options for every gpg run: no gpg.conf, no network helper, no key fetching, no cached symmetric
#: passphrases. (The agent's own gpg-agent.conf still applies in the user's home: that is where a
#: smartcard user chose their pinentry.)
HARDENING = (
    "--no-options",
    "--no-greeting",
    "--disable-dirmngr",
    "--no-auto-key-retrieve",
    "--no-auto-key-locate",
    "--no-symkey-cache",
    "--exit-on-status-write-error",
)
#: Longest temp root for a home: gpg-agent's socket path (home + "/S.gpg-agent.browser") must fit
#: in sun_path (108 bytes).
_MAX_ROOT = 60
#: OpenPGP packet tags accepted in an exported public key (RFC 4880 4.3).
_KEY_TAGS = frozenset({2, 6, 13, 14, 17})
_PKESK, _SEIPD, _AEAD = 1, 18, 20


def gpg_binary() -> str:
    """The path of ``gpg``; a clear error naming the package to install when there is none."""
    found = shutil.which("gpg")
    if found is None:
        raise KeyUnusableError(
            "gpg was not found on PATH: install GnuPG (for example `apt-get install gnupg`) "
            "to use OpenPGP recipients"
        )
    return found


def make_home() -> str:
    """A fresh empty GNUPGHOME, mode 0700, under a short temporary root."""
    root = tempfile.gettempdir()
    if len(root) > _MAX_ROOT:
        root = "/tmp"  # noqa: S108 - only for a short socket path; mkdtemp makes a private dir
    return tempfile.mkdtemp(prefix="obgpg-", dir=root)  # mkdtemp creates it with mode 0700


def _isolated_env(home: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GNUPGHOME": home, "HOME": home}
    env["LC_ALL"] = "C"
    return env


def client(home: str | None, *, isolated: bool) -> gnupg.GPG:
    """A python-gnupg handle on ``home``.

    ``isolated``: a home of ours (throwaway or pinned): a minimal environment whose HOME and
    GNUPGHOME are that home, and ``--no-autostart`` so no agent is ever started for it. Otherwise
    the user's home (``None``: gpg's default, ``$GNUPGHOME`` or ``~/.gnupg``) with the user's
    environment, so that gpg-agent can show its pinentry (GPG_TTY, DISPLAY).
    """
    binary = gpg_binary()
    options = list(HARDENING)
    if isolated:
        assert home is not None
        options.append("--no-autostart")
        return gnupg.GPG(gpgbinary=binary, gnupghome=home, options=options, env=_isolated_env(home))
    if home is not None and not os.path.isdir(home):
        raise KeyUnusableError(f"GNUPGHOME {home} is not a directory")
    return gnupg.GPG(gpgbinary=binary, gnupghome=home, options=options)


def kill_agents(home: str) -> None:
    """Stop any gpg-agent, scdaemon or dirmngr serving ``home`` (``gpgconf --kill all``)."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf is None:
        return
    subprocess.run(
        [gpgconf, "--homedir", home, "--kill", "all"],
        env=_isolated_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=30,
    )


def statuses(stderr: str) -> list[tuple[str, list[str]]]:
    """The ``[GNUPG:]`` status lines of a run (python-gnupg sends them to stderr): keyword, args."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("[GNUPG:] "):
            words = line[9:].split()
            if words:
                out.append((words[0], words[1:]))
    return out


def error_codes(status: list[tuple[str, list[str]]]) -> set[int]:
    """The libgpg-error codes (source bits removed) of the ERROR/FAILURE status lines."""
    codes = set()
    for keyword, args in status:
        if keyword in {"ERROR", "FAILURE"} and len(args) >= 2 and args[1].isdigit():
            codes.add(int(args[1]) & 0xFFFF)
    return codes


def last_gpg_line(stderr: str) -> str:
    """gpg's last human-readable diagnostic line, for an error message (never key material)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.startswith("gpg: ")]
    return lines[-1] if lines else "no diagnostic from gpg"


def packets(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Walk the OpenPGP packet framing of ``data`` (RFC 4880 4.2): (tag, body), nothing decoded.

    Partial body lengths are joined. Any framing error raises ``ValueError``.
    """
    pos = 0
    while pos < len(data):
        head = data[pos]
        pos += 1
        if not head & 0x80:
            raise ValueError("not an OpenPGP packet header")
        body = b""
        if head & 0x40:  # new format
            tag = head & 0x3F
            while True:
                if pos >= len(data):
                    raise ValueError("truncated packet length")
                first = data[pos]
                if first < 192:
                    size, pos, partial = first, pos + 1, False
                elif first < 224:
                    if pos + 2 > len(data):
                        raise ValueError("truncated packet length")
                    size, pos, partial = ((first - 192) << 8) + data[pos + 1] + 192, pos + 2, False
                elif first == 255:
                    if pos + 5 > len(data):
                        raise ValueError("truncated packet length")
                    size, pos, partial = int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5, False
                else:
                    size, pos, partial = 1 << (first & 0x1F), pos + 1, True
                if pos + size > len(data):
                    raise ValueError("truncated packet body")
                body += data[pos : pos + size]
                pos += size
                if not partial:
                    break
        else:  # old format
            tag, length_type = (head >> 2) & 0x0F, head & 0x03
            if length_type == 3:
                raise ValueError("indeterminate packet length")
            width = 1 << length_type
            if pos + width > len(data):
                raise ValueError("truncated packet length")
            size = int.from_bytes(data[pos : pos + width], "big")
            pos += width
            if pos + size > len(data):
                raise ValueError("truncated packet body")
            body, pos = data[pos : pos + size], pos + size
        yield tag, body


def check_key_packets(data: bytes) -> None:
    """An exported public key: one primary key first, then only public key-block packets."""
    try:
        tags = [tag for tag, _ in packets(data)]
    except ValueError as exc:
        raise FormatError(f"OpenPGP public key: {exc}") from None
    if not tags or tags[0] != 6 or tags.count(6) != 1:
        raise FormatError("an OpenPGP recipient must be exactly one public key (no secret key, no keyring)")
    if not set(tags) <= _KEY_TAGS:
        raise FormatError("the OpenPGP public key holds packets other than keys, user ids and signatures")


def check_message(data: bytes, subkey_id: bytes) -> None:
    """The wrapped bytes are exactly one v3 PKESK to ``subkey_id`` then one encrypted-data packet.

    Checked before gpg sees the message, so that a forged record can never make the agent ask for
    a symmetric passphrase or try another key.
    """
    try:
        found = list(packets(data))
    except ValueError as exc:
        raise IntegrityError(f"the OpenPGP wrapped key is malformed: {exc}") from None
    if len(found) != 2 or found[0][0] != _PKESK or found[1][0] not in {_SEIPD, _AEAD}:
        raise IntegrityError("the OpenPGP wrapped key is not one public-key-encrypted session key and data")
    pkesk = found[0][1]
    if len(pkesk) < 10 or pkesk[0] != 3 or pkesk[1:9] != subkey_id:
        raise IntegrityError("the OpenPGP wrapped key is not encrypted to the recipient's encryption subkey")
