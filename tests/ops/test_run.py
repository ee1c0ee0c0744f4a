"""``opsbackup run`` as a real process: summary and exit codes, command streams, the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from opsbackup.errors import EXIT_NOTHING_TO_DO, EXIT_WARNINGS, AlreadyRunningError
from opsbackup.restore import list_snapshots
from tests.client_support import ClientEnv
from tests.ops._support import cli_env, make_host, opsbackup

#: A command that says it started, waits for a release file, then prints its dump.
GATED = """
import pathlib, sys, time
d = pathlib.Path(sys.argv[1])
(d / "started").touch()
while not (d / "release").exists():
    time.sleep(0.02)
sys.stdout.write("dump " * 1000)
"""


def _source(tmp: Path) -> Path:
    src = tmp / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "app.conf").write_text("listen = 8080\n" * 50)
    (src / "skip.tmp").write_text("excluded\n")
    return src


def _command(name: str, *argv: str) -> str:
    return f'[[backup.command]]\nname = "{name}"\ncommand = {json.dumps(list(argv))}\n'


def _wait_blocked(pid: int) -> None:
    """Until process ``pid`` waits for a flock (a ``->`` line of /proc/locks names it)."""
    while not any(
        line.split()[1] == "->" and line.split()[5] == str(pid)
        for line in Path("/proc/locks").read_text().splitlines()
        if len(line.split()) > 6
    ):
        time.sleep(0.02)


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)


def test_run_backs_up_paths_and_commands_quietly(env: ClientEnv, tmp_path: Path) -> None:
    src = _source(tmp_path)
    extra = _command("db.sql", sys.executable, "-c", "print('CREATE TABLE t;')")
    config = make_host(env, tmp_path / "host", paths=[src], extra=extra)
    # the [backup] exclude is read from the same table: add it by rewriting the paths line
    text = config.read_text().replace("[backup]\n", '[backup]\nexclude = ["*.tmp"]\n')
    config.write_text(text)
    out, err = opsbackup("run", "--config", config, "--json", env=cli_env(tmp_path)).communicate()
    summary = json.loads(out)
    assert err == b"", err
    assert summary["status"] == "done"
    assert summary["exit_code"] == 0
    assert len(summary["snapshots"]) == 2
    assert summary["commands"] == {"db.sql": "ok"}
    assert summary["forget"] == "not configured"
    assert summary["stored_bytes"] > 0
    line = opsbackup("run", "--config", config, env=cli_env(tmp_path))
    text_out, text_err = line.communicate()
    assert line.returncode == 0
    assert text_err == b""
    assert text_out.decode().count("\n") == 1
    assert text_out.startswith(b"opsbackup run: done: 2 snapshots")


def test_a_failing_command_is_a_warning_and_its_output_is_not_kept(env: ClientEnv, tmp_path: Path) -> None:
    failing = "import sys; sys.stdout.write('partial dump'); sys.exit(3)"
    extra = _command("bad.sql", sys.executable, "-c", failing) + _command("missing", "/nonexistent/dumper")
    config = make_host(env, tmp_path / "host", extra=extra, host="web2")
    proc = opsbackup("run", "--config", config, "--json", env=cli_env(tmp_path))
    out, err = proc.communicate()
    assert proc.returncode == EXIT_WARNINGS, (out, err)
    summary = json.loads(out)
    assert summary["commands"]["bad.sql"] == "failed (exit status 3)"
    assert summary["commands"]["missing"].startswith("not started")
    lines = err.decode().splitlines()
    assert all(line.startswith(f"opsbackup[{proc.pid}]: warning: ") for line in lines), lines
    assert any("bad.sql" in line and "exit status 3" in line for line in lines)
    # the partial output of the failed command was not stored: no snapshot holds it
    assert summary["snapshots"] == []
    assert list_snapshots(env.account(), "web2") == []


def test_nothing_to_do_exits_6(env: ClientEnv, tmp_path: Path) -> None:
    config = make_host(env, tmp_path / "host")
    proc = opsbackup("run", "--config", config, env=cli_env(tmp_path))
    out, err = proc.communicate()
    assert proc.returncode == EXIT_NOTHING_TO_DO
    assert out.startswith(b"opsbackup run: nothing to do")
    assert b"notice: nothing to do" in err


def test_retention_without_a_deletion_key_is_skipped_and_said(env: ClientEnv, tmp_path: Path) -> None:
    src = _source(tmp_path)
    config = make_host(env, tmp_path / "host", paths=[src], extra="[retention]\nkeep_last = 1\n")
    proc = opsbackup("run", "--config", config, "--json", env=cli_env(tmp_path))
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out)["forget"].startswith("skipped (no [keys] dir")


def test_a_second_run_exits_5_waits_with_wait_and_a_killed_runs_lock_is_reclaimed(
    env: ClientEnv, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    config = make_host(
        env, tmp_path / "host", extra=_command("gated", sys.executable, "-c", GATED, str(gate))
    )
    cli = cli_env(tmp_path)
    first = opsbackup("run", "--config", config, env=cli)
    _wait_for(gate / "started", first)  # the first run holds the lock and is inside its command
    second = opsbackup("run", "--config", config, env=cli)
    out, err = second.communicate()
    assert second.returncode == AlreadyRunningError.exit_code == 5
    assert out == b""
    assert err.decode().count("\n") == 1
    assert b"another opsbackup run holds the lock" in err
    waiting = opsbackup("run", "--config", config, "--wait", env=cli)
    _wait_blocked(waiting.pid)  # it is blocked on the lock, not exiting 5
    (gate / "release").touch()
    assert first.wait() == 0
    assert waiting.wait() == 0  # it waited for the lock instead of exiting 5
    # SIGKILL a run while it holds the lock (and its command): the next run gets the lock
    for name in ("started", "release"):
        (gate / name).unlink()
    killed = opsbackup("run", "--config", config, env=cli, start_new_session=True)
    _wait_for(gate / "started", killed)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    (gate / "release").touch()
    after = opsbackup("run", "--config", config, env=cli)
    out, err = after.communicate()
    assert after.returncode == 0, err
    assert out.startswith(b"opsbackup run: done: 1 snapshots")
