#!/usr/bin/env python3
"""Print the reference section of docs/cli.md: every command's --help, walked from the click tree."""

from __future__ import annotations

import click

from opsbackup.cli import cli


def walk(cmd: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    if isinstance(cmd, click.Group):
        return [item for name in sorted(cmd.commands) for item in walk(cmd.commands[name], [*path, name])]
    return [(path, cmd)]


def main() -> None:
    for path, cmd in walk(cli, ["opsbackup"]):
        name = " ".join(path)
        print(f"### `{name}`\n\n```text\n{cmd.get_help(click.Context(cmd, info_name=name))}\n```\n")


if __name__ == "__main__":
    main()
