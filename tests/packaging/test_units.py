"""The systemd units and the cron example: what they run, their hardening, and systemd's own checks."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from formats.errors import EXIT_WARNINGS, AlreadyRunningError, ConfigError, UsageError
from tests.packaging.conftest import ROOT, run

__all__: list[str] = []

UNITS = ROOT / "packaging" / "systemd"
CRON = ROOT / "packaging" / "cron" / "opsbackup"
SANDBOX = {  # shared by both services
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0077",
}
BACKUP = {
    "Type": "oneshot",
    "ExecStart": "/usr/bin/opsbackup run --config /etc/opsbackup/config.toml",
    "SuccessExitStatus": str(EXIT_WARNINGS),
    "User": "root",
    "CapabilityBoundingSet": "CAP_DAC_READ_SEARCH",
    "AmbientCapabilities": "",
    "ReadWritePaths": "/var/cache/opsbackup /var/lib/opsbackup",
    "CacheDirectory": "opsbackup",
    "StateDirectory": "opsbackup",
    "ProtectHome": "read-only",
    "Nice": "19",
    "IOSchedulingClass": "idle",
}
SERVER = {
    "ExecStart": "/usr/bin/opsbackup server run --config /var/lib/opsbackup-server/server.toml",
    "User": "opsbackup",
    "Group": "opsbackup",
    "StateDirectory": "opsbackup-server",
    "StateDirectoryMode": "0700",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectHome": "yes",
    "RestartPreventExitStatus": f"{UsageError.exit_code} {ConfigError.exit_code}",
}


def directives(path: Path) -> dict[str, dict[str, str]]:
    """section -> key -> value of a unit file (the last assignment of a key, as systemd reads it)."""
    out: dict[str, dict[str, str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = {}
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line!r}"
        out[section][key.strip()] = value.strip()
    return out


@pytest.mark.parametrize(
    ("unit", "expected"), [("opsbackup-backup.service", BACKUP), ("opsbackup-server.service", SERVER)]
)
def test_services_run_opsbackup_in_a_sandbox(unit: str, expected: dict[str, str]) -> None:
    service = directives(UNITS / unit)["Service"]
    for key, value in {**SANDBOX, **expected}.items():
        assert service.get(key) == value, f"{unit}: {key}={service.get(key)!r}, expected {value!r}"
    assert "SystemCallFilter" in service
    assert "PYTHONPATH" not in (UNITS / unit).read_text()


def test_the_server_config_lives_in_its_state_directory() -> None:
    service = directives(UNITS / "opsbackup-server.service")
    config = service["Service"]["ExecStart"].split("--config ", 1)[1]
    assert Path(config).parent == Path("/var/lib") / service["Service"]["StateDirectory"]
    assert service["Install"]["WantedBy"] == "multi-user.target"


def test_the_timer_starts_the_backup_daily_spread_and_catching_up() -> None:
    timer = directives(UNITS / "opsbackup-backup.timer")
    assert timer["Timer"]["OnCalendar"] == "daily"
    assert timer["Timer"]["Persistent"] == "yes"
    assert re.fullmatch(r"\d+(h|min)", timer["Timer"]["RandomizedDelaySec"])
    assert "Unit" not in timer["Timer"]  # so it starts the service of the same name
    assert (UNITS / "opsbackup-backup.service").exists()
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert "Install" not in directives(UNITS / "opsbackup-backup.service")  # the timer starts it


def test_cron_example_runs_the_backup_without_flock_and_explains_exit_codes() -> None:
    text = CRON.read_text()
    jobs = [line.split(maxsplit=6) for line in text.splitlines() if line and line[0].isdigit()]
    assert len(jobs) == 1
    minute, hour, dom, month, dow, user, command = jobs[0]
    assert (dom, month, dow, user) == ("*", "*", "*", "root")
    assert 0 <= int(minute) < 60
    assert 0 <= int(hour) < 24
    assert command.endswith("/usr/bin/opsbackup run --config /etc/opsbackup/config.toml >/dev/null")
    assert "flock" not in command
    for code, meaning in ((0, "done"), (EXIT_WARNINGS, "warnings"), (AlreadyRunningError.exit_code, "lock")):
        assert re.search(rf"^#\s+{code}\s+.*{meaning}", text, flags=re.MULTILINE), f"exit code {code}"


def _units_with_stub(tmp_path: Path) -> list[Path]:
    """Copies of the units whose ExecStart names a stub executable (systemd checks that it exists)."""
    stub = tmp_path / "bin" / "opsbackup"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    copies = []
    for unit in sorted(UNITS.iterdir()):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/usr/bin/opsbackup", str(stub)))
        copies.append(copy)
    return copies


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd); the units are checked above")
    return tool


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    tool = _systemd_analyze()
    units = _units_with_stub(tmp_path)
    manual = tmp_path / "man" / "man1" / "opsbackup.1"  # Documentation=man:opsbackup(1) must resolve
    manual.parent.mkdir(parents=True)
    shutil.copyfile(ROOT / "packaging" / "debian" / "opsbackup.1", manual)
    done = run([tool, "verify", *units], check=False, env=dict(os.environ, MANPATH=str(tmp_path / "man")))
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # unknown keys and bad values are only warned about
    # and it does warn: a unit with a typo is reported
    typo = tmp_path / "typo.service"
    typo.write_text(units[0].read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    assert "ProtectSytem" in run([tool, "verify", "--man=no", typo], check=False).stderr


@pytest.mark.parametrize(
    ("unit", "limit"), [("opsbackup-backup.service", 2.5), ("opsbackup-server.service", 1.5)]
)
def test_systemd_analyze_security_exposure_stays_low(unit: str, limit: float, tmp_path: Path) -> None:
    tool = _systemd_analyze()
    _units_with_stub(tmp_path)
    done = run([tool, "security", "--offline=true", "--no-pager", tmp_path / unit], check=False)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= limit, done.stdout
