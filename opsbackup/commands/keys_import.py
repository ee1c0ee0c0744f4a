"""``opsbackup keys import FILE|-``: restore admin key files from a paper key page.

Reads the page (docs/spec/paper-key.md) from FILE or stdin and verifies all of it before writing
anything: every line's check, every file's size and SHA-256, that each file is a key file of the
role its name says, that all name one account root (the page's ``root`` line, the directory's
``root.pub.pem`` and its other key files included). A key file already in the directory with the
same bytes is left as it is; one with different bytes stops the import (nothing is replaced).
The new files are written atomically with mode 0600 (``root.pub.pem``, made from the root the
files name, 0644, when missing); if a write fails, the files written so far are removed. Then
each key file's clear half is shown (role, label, key id), without asking for a passphrase.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from crypto.atomic_file import write_atomic
from crypto.keyfile import MAX_KEY_FILE, export_public_pem, import_public_pem, load_public, load_trusted_root
from crypto.primitives import public_key_der, public_key_id
from crypto.private_file import read_private_file
from formats import keyfile as kf
from formats import paper_key
from formats.roles import Role
from opsbackup.commands._client import config_option
from opsbackup.commands.keys_init import keys_dir_option, resolve_keys_dir
from opsbackup.errors import FormatError, LocalIOError
from opsbackup.setup.admin import KEY_FILE_NAMES, ROOT_PUB

__all__ = ["ImportPlan", "command", "plan_import", "read_page"]

_ROLE_OF = {name: role for role, name in KEY_FILE_NAMES.items()}


@dataclass(frozen=True)
class ImportPlan:
    """What an import writes: new key files, the ones already there, and root.pub.pem if missing."""

    new: list[paper_key.PaperFile]
    unchanged: list[str]
    root_der: bytes
    write_root_pub: bool
    key_names: list[str]


def read_page(source: str) -> str:
    """The page's text from FILE or ``-`` (stdin), bounded, as ASCII-compatible UTF-8."""
    limit = paper_key.MAX_PAGE_CHARS
    if source == "-":
        raw = sys.stdin.buffer.read(limit + 1)
        where = "standard input"
    else:
        raw = read_private_file(Path(source), "paper key", limit, check_mode=False)
        where = source
    if len(raw) > limit:
        raise FormatError(f"paper key on {where} is too large (more than {limit} bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"paper key on {where} is not text (byte {exc.start} is not UTF-8)") from None


def _check_files(page: paper_key.PaperPage) -> bytes:
    """Each file is a key file of its name's role, all name one root; return that root's DER."""
    roots: set[bytes] = set()
    for f in page.files:
        role = _ROLE_OF.get(f.name)
        if role is None:
            allowed = ", ".join(KEY_FILE_NAMES.values())
            raise FormatError(f"paper key holds {f.name}, which is not an admin key file ({allowed})")
        decoded = kf.decode(f.data, f"{f.name} on the paper key")
        if decoded.role is not role:
            raise FormatError(
                f"{f.name} on the paper key holds a {decoded.role.label} key, not a {role.label} key"
            )
        roots.add(decoded.root_public_der)
    if len(roots) != 1:
        raise FormatError("the key files on the paper key name different account roots")
    root_der = roots.pop()
    if page.root_fingerprint is not None and hashlib.sha256(root_der).digest() != page.root_fingerprint:
        raise FormatError("the key files on the paper key do not name the root its 'root' line gives")
    return root_der


def plan_import(page: paper_key.PaperPage, directory: Path) -> ImportPlan:
    """Check the page against ``directory`` (nothing written); refuse conflicts."""
    root_der = _check_files(page)
    new: list[paper_key.PaperFile] = []
    unchanged: list[str] = []
    for f in page.files:
        path = directory / f.name
        if path.exists() or path.is_symlink():
            current = read_private_file(path, "key file", MAX_KEY_FILE, check_mode=False)
            if current != f.data:
                raise LocalIOError(
                    f"{path} already exists and differs from {f.name} on the paper key: refusing to "
                    "overwrite it (move it away first, or import into an empty --dir)"
                )
            unchanged.append(f.name)
        else:
            new.append(f)
    on_page = {f.name for f in page.files}
    for name in KEY_FILE_NAMES.values():
        path = directory / name
        if name not in on_page and path.exists() and public_key_der(load_trusted_root(path)) != root_der:
            raise LocalIOError(f"{path} belongs to another account (another root): use another --dir")
    root_pub = directory / ROOT_PUB
    write_root_pub = not root_pub.exists()
    if not write_root_pub:
        try:
            existing = public_key_der(import_public_pem(root_pub.read_bytes()))
        except OSError as exc:
            raise LocalIOError(f"cannot read {root_pub}: {exc.strerror or exc}") from None
        if existing != root_der:
            raise LocalIOError(f"{root_pub} is another account's root: use another --dir")
    return ImportPlan(new, unchanged, root_der, write_root_pub, [f.name for f in page.files])


def _write(plan: ImportPlan, directory: Path) -> None:
    """Write the plan's files atomically; remove what was written if any write fails."""
    written: list[Path] = []
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for f in plan.new:
            path = directory / f.name
            try:
                write_atomic(path, f.data, 0o600, overwrite=False)
            except FileExistsError:
                raise LocalIOError(f"{path} appeared while importing: refusing to overwrite it") from None
            written.append(path)
        if plan.write_root_pub:
            # parsed (RSA-4096, canonical DER) from a key file just checked to name it
            root = load_trusted_root(directory / plan.key_names[0])
            path = directory / ROOT_PUB
            with contextlib.suppress(FileExistsError):
                write_atomic(path, export_public_pem(root), 0o644, overwrite=False)
                written.append(path)
    except BaseException as exc:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        if isinstance(exc, OSError):
            raise LocalIOError(f"cannot write key files in {directory}: {exc.strerror or exc}") from None
        raise


def _describe(path: Path) -> str:
    """A key file's clear half, read without the passphrase."""
    decoded = kf.decode(path.read_bytes(), f"key file {path}")
    sealed = "passphrase" if decoded.kdf is kf.Kdf.ARGON2ID else "no passphrase"
    if decoded.role is Role.DEDUP:
        return f"{decoded.role.label} secret, label {decoded.label!r}, {sealed}"
    info = load_public(path, expect_role=decoded.role)
    key_id = public_key_id(info.public_key).hex()
    return f"{decoded.role.label} key, label {decoded.label!r}, key id {key_id}, {sealed}"


@click.command("import", short_help="Restore admin key files from a paper key page.")
@config_option
@keys_dir_option("The key directory to write to (created 0700)")
@click.argument("page", metavar="FILE|-")
def command(config_path: Path | None, directory: Path | None, page: str) -> None:
    """Verify a paper key page (FILE, or - for stdin) and write its key files into the key directory."""
    directory = resolve_keys_dir(directory, config_path)
    decoded = paper_key.decode(read_page(page))
    plan = plan_import(decoded, directory)
    _write(plan, directory)
    for f in decoded.files:
        state = "already there" if f.name in plan.unchanged else "written"
        click.echo(f"  {f.name:<13} {state}: {_describe(directory / f.name)}")
    if plan.write_root_pub:
        click.echo(f"  {ROOT_PUB:<13} written: the root public key the key files name")
    click.echo(f"root fingerprint: {hashlib.sha256(plan.root_der).hexdigest()}")
    if decoded.account_id is not None:
        click.echo(f"account id: {decoded.account_id.hex()}")
    click.echo(f"imported {len(plan.new)} key file(s) into {directory}; the passphrase opens them as before")
