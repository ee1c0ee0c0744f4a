"""The ``opsbackup`` command line: one click group; every command is a small module.

Commands live in :mod:`opsbackup.commands`, one module per command (``server_init.py`` holds
``opsbackup server init``), each exporting ``command`` and registered in ``COMMANDS`` below.
:func:`main` is the single place where errors become one line on stderr and an exit code.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from opsbackup import __version__
from opsbackup.errors import EXIT_INTERNAL, OpsbackupError, exit_code_for

__all__ = ["cli", "main"]

#: (group path, module name) of every command; a group path of () is the top level.
COMMANDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("server",), "server_run"),
    (("server",), "server_init"),
    (("server",), "server_renew_cert"),
    (("server", "account"), "server_account_add"),
    (("server", "account"), "server_account_list"),
    (("server", "credential"), "server_credential_issue"),
    (("server", "credential"), "server_credential_revoke"),
    (("server", "credential"), "server_credential_list"),
    (("server", "audit"), "server_audit_verify"),
    (("keys",), "keys_init"),
    (("keys",), "keys_publish"),
    (("keys",), "keys_add_host"),
    (("keys",), "keys_revoke_host"),
    (("keys",), "keys_export"),
    (("keys",), "keys_import"),
    (("keys",), "keys_rotate"),
    (("keys",), "keys_add_recipient"),
    (("keys",), "keys_remove_recipient"),
    (("host",), "host_init"),
    ((), "backup"),
    ((), "snapshots"),
    ((), "ls"),
    ((), "find"),
    ((), "restore"),
    ((), "dump"),
    ((), "check"),
    ((), "run"),
    ((), "forget"),
    ((), "prune"),
    ((), "demo"),
    ((), "benchmark"),
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="opsbackup")
def cli() -> None:
    """Client-side encrypted, public-key backup for servers."""


def _group(path: tuple[str, ...]) -> click.Group:
    group: click.Group = cli
    for name in path:
        sub = group.commands.get(name)
        if sub is None:
            sub = click.Group(name, help=f"{name.capitalize()} commands.")
            group.add_command(sub)
        assert isinstance(sub, click.Group)
        group = sub
    return group


def _register() -> None:
    for path, module in COMMANDS:
        command = importlib.import_module(f"opsbackup.commands.{module}").command
        _group(path).add_command(command)


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
