"""The Debian package: its files, modes and owners, its control data, lintian, and that it runs."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest

from tests.packaging.conftest import ROOT, Release, require_tool, run

__all__: list[str] = []

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SITE = "./usr/lib/opsbackup/site/"
#: path -> mode of every file the package ships outside the bundled site (and of one directory in it)
EXPECTED = {
    "./usr/bin/opsbackup": "-rwxr-xr-x",
    "./lib/systemd/system/opsbackup-backup.service": "-rw-r--r--",
    "./lib/systemd/system/opsbackup-backup.timer": "-rw-r--r--",
    "./lib/systemd/system/opsbackup-server.service": "-rw-r--r--",
    "./etc/opsbackup/": "drwx------",
    "./etc/opsbackup/config.toml.example": "-rw-------",
    "./var/cache/opsbackup/": "drwx------",
    "./var/lib/opsbackup/": "drwx------",
    "./usr/share/doc/opsbackup/copyright": "-rw-r--r--",
    "./usr/share/doc/opsbackup/changelog.Debian.gz": "-rw-r--r--",
    "./usr/share/doc/opsbackup/exit-codes.md": "-rw-r--r--",
    "./usr/share/doc/opsbackup/sbom.cdx.json": "-rw-r--r--",
    "./usr/share/doc/opsbackup/examples/opsbackup.cron": "-rw-r--r--",
    "./usr/share/man/man1/opsbackup.1.gz": "-rw-r--r--",
    SITE + "opsbackup/chunking/": "drwxr-xr-x",
}
#: the file shipped -> its source in the repository (shipped byte for byte)
SOURCES = {
    "lib/systemd/system/opsbackup-backup.service": "packaging/systemd/opsbackup-backup.service",
    "lib/systemd/system/opsbackup-backup.timer": "packaging/systemd/opsbackup-backup.timer",
    "lib/systemd/system/opsbackup-server.service": "packaging/systemd/opsbackup-server.service",
    "etc/opsbackup/config.toml.example": "packaging/debian/config.toml.example",
    "usr/share/doc/opsbackup/examples/opsbackup.cron": "packaging/cron/opsbackup",
    "usr/bin/opsbackup": "packaging/debian/opsbackup-launcher",
}
#: lintian warnings this package accepts, and why (docs/release.md repeats this list)
ALLOWED_WARNINGS = {
    "non-standard-dir-perm": "/etc/opsbackup, /var/cache/opsbackup, /var/lib/opsbackup are 0700 on purpose",
    "non-standard-file-perm": "config.toml.example is 0600 like the config.toml it shows",
    "initial-upload-closes-no-bugs": "the package is not uploaded to Debian, so no ITP bug is closed",
    "script-not-executable": "tqdm/completion.sh of a bundled package, never run",
    "unusual-interpreter": "requests/certs.py of a bundled package starts with #!/usr/bin/env python",
}


def contents(deb: Path) -> dict[str, tuple[str, str]]:
    """path -> (mode, owner/group) of every entry of the package's data archive."""
    entries = {}
    for line in run(["dpkg-deb", "--contents", deb]).stdout.splitlines():
        mode, owner, _size, _date, _time, path = line.split(maxsplit=5)
        entries[path] = (mode, owner)
    return entries


def field(deb: Path, name: str) -> str:
    return run(["dpkg-deb", "--field", deb, name]).stdout.strip()


def test_the_package_ships_every_file_with_its_mode_and_root_as_owner(release: Release) -> None:
    entries = contents(release.deb)
    for path, mode in EXPECTED.items():
        assert path in entries, f"{path} is not in the package"
        assert entries[path][0] == mode, f"{path} has mode {entries[path][0]}, expected {mode}"
    assert {owner for _mode, owner in entries.values()} == {"root/root"}
    for path, (mode, _owner) in entries.items():
        assert "w" not in (mode[5], mode[8]), f"{path} is writable by group or others: {mode}"
        assert not {"s", "S"} & set(mode), f"{path} is setuid or setgid: {mode}"
    private = {path for path, (mode, _owner) in entries.items() if mode[7] != "r"}
    assert private == {"./etc/opsbackup/", "./etc/opsbackup/config.toml.example"} | {
        "./var/cache/opsbackup/",
        "./var/lib/opsbackup/",
    }
    assert any(re.fullmatch(r"\./usr/lib/opsbackup/site/opsbackup/chunking/_cdc\..*\.so", p) for p in entries)


def test_the_bundled_site_holds_the_application_and_its_dependencies_only(release: Release) -> None:
    entries = contents(release.deb)
    site = {p[len(SITE) :].split("/")[0] for p in entries if p.startswith(SITE) and p != SITE}
    for top in ("opsbackup", "crypto", "formats", "cryptography", "zstandard", "click", "requests"):
        assert top in site, f"{top} is not bundled"
    for top in ("gnupg.py", "tqdm", "starlette", "uvicorn"):
        assert top in site, f"{top} is not bundled"
    assert not {"bin", "tests", "pip", "setuptools", "pytest", "_pytest", "hypothesis", "mypy"} & site
    for path in entries:
        assert "__pycache__" not in path, f"{path}: bytecode is made by postinst"
        assert not path.endswith(".pyc"), f"{path}: bytecode is made by postinst"
        assert not path.endswith("/direct_url.json"), f"{path} records the build machine's paths"
    outside = {p for p in entries if not p.startswith(SITE) and not p.endswith("/")}
    assert outside == {p for p in EXPECTED if not p.endswith("/")}


def test_shipped_files_are_the_repository_files(release: Release, tmp_path: Path) -> None:
    run(["dpkg-deb", "-x", release.deb, tmp_path])
    for shipped, source in SOURCES.items():
        assert (tmp_path / shipped).read_bytes() == (ROOT / source).read_bytes(), (
            f"{shipped} differs from {source}"
        )


def test_control_fields(release: Release) -> None:
    changelog = (ROOT / "packaging/debian/changelog").read_text()
    version = re.match(r"opsbackup \(([^)]+)\)", changelog)
    assert version
    assert version.group(1).startswith(VERSION + "-")
    assert field(release.deb, "Package") == "opsbackup"
    assert field(release.deb, "Version") == version.group(1)
    assert field(release.deb, "Architecture") == run(["dpkg", "--print-architecture"]).stdout.strip()
    assert "<" in field(release.deb, "Maintainer")
    assert int(field(release.deb, "Installed-Size")) > 1000  # KiB
    depends = [d.strip() for d in field(release.deb, "Depends").split(",")]
    minor = sys.version_info.minor
    assert f"python3 (>= 3.{minor})" in depends
    assert f"python3 (<< 3.{minor + 1})" in depends  # the bundled compiled modules are for this version
    assert "adduser" in depends  # postinst makes the server's system user
    assert any(d.startswith("libc6 (>= ") for d in depends)  # from dpkg-shlibdeps
    assert release.deb.name == f"opsbackup_{version.group(1)}_{field(release.deb, 'Architecture')}.deb"


def test_control_archive_conffiles_scripts_and_md5sums(release: Release, tmp_path: Path) -> None:
    control, data = tmp_path / "control", tmp_path / "data"
    run(["dpkg-deb", "--control", release.deb, control])
    run(["dpkg-deb", "-x", release.deb, data])
    assert (control / "conffiles").read_text() == "/etc/opsbackup/config.toml.example\n"
    for script in ("postinst", "prerm", "postrm"):
        path = control / script
        assert path.stat().st_mode & 0o777 == 0o755, f"{script} is not 0755"
        assert path.read_text().startswith("#!/bin/sh\n")
        run(["sh", "-n", path])  # parses
    postinst = (control / "postinst").read_text()
    assert "adduser --system --group" in postinst
    assert " opsbackup\n" in postinst
    assert "install -d -m 0700 -o opsbackup -g opsbackup /var/lib/opsbackup-server" in postinst
    assert "rm -rf /var/lib" not in (control / "postrm").read_text()  # purge never deletes backups
    listed: dict[str, str] = {}
    for line in (control / "md5sums").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()}
    assert set(listed) == {f for f in files if not f.startswith("etc/")}  # conffiles are not listed
    for name, digest in listed.items():
        assert hashlib.md5((data / name).read_bytes()).hexdigest() == digest, name


def test_lintian_finds_no_error_and_only_the_accepted_warnings(
    release: Release, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lintian = require_tool(tmp_path_factory, "lintian", "lintian")
    command: list[str | Path] = [lintian, "--display-level", ">=warning", "--tag-display-limit", "0"]
    done = run([*command, release.deb], check=False, env=dict(os.environ, TMPDIR=str(tmp_path)))
    tags = re.findall(r"^([EW]): opsbackup(?: \w+)?: (\S+)(.*)$", done.stdout, flags=re.MULTILINE)
    errors = [f"{tag}{rest}" for level, tag, rest in tags if level == "E"]
    assert not errors, "lintian errors:\n" + "\n".join(errors)
    unexpected = [f"{tag}{rest}" for level, tag, rest in tags if level == "W" and tag not in ALLOWED_WARNINGS]
    assert not unexpected, "lintian warnings not in ALLOWED_WARNINGS:\n" + "\n".join(unexpected)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_unpacked_package_runs_on_the_system_python(release: Release, tmp_path: Path) -> None:
    python = Path("/usr/bin/python3")
    assert python.exists(), "/usr/bin/python3 is missing: the package runs on the system's python3"
    root = tmp_path / "root"
    run(["dpkg-deb", "-x", release.deb, root])
    # The launcher ignores PYTHON* variables: a planted module on PYTHONPATH is never imported.
    poison = tmp_path / "poison" / "opsbackup"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise SystemExit('imported from PYTHONPATH')\n")
    env = dict(os.environ, PYTHONPATH=str(poison.parent), PYTHONHOME="/nonexistent")
    done = run([root / "usr/bin/opsbackup", "--version"], env=env)
    assert done.stdout.strip() == f"opsbackup, version {VERSION}"
    helped = run([root / "usr/bin/opsbackup", "server", "run", "--help"], env=env).stdout
    assert "--config" in helped
    # Every compiled module loads on this interpreter, from the package's own site.
    site = root / SITE
    probe = (
        "import site, sys; site.addsitedir(sys.argv[1]);"
        "import opsbackup.chunking._cdc as c, cryptography.hazmat.bindings._rust as r;"
        "import zstandard.backend_c as z;"
        "import _cffi_backend as f; print('\\n'.join(m.__file__ for m in (c, r, z, f)))"
    )
    loaded = run([python, "-I", "-S", "-c", probe, site]).stdout.split()
    # postinst byte-compiles the site (py3compile): every module must compile on this interpreter
    run([python, "-m", "compileall", "-q", "-j", "0", site])
    assert len(loaded) == 4
    for path in loaded:
        assert Path(path).resolve().is_relative_to(site.resolve()), f"{path} is not the bundled module"
