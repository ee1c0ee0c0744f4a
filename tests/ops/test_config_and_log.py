"""[[backup.command]] and [retention] are strict config tables; log lines take journald's or syslog's form."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from opsbackup.client.config import BackupCommand, RetentionSettings, load_config
from opsbackup.errors import ConfigError
from opsbackup.ops.log import Log, under_journald


def test_commands_and_retention_load(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            '[[backup.command]]\nname = "db.sql"\ncommand = ["pg_dumpall", "-c"]\n'
            "[retention]\nkeep_daily = 7\nkeep_monthly = 12\n",
        )
    )
    assert config.backup.commands == (BackupCommand("db.sql", ("pg_dumpall", "-c")),)
    assert config.retention == RetentionSettings(keep_daily=7, keep_monthly=12)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


_TWICE = '[[backup.command]]\nname = "x"\ncommand = ["a"]\n' * 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[backup.command]]\nname = "x"\ncommand = ["a"]\nshell = true\n', "unknown key 'shell'"),
        ('[[backup.command]]\nname = "a/b"\ncommand = ["a"]\n', "needs name"),
        ('[[backup.command]]\nname = "x"\ncommand = "pg_dump"\n', "needs command"),
        ('[[backup.command]]\nname = "x"\ncommand = []\n', "needs command"),
        (
            _TWICE,
            "two",
        ),
        ("[retention]\nkeep_dayly = 7\n", "unknown key 'keep_dayly'"),
        ("[retention]\nkeep_daily = -1\n", "whole number"),
        ("[retention]\nkeep_daily = true\n", "whole number"),
        ("[retention]\nkeep_daily = 0\n", "keeps nothing"),
    ],
)
def test_mistakes_are_one_config_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, text))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_log_lines_in_syslog_and_journald_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    Log(out, journald=False)("warning", "file vanished:\n/etc/x")
    assert out.getvalue() == f"opsbackup[{os.getpid()}]: warning: file vanished:\\n/etc/x\n"
    out = io.StringIO()
    Log(out, journald=True)("error", "server refused")
    assert out.getvalue() == "<3>server refused\n"
    with (tmp_path / "stream").open("w") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert under_journald(f)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not under_journald(f)
