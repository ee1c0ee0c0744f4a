"""``opsbackup keys export --paper``: the admin key files as a printable page (docs/paper-keys.md).

Reads the key files of the keys directory (all present by default: root, data, browse,
deletion, dedup; ``--role`` picks some), checks that each is a key file of its role and that all
name the same account root, and writes a paper key page (docs/spec/paper-key.md) to stdout or,
atomically with mode 0600, to ``-o FILE`` (never replacing an existing file). No passphrase is
asked: the page carries the key files exactly as they are, sealed under their passphrase; only
the dedup secret, which has none, is on it in the clear (a note on stderr says so).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import click

from crypto.atomic_file import write_atomic
from crypto.keyfile import MAX_KEY_FILE
from crypto.private_file import read_private_file
from formats import keyfile as kf
from formats import paper_key
from formats.roles import Role
from opsbackup.commands._client import config_option
from opsbackup.commands.keys_init import keys_dir_option, resolve_keys_dir
from opsbackup.errors import FormatError, LocalIOError, NotFoundError, UsageError
from opsbackup.setup.admin import KEY_FILE_NAMES

__all__ = ["EXPORT_ORDER", "command", "read_admin_files"]

#: The roles a page may hold, in page order.
EXPORT_ORDER = (Role.ROOT, Role.DATA, Role.BROWSE, Role.DELETION, Role.DEDUP)
_ROLE_NAMES = {role.label: role for role in EXPORT_ORDER}

_COMMENTS = (
    "Administrator key files of an opsbackup account, still sealed under",
    "their passphrase. Keep this page apart from the passphrase.",
    "To restore: opsbackup keys import --dir KEYS_DIR PAGE",
    "Blank lines, '#' lines, spacing and case do not matter in retyping.",
)
_DEDUP_COMMENT = "dedup.key has no passphrase: its secret is on this page in the clear."


def read_admin_files(directory: Path, roles: list[Role]) -> tuple[list[paper_key.PaperFile], bytes]:
    """The key files of ``roles`` (all present when empty) and the root fingerprint they name."""
    explicit = bool(roles)
    files: list[paper_key.PaperFile] = []
    roots: set[bytes] = set()
    for role in roles or list(EXPORT_ORDER):
        path = directory / KEY_FILE_NAMES[role]
        if not explicit and not (path.exists() or path.is_symlink()):
            continue
        data = read_private_file(path, "key file", MAX_KEY_FILE)
        decoded = kf.decode(data, f"key file {path}")
        if decoded.role is not role:
            raise FormatError(f"key file {path} holds a {decoded.role.label} key, not a {role.label} key")
        roots.add(hashlib.sha256(decoded.root_public_der).digest())
        files.append(paper_key.PaperFile(KEY_FILE_NAMES[role], data))
    if not files:
        raise NotFoundError(f"no key files in {directory} (root.key, data.key, ...): nothing to export")
    if len(roots) != 1:
        raise FormatError(
            f"the key files in {directory} name different account roots: export them one by one"
        )
    return files, roots.pop()


def _account_id(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != paper_key.ACCOUNT_ID_SIZE:
        raise UsageError(f"--account-id must be {2 * paper_key.ACCOUNT_ID_SIZE} hex digits")
    return value


@click.command("export", short_help="Print admin key files as a paper key page.")
@config_option
@keys_dir_option("The key directory")
@click.option("--paper", is_flag=True, help="Write a printable paper key page (the only form so far).")
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(list(_ROLE_NAMES)),
    help="Export only this role's key file (repeatable) [default: every key file present].",
)
@click.option("--account-id", help="The account id (32 hex digits) to print on the page.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the page to FILE (mode 0600, never replacing one) [default: stdout].",
)
def command(
    config_path: Path | None,
    directory: Path | None,
    paper: bool,
    roles: tuple[str, ...],
    account_id: str | None,
    output: Path | None,
) -> None:
    """Export admin key files, still passphrase-protected, as a page to print and keep."""
    if not paper:
        raise UsageError(
            "give --paper (the only export form); to hand someone a key file, copy it: "
            "it stays sealed under its passphrase"
        )
    account = _account_id(account_id)
    directory = resolve_keys_dir(directory, config_path)
    chosen = list(dict.fromkeys(_ROLE_NAMES[r] for r in roles))
    files, root = read_admin_files(directory, chosen)
    comments = list(_COMMENTS)
    clear = any(f.name == KEY_FILE_NAMES[Role.DEDUP] for f in files)
    if clear:
        comments.append(_DEDUP_COMMENT)
    text = paper_key.encode(paper_key.PaperPage(tuple(files), account, root), comments)
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            write_atomic(output, text.encode("ascii"), 0o600, overwrite=False)
        except FileExistsError:
            raise LocalIOError(f"{output} already exists: refusing to overwrite it") from None
        except OSError as exc:
            raise LocalIOError(f"cannot write {output}: {exc.strerror or exc}") from None
    lines = sum(1 for line in text.splitlines() if line[:1].isdigit())
    names = ", ".join(f.name for f in files)
    where = f" to {output}" if output is not None else ""
    click.echo(f"exported {names}{where}: {lines} lines; root fingerprint {root.hex()}", err=True)
    if clear:
        click.echo(f"note: {_DEDUP_COMMENT}", err=True)
