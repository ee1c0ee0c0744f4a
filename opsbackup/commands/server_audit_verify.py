"""``opsbackup server audit verify [--account ACCOUNT] [--anchor SEQ:HASH]``: check the hash chains.

Intact: exit 0 and one summary line per chain, with its head (``SEQ:HASH``) to record elsewhere
and pass back as ``--anchor`` later, which also catches an edit of the newest entry. Broken: one
line naming the first broken entry, exit code 10 (IntegrityError).
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from opsbackup.commands._server_store import open_store, store_options
from opsbackup.errors import IntegrityError, NotFoundError, UsageError
from opsbackup.server.accounts import find_account
from opsbackup.server.audit_log import SERVER_CHAIN, list_chains, verify_chain

__all__ = ["command"]


@click.command("verify")
@store_options
@click.option("--account", help="Only this account's chain (a name or id; 'server' for the server chain).")
@click.option("--anchor", help="SEQ:HASH of an entry recorded earlier (needs --account).")
def command(config_path: Path | None, data_dir: Path | None, account: str | None, anchor: str | None) -> None:
    """Verify the audit log's hash chains; name the first broken entry."""
    store = open_store(config_path, data_dir)
    if account is None:
        if anchor is not None:
            raise UsageError("--anchor needs --account")
        chains = list_chains(store)
    elif account == SERVER_CHAIN or account in list_chains(store):
        chains = [account]
    else:
        chains = [find_account(store, account).account_id.hex()]
    pin: tuple[int, bytes] | None = None
    if anchor is not None:
        m = re.fullmatch(r"(\d+):([0-9a-f]{64})", anchor)
        if m is None:
            raise UsageError("--anchor is SEQ:HASH (a sequence number and 64 hex digits)")
        pin = (int(m.group(1)), bytes.fromhex(m.group(2)))
    if not chains:
        raise NotFoundError("the audit log is empty")
    for chain in chains:
        report = verify_chain(store, chain, anchor=pin)
        if not report.ok:
            raise IntegrityError(f"audit chain {chain} is broken at {report.problem}")
        head = f"{report.entries - 1}:{report.head_hash.hex()}" if report.head_hash else "none"
        click.echo(f"audit chain {chain}: {report.entries} entries intact, head {head}")
