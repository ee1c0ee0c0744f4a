"""The CLI imports a command's module only when that command is looked up (start-up time).

Every ``opsbackup`` run used to import all ~30 command modules and with them the server
(starlette, uvicorn), the S3 client (boto3) and the rest. These tests hold the lazy loading to
what it must keep: nothing heavy at ``import opsbackup.cli``, group listings made without any
command module, and listings identical to what the real commands would show.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

import opsbackup.commands
from opsbackup import cli, pki
from opsbackup.client.transport import Transport

#: What no client command on the hot path needs at start-up.
HEAVY = ("boto3", "botocore", "starlette", "uvicorn", "anyio", "cryptography.x509", "opsbackup.server")
HOT_PATH = ("backup", "run", "restore", "ls", "snapshots")


def _python(code: str) -> object:
    """The JSON that ``code`` prints, run in a fresh interpreter (a clean ``sys.modules``)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _loaded(prefixes: tuple[str, ...]) -> str:
    return (
        f"json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {prefixes!r} or m in {prefixes!r}))"
    )


def test_import_loads_no_command_and_nothing_heavy() -> None:
    loaded = _python(f"import json, sys, opsbackup.cli; print({_loaded((*HEAVY, 'gnupg', 'requests'))})")
    assert loaded == []
    commands = _python(
        "import json, sys, opsbackup.cli; "
        "print(json.dumps([m for m in sys.modules if m.startswith('opsbackup.commands.')]))"
    )
    assert commands == []


@pytest.mark.parametrize("command", HOT_PATH)
def test_hot_path_command_loads_nothing_heavy(command: str) -> None:
    code = (
        f"import json, sys, opsbackup.cli; opsbackup.cli.cli.commands[{command!r}]; print({_loaded(HEAVY)})"
    )
    assert _python(code) == []


def test_help_lists_every_command_without_importing_one() -> None:
    code = (
        "import contextlib, io, json, sys; from opsbackup import cli; out = {}\n"
        "for path in sorted({e.path for e in cli.COMMANDS}):\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as f:\n"
        "        assert cli.main([*path, '--help']) == 0\n"
        "    out[' '.join(path)] = f.getvalue()\n"
        "print(json.dumps([out, [m for m in sys.modules if m.startswith('opsbackup.commands.')]]))"
    )
    result = _python(code)
    assert isinstance(result, list)
    helps, imported = result
    assert imported == []
    for entry in cli.COMMANDS:
        listing = helps[" ".join(entry.path)].split("\nCommands:\n", 1)[1]
        assert f"\n  {entry.name} " in f"\n{listing}", f"{entry.name} missing from {entry.path} --help"
    top = helps[""].split("\nCommands:\n", 1)[1]
    for group in {e.path[0] for e in cli.COMMANDS if e.path}:
        assert f"\n  {group} " in f"\n{top}"


def test_every_command_module_is_registered() -> None:
    package = Path(opsbackup.commands.__file__).parent
    modules = {p.stem for p in package.glob("*.py") if not p.stem.startswith("_")}
    assert modules == {e.module for e in cli.COMMANDS}


@pytest.mark.parametrize("entry", cli.COMMANDS, ids=lambda e: e.module)
def test_table_matches_the_command(entry: cli.CommandEntry) -> None:
    """The name and one-line help in COMMANDS are the command's own, at every width."""
    module = __import__(f"opsbackup.commands.{entry.module}", fromlist=["command"])
    real: click.Command = module.command
    assert real.name == entry.name
    assert not real.hidden
    assert not real.deprecated
    assert bool(real.short_help) != entry.from_help
    group: click.Group = cli.cli
    for name in entry.path:
        sub = group.commands[name]
        assert isinstance(sub, click.Group)
        group = sub
    assert isinstance(group, cli.LazyGroup)
    assert group.commands[entry.name] is real
    stand_in = entry.stand_in()
    for limit in (10, 30, 45, 60, 80, 200):
        assert stand_in.get_short_help_str(limit) == real.get_short_help_str(limit), limit


def test_group_help_is_the_same_before_and_after_loading() -> None:
    """A listing from the table (fresh process) is byte for byte the one from the loaded commands."""
    code = (
        "import json, click; from opsbackup import cli\n"
        "def helps():\n"
        "    out = []\n"
        "    for path in sorted({e.path[:i] for e in cli.COMMANDS for i in range(len(e.path) + 1)}):\n"
        "        group = cli.cli\n"
        "        for name in path: group = group.commands[name]\n"
        "        for width in (40, 60, 80, 120):\n"
        "            ctx = click.Context(group, info_name='opsbackup', terminal_width=width)\n"
        "            out.append(group.get_help(ctx))\n"
        "    return out\n"
        "lazy = helps()\n"
        "for e in cli.COMMANDS:\n"
        "    group = cli.cli\n"
        "    for name in e.path: group = group.commands[name]\n"
        "    group.commands[e.name]\n"
        "print(json.dumps([lazy, helps()]))"
    )
    result = _python(code)
    assert isinstance(result, list)
    lazy, loaded = result
    assert lazy == loaded
    assert len(lazy) > 20


def test_commands_mapping_behaves_like_a_dict() -> None:
    """add_command / pop / ``in`` work as on click's plain dict (tests and tools rely on them)."""
    boom = click.Command("boom-lazy-test")
    assert "boom-lazy-test" not in cli.cli.commands
    cli.cli.add_command(boom)
    try:
        assert "boom-lazy-test" in cli.cli.commands
        assert cli.cli.commands["boom-lazy-test"] is boom
        assert "boom-lazy-test" in list(cli.cli.commands)
    finally:
        assert cli.cli.commands.pop("boom-lazy-test") is boom
    assert "boom-lazy-test" not in cli.cli.commands
    assert cli.cli.commands.get("no-such-command") is None
    with pytest.raises(KeyError):
        del cli.cli.commands["no-such-command"]


def test_transport_ca_fingerprint_is_pki_fingerprint(tmp_path: Path) -> None:
    """The transport's fingerprint (from the pinned context, without cryptography.x509) is pki's."""
    ca = pki.create_ca(tmp_path / "ca")
    with Transport("https://127.0.0.1:9", ca.cert) as transport:
        assert transport.ca_fingerprint == pki.fingerprint(ca.cert)
    leaf = pki.issue_server_cert(tmp_path / "ca", tmp_path / "tls", dns_names=["localhost"], ip_addresses=[])
    both = tmp_path / "both.pem"
    both.write_bytes(leaf.cert.read_bytes() + ca.cert.read_bytes())
    with Transport("https://127.0.0.1:9", both) as transport:
        assert transport.ca_fingerprint == pki.fingerprint(both) == pki.fingerprint(leaf.cert)
