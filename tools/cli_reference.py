#!/usr/bin/env python3
"""The reference section of docs/cli.md: every command's --help, walked from the click tree.

``python tools/cli_reference.py`` prints it; ``--write`` replaces the reference in docs/cli.md
(everything from its first ``### `opsbackup ...``` heading to the end) with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opsbackup.cli import cli

CLI_MD = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
FIRST_HEADING = "### `opsbackup "


def walk(cmd: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    if isinstance(cmd, click.Group):
        return [item for name in sorted(cmd.commands) for item in walk(cmd.commands[name], [*path, name])]
    return [(path, cmd)]


def reference() -> str:
    parts = []
    for path, cmd in walk(cli, ["opsbackup"]):
        name = " ".join(path)
        # A fixed width, so the text does not depend on the terminal (or COLUMNS) it is made in;
        # the group's help option names, whether or not a command has run in this process.
        ctx = click.Context(
            cmd,
            info_name=name,
            terminal_width=80,
            max_content_width=80,
            help_option_names=cli.context_settings["help_option_names"],
        )
        parts.append(f"### `{name}`\n\n```text\n{cmd.get_help(ctx)}\n```\n")
    return "\n".join(parts)


def main() -> None:
    if "--write" not in sys.argv[1:]:
        print(reference())
        return
    text = CLI_MD.read_text(encoding="utf-8")
    start = text.find(FIRST_HEADING)
    if start < 0:
        sys.exit(f"{CLI_MD} has no '{FIRST_HEADING}...' heading to replace from")
    CLI_MD.write_text(text[:start] + reference(), encoding="utf-8")


if __name__ == "__main__":
    main()
