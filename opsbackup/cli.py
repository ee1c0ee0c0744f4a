"""The ``opsbackup`` command line: one click group; every command is a small module.

Commands live in :mod:`opsbackup.commands`, one module per command (``server_init.py`` holds
``opsbackup server init``), each exporting ``command`` and registered in ``COMMANDS`` below.
A command's module is imported only when that command is looked up (run, or its own --help
shown): importing all of them made every command, even ``--help``, pay for the server, the
S3 client and the rest (~0.6 s). So a group's listing comes from ``COMMANDS``, which repeats
each command's name and one-line help; tests/cli/test_cli_lazy.py checks it against the modules.
:func:`main` is the single place where errors become one line on stderr and an exit code.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Iterator, MutableMapping
from typing import Any, NamedTuple

import click

from opsbackup import __version__
from opsbackup.errors import EXIT_INTERNAL, OpsbackupError, exit_code_for

__all__ = ["COMMANDS", "CommandEntry", "LazyGroup", "cli", "main"]


class CommandEntry(NamedTuple):
    """One command: where it sits, its module, and what its group's --help lists for it."""

    path: tuple[str, ...]  #: its group path; () is the top level
    module: str  #: the module of ``opsbackup.commands`` that exports it as ``command``
    name: str  #: the command's name (its click name)
    summary: str  #: its ``short_help``; with ``from_help``, the first paragraph of its help
    from_help: bool = False  #: no short_help: click shortens ``summary`` to the width, as it would the help

    def stand_in(self) -> click.Command:
        """A command that a group's --help lists exactly as it would list the real one."""
        if self.from_help:
            return click.Command(self.name, help=self.summary)
        return click.Command(self.name, short_help=self.summary)


_S = ("server",)
COMMANDS: tuple[CommandEntry, ...] = (
    CommandEntry(_S, "server_run", "run", "Serve the storage API (TLS, private CA) until interrupted.", True),
    CommandEntry(
        _S,
        "server_init",
        "init",
        "Create a server data directory: private CA, server certificate, storage and server.toml.",
        True,
    ),
    CommandEntry(
        _S,
        "server_renew_cert",
        "renew-cert",
        "Renew the server's TLS certificate if it expires soon (or with --force).",
        True,
    ),
    CommandEntry(
        (*_S, "account"),
        "server_account_add",
        "add",
        "Create account NAME; prints its id (the keyring's account id must be this).",
        True,
    ),
    CommandEntry((*_S, "account"), "server_account_list", "list", "List accounts.", True),
    CommandEntry(
        (*_S, "credential"),
        "server_credential_issue",
        "issue",
        "Issue a credential for ACCOUNT (a name or id); prints the token once.",
        True,
    ),
    CommandEntry(
        (*_S, "credential"),
        "server_credential_revoke",
        "revoke",
        "Revoke the credential with this id (see ``credential list``).",
        True,
    ),
    CommandEntry(
        (*_S, "credential"),
        "server_credential_list",
        "list",
        "List credentials (the server does not know any token, only its hash).",
        True,
    ),
    CommandEntry(
        (*_S, "audit"),
        "server_audit_verify",
        "verify",
        "Verify the audit log's hash chains; name the first broken entry.",
        True,
    ),
    CommandEntry(("keys",), "keys_init", "init", "Make an account's admin key files."),
    CommandEntry(("keys",), "keys_publish", "publish", "Sign and upload keyring version 1."),
    CommandEntry(("keys",), "keys_add_host", "add-host", "Add a host's key to the keyring."),
    CommandEntry(("keys",), "keys_revoke_host", "revoke-host", "Revoke a lost or compromised host's key."),
    CommandEntry(("keys",), "keys_export", "export", "Print admin key files as a paper key page."),
    CommandEntry(("keys",), "keys_import", "import", "Restore admin key files from a paper key page."),
    CommandEntry(("keys",), "keys_rotate", "rotate", "Replace an administrator key (resumable)."),
    CommandEntry(
        ("keys",), "keys_add_recipient", "add-recipient", "Add a data or browse recipient (escrow, auditor)."
    ),
    CommandEntry(
        ("keys",), "keys_remove_recipient", "remove-recipient", "Remove a data or browse recipient."
    ),
    CommandEntry(("host",), "host_init", "init", "Set this host up to back up."),
    CommandEntry((), "backup", "backup", "Back up this host."),
    CommandEntry((), "snapshots", "snapshots", "List snapshots."),
    CommandEntry((), "ls", "ls", "List the files of a snapshot."),
    CommandEntry((), "find", "find", "Find files in every snapshot."),
    CommandEntry((), "restore", "restore", "Restore a snapshot, verified."),
    CommandEntry((), "dump", "dump", "Write one file of a snapshot to stdout."),
    CommandEntry((), "check", "check", "Verify manifests and stored objects."),
    CommandEntry((), "run", "run", "Do everything the config says (for timers and cron)."),
    CommandEntry((), "forget", "forget", "Remove snapshots by a retention policy."),
    CommandEntry((), "prune", "prune", "Delete data no snapshot references any more."),
    CommandEntry((), "demo", "demo", "Run the whole product on loopback."),
    CommandEntry(
        (), "benchmark", "benchmark", "Measure this machine's chunker, hash, zstd and AES-GCM speed."
    ),
)


class _LazyCommands(MutableMapping[str, click.Command]):
    """A group's name -> command map whose registered entries import their module at first lookup.

    It stands in for ``click.Group.commands``, so click (and tools/cli_reference.py, which walks
    ``commands``) see every name, and a command's module is imported only when it is asked for.
    """

    def __init__(self) -> None:
        self._pending: dict[str, CommandEntry] = {}
        self._loaded: dict[str, click.Command] = {}

    def register(self, entry: CommandEntry) -> None:
        self._pending[entry.name] = entry

    def listing(self, name: str) -> click.Command:
        """What the group's --help lists for ``name``: the command if loaded, else a stand-in."""
        if name in self._loaded:
            return self._loaded[name]
        return self._pending[name].stand_in()

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            entry = self._pending[name]  # KeyError: no such command
            try:
                command = importlib.import_module(f"opsbackup.commands.{entry.module}").command
            except KeyError as exc:  # a bug in the module, not "no such command" (which .get assumes)
                raise ImportError(f"opsbackup.commands.{entry.module} failed to import") from exc
            assert isinstance(command, click.Command)
            self._loaded[name] = command
            del self._pending[name]
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._pending.pop(name, None)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._pending.pop(name, None)
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._pending

    def __iter__(self) -> Iterator[str]:
        return iter([*self._loaded, *self._pending])

    def __len__(self) -> int:
        return len(self._loaded) + len(self._pending)


class LazyGroup(click.Group):
    """A click group whose registered commands are imported only when looked up (see the module doc)."""

    def __init__(self, name: str | None = None, **attrs: Any) -> None:
        super().__init__(name, **attrs)
        given = self.commands
        self.commands: _LazyCommands = _LazyCommands()
        self.commands.update(given)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing of subcommands, made from the stand-ins rather than by importing each."""
        commands = [(name, self.commands.listing(name)) for name in self.list_commands(ctx)]
        commands = [(name, cmd) for name, cmd in commands if not cmd.hidden]
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            rows = [(name, cmd.get_short_help_str(limit)) for name, cmd in commands]
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="opsbackup")
def cli() -> None:
    """Client-side encrypted, public-key backup for servers."""


def _group(path: tuple[str, ...]) -> LazyGroup:
    group = cli
    assert isinstance(group, LazyGroup)
    for name in path:
        sub = group.commands.get(name)
        if sub is None:
            sub = LazyGroup(name, help=f"{name.capitalize()} commands.")
            group.add_command(sub)
        assert isinstance(sub, LazyGroup)
        group = sub
    return group


def _register() -> None:
    for entry in COMMANDS:
        _group(entry.path).commands.register(entry)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (documented in docs/exit-codes.md)."""
    try:
        # Outside standalone mode click returns the code of ctx.exit(n) instead of raising it.
        returned = cli.main(args=argv, prog_name="opsbackup", standalone_mode=False)
        if isinstance(returned, int):
            return returned
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("opsbackup: interrupted", err=True)
        return exit_code_for(KeyboardInterrupt())
    except OpsbackupError as exc:
        click.echo(f"opsbackup: error: {exc.message}", err=True)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        click.echo("opsbackup: interrupted", err=True)
        return exit_code_for(exc)
    except OSError as exc:
        click.echo(f"opsbackup: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        return exit_code_for(exc)
    except Exception:  # noqa: BLE001 - the last resort for bugs, which must show their traceback
        traceback.print_exc()
        click.echo("opsbackup: internal error (a bug): please report the traceback above", err=True)
        return EXIT_INTERNAL
    return 0


def entry_point() -> None:
    sys.exit(main())
