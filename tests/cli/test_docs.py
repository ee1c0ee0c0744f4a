"""Every command and every option is documented in docs/cli.md, and every exit code in exit-codes.md."""

from __future__ import annotations

import re
from pathlib import Path

import click

from formats import errors
from opsbackup.cli import cli
from tools.cli_reference import FIRST_HEADING, reference, walk

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_command_and_option_is_in_cli_md() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    commands = walk(cli, ["opsbackup"])
    assert commands
    for path, cmd in commands:
        heading = f"### `{' '.join(path)}`"
        assert heading in text, f"{heading} missing from docs/cli.md: run tools/cli_reference.py"
        section = text.split(heading, 1)[1].split("\n### ", 1)[0]
        for param in cmd.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    assert opt in section, f"{opt} of {' '.join(path)} missing from docs/cli.md"


def test_every_error_class_exit_code_is_documented() -> None:
    text = (DOCS / "exit-codes.md").read_text(encoding="utf-8")
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", text, flags=re.MULTILINE)}
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, errors.OpsbackupError)
    ]
    assert len(classes) > 10
    for cls in classes:
        assert cls.exit_code in documented, f"{cls.__name__} exit code {cls.exit_code} not in exit-codes.md"
        assert cls.__name__ in text or cls.__mro__[1].__name__ in text, cls.__name__


def test_the_reference_in_cli_md_is_exactly_the_commands_help() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    generated = text[text.index(FIRST_HEADING) :]
    assert generated == reference(), "docs/cli.md is stale: run tools/cli_reference.py --write"
