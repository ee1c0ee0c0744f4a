"""``opsbackup run``: what a timer or cron calls; does everything the configuration file says.

Backs up the ``[backup]`` paths, then each ``[[backup.command]]`` stream, then forgets by
``[retention]`` when the deletion key can be opened unattended, all under the run lock (a file
in the state directory, taken with flock: a killed run's lock is released by the kernel). Quiet
when all is well: log lines on stderr only for warnings and errors, and one summary line on
stdout (``--json``: the summary object). Exit codes: 0 done, 3 done with warnings, 5 another run
holds the lock, 6 nothing to do, any other code failed (docs/exit-codes.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import click

from opsbackup.commands._client import account_for, config_option, emit_json, open_client
from opsbackup.errors import EXIT_NOTHING_TO_DO, EXIT_WARNINGS, AlreadyRunningError, OpsbackupError
from opsbackup.ops.lock import run_lock
from opsbackup.ops.log import Log
from opsbackup.ops.run import RunSummary, lock_path, run_all

__all__ = ["command"]


class _Exit(click.ClickException):
    """Ends ``run`` with a code whose line was already logged (``cli.main`` shows nothing more)."""

    def __init__(self, code: int) -> None:
        super().__init__("")
        self.code = code

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return self.code

    def show(self, file: IO[Any] | None = None) -> None:
        pass


@click.command("run", short_help="Do everything the config says (for timers and cron).")
@config_option
@click.option("--wait", is_flag=True, help="If another run holds the lock, wait for it instead of exiting 5.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as a JSON object instead of a line.")
def command(config_path: Path | None, wait: bool, as_json: bool) -> None:
    """Back up the config's paths and commands, then apply its retention (exit 0/3/5/6, else failed)."""
    log = Log()
    summary = RunSummary()
    try:
        setup = open_client(config_path, config_required=True)
        config = setup.need_config()
        config.need_host()
        if not config.backup.paths and not config.backup.commands:
            summary.status, summary.exit_code = "nothing to do", EXIT_NOTHING_TO_DO
            log("notice", f"nothing to do: {config.path} has no [backup] paths and no [[backup.command]]")
        else:
            with run_lock(lock_path(config), wait=wait), account_for(setup) as account:
                run_all(config, account, log, summary)
            if summary.warnings:
                summary.status, summary.exit_code = "done with warnings", EXIT_WARNINGS
    except AlreadyRunningError as exc:
        log("notice", exc.message)
        raise _Exit(exc.exit_code) from None
    except OpsbackupError as exc:
        log("error", exc.message)
        summary.status, summary.exit_code = "failed", exc.exit_code
    if as_json:
        emit_json(summary.to_json())
    else:
        click.echo(summary.line())
    if summary.exit_code:
        raise _Exit(summary.exit_code)
