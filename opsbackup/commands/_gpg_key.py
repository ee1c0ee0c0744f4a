"""``--gpg-key FINGERPRINT``: read with an OpenPGP recipient of the keyring (a YubiKey) through gpg-agent.

The OpenPGP key must be an active data (or, for listing, browse) recipient of the account
keyring; its public key is taken from the keyring, verified against the pinned root, never from
the local GnuPG home. The agent asks for the smartcard PIN or passphrase through its pinentry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from crypto.gpg import inspect_public_key
from crypto.unwrapper import OpenPgpUnwrapper
from formats.roles import Role
from opsbackup.client.account import Account
from opsbackup.errors import UsageError, WrongKeyError

__all__ = ["gpg_key_options", "openpgp_reader"]

F = TypeVar("F", bound=Callable[..., object])


def gpg_key_options(fn: F) -> F:
    """``--gpg-key FINGERPRINT`` and ``--gnupghome DIR``."""
    fn = click.option(
        "--gnupghome",
        type=click.Path(path_type=Path, file_okay=False, exists=True),
        help="The GnuPG home holding the OpenPGP secret key or its smartcard stub [default: gpg's].",
    )(fn)
    fn = click.option(
        "--gpg-key",
        "gpg_key",
        metavar="FINGERPRINT",
        help="Unwrap with this OpenPGP recipient (full fingerprint) through gpg-agent, not a key file.",
    )(fn)
    return fn


def openpgp_reader(
    account: Account, fingerprint: str, gnupghome: Path | None, roles: tuple[Role, ...]
) -> OpenPgpUnwrapper:
    """The unwrapper of the keyring's OpenPGP recipient with ``fingerprint`` (of one of ``roles``)."""
    wanted = "".join(fingerprint.split()).upper()
    if len(wanted) != 40 or any(c not in "0123456789ABCDEF" for c in wanted):
        raise UsageError(f"--gpg-key needs the key's full 40-digit fingerprint, not {fingerprint!r}")
    for role in roles:
        for public in account.keyring.openpgp_keys_for(role).values():
            if inspect_public_key(public).fingerprint == wanted:
                return OpenPgpUnwrapper(public, gnupghome=None if gnupghome is None else str(gnupghome))
    raise WrongKeyError(
        f"OpenPGP key {wanted} is not an active {' or '.join(r.label for r in roles)} recipient of "
        f"keyring version {account.keyring.version}; add it with 'opsbackup keys add-recipient'"
    )
