#!/usr/bin/env python3
"""Build a signed opsbackup release: wheel, sdist, Debian package, CycloneDX SBOM, SHA256SUMS(.asc).

    .venv/bin/python tools/release.py --gpg-key FINGERPRINT [--gnupghome DIR] [--out dist]

Run it with the Python of the target system's minor version (the .deb bundles compiled modules
for it; Debian 12: 3.11), from the project's venv so that the bundled dependencies are pinned to
the versions the tests ran with. It needs dpkg-deb, dpkg-shlibdeps, strip, gcc and gpg (as root
with apt-get it installs them) and PyPI through pip. Nothing is written outside ``--out`` (which
must be empty) and a temporary directory. Exit code 0 on success, 1 with one line on failure.
How to verify a release: docs/release.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
import venv
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

__all__ = ["ReleaseError", "build_sbom", "main"]

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
DEBIAN = PACKAGING / "debian"
SITE = "usr/lib/opsbackup/site"
TOOLS = {"dpkg-deb": "dpkg", "dpkg-shlibdeps": "dpkg-dev", "strip": "binutils", "gcc": "gcc", "gpg": "gnupg"}
UNITS = ("opsbackup-backup.service", "opsbackup-backup.timer", "opsbackup-server.service")
PRIVATE_DIRS = ("etc/opsbackup", "var/cache/opsbackup", "var/lib/opsbackup")  # 0700
_SPDX = {"MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "PSF-2.0", "MPL-2.0", "0BSD"}
_CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
}


class ReleaseError(Exception):
    """One line saying what failed and what to do."""


@dataclass(frozen=True)
class Versions:
    """The project's version, the Debian revision built from packaging/debian/changelog, its author."""

    upstream: str
    debian: str
    maintainer: str


def run(cmd: Sequence[str | Path], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """Run a command; return its stdout; on failure show its output and raise one line."""
    argv = [str(c) for c in cmd]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise ReleaseError(f"{Path(argv[0]).name} failed with exit code {done.returncode}: {' '.join(argv)}")
    return done.stdout


def need_tools(tools: dict[str, str]) -> None:
    """Make sure every tool is on PATH: install its Debian package as root, else say which."""
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ReleaseError(f"missing tools; install these packages first: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *missing], env=env)


def gpg(gnupghome: Path | None, *args: str) -> list[str]:
    """A gpg command line for ``gnupghome`` (else gpg's default) in batch mode."""
    home = ["--homedir", str(gnupghome)] if gnupghome else []
    return ["gpg", *home, "--batch", "--no-tty", *args]


def check_signing_key(fingerprint: str, gnupghome: Path | None) -> None:
    """Refuse a key that is not a secret key present in the keyring."""
    listing = subprocess.run(
        gpg(gnupghome, "--with-colons", "--list-secret-keys", fingerprint), capture_output=True, text=True
    )
    fprs = {line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr:")}
    if listing.returncode != 0 or fingerprint not in fprs:
        where = gnupghome or "the default GnuPG home"
        raise ReleaseError(f"no secret key {fingerprint} in {where}: pass --gnupghome or import the key")


def read_versions() -> Versions:
    """The version in pyproject.toml, checked against the top entry of the Debian changelog."""
    upstream = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    text = (DEBIAN / "changelog").read_text()
    head = re.match(r"opsbackup \(([^)\s]+)\) ", text)
    trailer = re.search(r"^ -- (.+?)  \S", text, re.MULTILINE)
    if head is None or trailer is None:
        raise ReleaseError(
            "packaging/debian/changelog: no 'opsbackup (VERSION)' first line or ' -- ' trailer"
        )
    if head.group(1).rsplit("-", 1)[0] != upstream:
        raise ReleaseError(
            f"packaging/debian/changelog is at {head.group(1)} but pyproject.toml at {upstream}: "
            "add a changelog entry for this version"
        )
    return Versions(upstream, head.group(1), trailer.group(1))


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH if set, else the last commit's time, else now: every timestamp written."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    done = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True)
    return int(done.stdout) if done.returncode == 0 and done.stdout.strip().isdigit() else int(time.time())


def source_revision() -> str:
    """The commit the sources are at, with "+dirty" if the working tree has changes ("" outside git)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        return ""
    status = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def build_python(work: Path) -> tuple[Path, Path, Path]:
    """Build the sdist and, from it, the wheel (with the C chunker); return the sdist, wheel and python."""
    src = work / "src"
    src.mkdir()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    junk = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", "*.egg-info")
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        top = package.rstrip("*")
        shutil.copytree(ROOT / top, src / top, ignore=junk)
    venv.EnvBuilder(with_pip=True).create(work / "venv")
    python = work / "venv" / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", "build", *project["build-system"]["requires"]])
    out = work / "python-dist"
    run([python, "-m", "build", "--no-isolation", "--outdir", out, src], env=build_env(python))
    sdist, wheel = next(out.glob("*.tar.gz")), next(out.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        if not any(re.fullmatch(r"opsbackup/chunking/_cdc\..*\.so", n) for n in zf.namelist()):
            raise ReleaseError(f"{wheel.name} lacks the native chunker: install gcc and the Python headers")
    return sdist, wheel, python


def build_env(python: Path) -> dict[str, str]:
    """Debian's hardening flags for the C extension, and no RPATH from the build's Python."""
    env = dict(os.environ, DEB_BUILD_MAINT_OPTIONS="hardening=+all")
    for var in ("CFLAGS", "CPPFLAGS", "LDFLAGS"):
        env[var] = run(["dpkg-buildflags", "--get", var], env=env).strip()
    ldshared = run([python, "-c", "import sysconfig; print(sysconfig.get_config_var('LDSHARED'))"]).split()
    env["LDSHARED"] = " ".join(t for t in ldshared if not t.startswith(("-L", "-Wl,-rpath", "-Wl,-R")))
    return env


def pin_constraints(work: Path) -> Path:
    """Constraints pinning every distribution of the running environment (the tested versions)."""
    pins = sorted(
        {
            f"{d.metadata['Name']}=={d.version}"
            for d in importlib.metadata.distributions()
            if d.metadata["Name"] and normalize(d.metadata["Name"]) != "opsbackup"
        }
    )
    path = work / "constraints.txt"
    path.write_text("".join(p + "\n" for p in pins))
    return path


def bundle_site(work: Path, python: Path, wheel: Path, stage: Path) -> list[Path]:
    """Download the dependency wheels and install them with opsbackup into the staging site."""
    house, site = work / "wheelhouse", stage / SITE
    pip: list[str | Path] = [python, "-m", "pip"]
    run([*pip, "download", "-q", "--only-binary=:all:", "-d", house, "-c", pin_constraints(work), wheel])
    wheels = sorted(house.glob("*.whl"))
    run([*pip, "install", "-q", "--no-index", "--no-deps", "--no-compile", "--target", site, *wheels])
    shutil.rmtree(site / "bin", ignore_errors=True)
    for path in site.rglob("direct_url.json"):
        path.unlink()
    for path in sorted(site.rglob("*.so*")):
        if path.is_file():
            run(["strip", "--strip-unneeded", "--remove-section=.comment", "--remove-section=.note", path])
    return wheels


def normalize(name: str) -> str:
    """A distribution name as PyPI and package URLs compare them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def licenses(meta: importlib.metadata.PackageMetadata) -> list[dict[str, Any]]:
    """CycloneDX licenses of one distribution's metadata (SPDX where it is clear), or none."""
    expression = str((meta.get_all("License-Expression") or [""])[0]).strip()
    if expression:
        return [{"expression": expression}]
    text = str((meta.get_all("License") or [""])[0]).strip()
    if text and "\n" not in text and len(text) <= 100 and text.upper() != "UNKNOWN":
        if text in _SPDX:
            return [{"license": {"id": text}}]
        if set(re.split(r"[\s()]+", text)) - {""} <= _SPDX | {"AND", "OR", "WITH"}:
            return [{"expression": text}]  # "MPL-2.0 AND MIT"
        return [{"license": {"name": text}}]
    ids = sorted({_CLASSIFIERS[c] for c in meta.get_all("Classifier") or [] if c in _CLASSIFIERS})
    return [{"license": {"id": i}} for i in ids]


def build_sbom(
    site: Path, wheels: Sequence[Path], main_wheel: Path, epoch: int, revision: str = ""
) -> dict[str, Any]:
    """A CycloneDX 1.5 SBOM of everything installed in ``site``, with the hashes of its wheels."""
    by_name = {normalize(w.name.split("-")[0]): w for w in [*wheels, main_wheel]}
    dists = sorted(importlib.metadata.distributions(path=[str(site)]), key=lambda d: normalize(d.name))
    components: list[dict[str, Any]] = []
    dependencies: list[dict[str, Any]] = []
    root: dict[str, Any] = {}
    for dist in dists:
        name = normalize(dist.name)
        wheel = by_name.get(name)
        if wheel is None:
            raise ReleaseError(f"{dist.name} is installed but came from no wheel that was downloaded")
        purl = f"pkg:pypi/{name}@{dist.version}"
        component = {
            "type": "application" if name == "opsbackup" else "library",
            "bom-ref": purl,
            "name": dist.name,
            "version": dist.version,
            "purl": purl,
            "licenses": licenses(dist.metadata),
            "hashes": [{"alg": "SHA-256", "content": sha256(wheel)}],
            "properties": [{"name": "opsbackup:wheel", "value": wheel.name}],
        }
        if name == "opsbackup":
            root = component
        else:
            components.append(component)
        needs = {
            normalize(m.group(0))
            for req in dist.requires or []
            if "extra" not in req.partition(";")[2] and (m := re.match(r"[A-Za-z0-9._-]+", req))
        }
        refs = sorted(
            f"pkg:pypi/{normalize(d.name)}@{d.version}" for d in dists if normalize(d.name) in needs
        )
        dependencies.append({"ref": purl, "dependsOn": refs})
    if not root:
        raise ReleaseError("opsbackup itself is not installed in the bundled site")
    hashes = "".join(sorted(c["hashes"][0]["content"] for c in [root, *components]))
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, hashes)}",
        "version": 1,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
            "tools": {"components": [{"type": "application", "name": "opsbackup tools/release.py"}]},
            "component": root,
            "properties": [{"name": "opsbackup:git-revision", "value": revision}] if revision else [],
        },
        "components": components,
        "dependencies": dependencies,
    }


def stage_tree(stage: Path, sbom: dict[str, Any]) -> None:
    """Lay out every file of the package beside the bundled site (modes are set by :func:`fix_modes`)."""
    doc = stage / "usr/share/doc/opsbackup"
    for directory in (*PRIVATE_DIRS, "usr/bin", "lib/systemd/system", "DEBIAN"):
        (stage / directory).mkdir(parents=True, exist_ok=True)
    (doc / "examples").mkdir(parents=True)
    shutil.copyfile(DEBIAN / "opsbackup-launcher", stage / "usr/bin/opsbackup")
    man = stage / "usr/share/man/man1"
    man.mkdir(parents=True)
    gzip_file(DEBIAN / "opsbackup.1", man / "opsbackup.1.gz")
    for unit in UNITS:
        shutil.copyfile(PACKAGING / "systemd" / unit, stage / "lib/systemd/system" / unit)
    shutil.copyfile(DEBIAN / "config.toml.example", stage / "etc/opsbackup/config.toml.example")
    shutil.copyfile(PACKAGING / "cron" / "opsbackup", doc / "examples" / "opsbackup.cron")
    shutil.copyfile(ROOT / "docs" / "exit-codes.md", doc / "exit-codes.md")
    (doc / "sbom.cdx.json").write_text(json.dumps(sbom, indent=2) + "\n")
    (doc / "copyright").write_text((DEBIAN / "copyright").read_text() + bundled_copyright(sbom))
    gzip_file(DEBIAN / "changelog", doc / "changelog.Debian.gz")
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        shutil.copyfile(DEBIAN / script, stage / "DEBIAN" / script)


def gzip_file(source: Path, target: Path) -> None:
    """``gzip -9n``: no name and no time, so the bytes depend on the content only."""
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(source.read_bytes())


def bundled_copyright(sbom: dict[str, Any]) -> str:
    """The copyright paragraph of the bundled Python packages, from the SBOM."""
    lines = []
    for c in sbom["components"]:
        lic = c["licenses"][0] if c["licenses"] else {}
        text = lic.get("expression") or lic.get("license", {}).get("id") or lic.get("license", {}).get("name")
        lines.append(f" {c['name']} {c['version']}: {text or 'see its dist-info'}")
    return (
        "\nFiles: usr/lib/opsbackup/site/*\n"
        "Copyright: the authors of each bundled Python package\n"
        "License: bundled\n"
        " These Python packages are bundled; each keeps its license text in\n"
        " /usr/lib/opsbackup/site/NAME-VERSION.dist-info, and sbom.cdx.json beside\n"
        " this file lists them with the SHA-256 of each wheel:\n .\n" + "\n".join(lines) + "\n"
    )


def fix_modes(stage: Path, epoch: int) -> None:
    """0755/0644 everywhere, 0700 private directories, a 0600 example config; one mtime for all."""
    executables = {"usr/bin/opsbackup", "DEBIAN/postinst", "DEBIAN/prerm", "DEBIAN/postrm"}
    for path in [stage, *stage.rglob("*")]:
        rel = path.relative_to(stage).as_posix()
        if path.is_dir():
            path.chmod(0o700 if rel in PRIVATE_DIRS else 0o755)
        else:
            path.chmod(0o755 if rel in executables else 0o600 if rel.startswith("etc/") else 0o644)
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def is_elf(path: Path) -> bool:
    """Whether a file is an ELF object (a shared library or a program)."""
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def shlib_depends(work: Path, stage: Path) -> str:
    """The shared-library dependencies of every ELF object in the package (dpkg-shlibdeps)."""
    elves = [p for p in sorted(stage.rglob("*")) if p.is_file() and is_elf(p)]
    shim = work / "shlibdeps"
    (shim / "debian").mkdir(parents=True)
    (shim / "debian" / "control").write_text("Source: opsbackup\n\nPackage: opsbackup\nArchitecture: any\n")
    libdirs = sorted({f"-l{p.parent}" for p in elves if p.parent.name.endswith(".libs")})
    out = run(
        ["dpkg-shlibdeps", "-O", "--ignore-missing-info", *libdirs, *(f"-e{p}" for p in elves)], cwd=shim
    )
    match = re.search(r"^shlibs:Depends=(.*)$", out, re.MULTILINE)
    return match.group(1).strip() if match else ""


def build_deb(work: Path, stage: Path, versions: Versions, out: Path) -> Path:
    """Write DEBIAN/control and md5sums, then build the .deb with dpkg-deb (files owned by root)."""
    arch = run(["dpkg", "--print-architecture"]).strip()
    minor = sys.version_info.minor
    depends = [f"python3 (>= 3.{minor})", f"python3 (<< 3.{minor + 1})", "adduser"]
    depends += [d for d in shlib_depends(work, stage).split(", ") if d]
    files = [p for p in sorted(stage.rglob("*")) if "DEBIAN" not in p.relative_to(stage).parts]
    size = sum(-(-p.stat().st_size // 1024) if p.is_file() else 1 for p in files)
    control = Template((DEBIAN / "control").read_text()).substitute(
        version=versions.debian,
        architecture=arch,
        maintainer=versions.maintainer,
        installed_size=size,
        depends=", ".join(depends),
    )
    (stage / "DEBIAN" / "control").write_text(control)
    md5 = "".join(
        f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(stage).as_posix()}\n"  # noqa: S324 - dpkg's format
        for p in files
        if p.is_file() and not p.relative_to(stage).as_posix().startswith("etc/")
    )
    (stage / "DEBIAN" / "md5sums").write_text(md5)
    (stage / "DEBIAN" / "md5sums").chmod(0o644)
    (stage / "DEBIAN" / "control").chmod(0o644)
    deb = out / f"opsbackup_{versions.debian}_{arch}.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", stage, deb])
    return deb


def write_sums(out: Path) -> Path:
    """SHA256SUMS of every artifact in ``out``, in sha256sum's format."""
    sums = out / "SHA256SUMS"
    files = sorted(p for p in out.iterdir() if p.is_file())
    sums.write_text("".join(f"{sha256(p)}  {p.name}\n" for p in files))
    return sums


def sign(sums: Path, fingerprint: str, gnupghome: Path | None) -> Path:
    """Detached ASCII-armoured signature of SHA256SUMS, checked at once against the key asked for."""
    asc = sums.with_name(sums.name + ".asc")
    how = ["--yes", "--local-user", fingerprint, "--armor", "--detach-sign", "--output", str(asc), str(sums)]
    run(gpg(gnupghome, *how))
    status = run(gpg(gnupghome, "--status-fd", "1", "--verify", str(asc), str(sums)))
    valid = [line.split() for line in status.splitlines() if line.startswith("[GNUPG:] VALIDSIG ")]
    if not valid or fingerprint not in (valid[0][2], valid[0][-1]):
        raise ReleaseError(f"the signature of {sums} does not verify as made by {fingerprint}")
    return asc


def release(out: Path, fingerprint: str, gnupghome: Path | None) -> list[Path]:
    """Every step; return the artifacts written into ``out``."""
    versions = read_versions()
    if not re.fullmatch(r"[0-9A-F]{40}|[0-9A-F]{64}", fingerprint):
        raise ReleaseError(f"--gpg-key must be a full key fingerprint (40 hex digits), not {fingerprint!r}")
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"{out} is not empty: remove what it holds or pass another --out")
    need_tools(TOOLS)
    check_signing_key(fingerprint, gnupghome)
    epoch = source_date_epoch()
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
    with tempfile.TemporaryDirectory(prefix="opsbackup-release-") as tmp:
        work = Path(tmp)
        ready = work / "out"  # moved into ``out`` only once signed: a failed run leaves nothing there
        ready.mkdir()
        sdist, wheel, python = build_python(work)
        stage = work / "stage"
        wheels = bundle_site(work, python, wheel, stage)
        revision = source_revision()
        if revision.endswith("+dirty"):
            print("tools/release.py: warning: the working tree has uncommitted changes", file=sys.stderr)
        sbom = build_sbom(stage / SITE, wheels, wheel, epoch, revision)
        stage_tree(stage, sbom)
        fix_modes(stage, epoch)
        build_deb(work, stage, versions, ready)
        shutil.copy2(sdist, ready / sdist.name)
        shutil.copy2(wheel, ready / wheel.name)
        (ready / f"opsbackup-{versions.upstream}.cdx.json").write_text(json.dumps(sbom, indent=2) + "\n")
        sign(write_sums(ready), fingerprint, gnupghome)
        out.mkdir(parents=True, exist_ok=True)
        names = sorted(p.name for p in ready.iterdir())
        for name in names:
            shutil.move(ready / name, out / name)
    return [out / n for n in sorted(names, key=lambda n: n.startswith("SHA256SUMS"))]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, build the release, print what was written and how to verify it."""
    parser = argparse.ArgumentParser(prog="tools/release.py", description=__doc__.splitlines()[0])
    parser.add_argument("--gpg-key", required=True, metavar="FINGERPRINT", help="the signing key (full)")
    parser.add_argument("--gnupghome", type=Path, default=None, help="GnuPG home holding that key")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where to write (must be empty)")
    args = parser.parse_args(argv)
    fingerprint = args.gpg_key.replace(" ", "").upper()
    started = time.monotonic()
    try:
        home = args.gnupghome.absolute() if args.gnupghome else None
        artifacts = release(args.out.absolute(), fingerprint, home)
    except ReleaseError as exc:
        print(f"tools/release.py: error: {exc}", file=sys.stderr)
        return 1
    print(f"release written to {args.out} in {time.monotonic() - started:.0f} s:")
    for path in artifacts:
        print(f"  {path.name:60} {path.stat().st_size:>12,} bytes")
    print(
        f"\nverify it (docs/release.md), with the public key {fingerprint} from a trusted source:\n"
        f"  cd {args.out} && sha256sum -c SHA256SUMS && gpg --verify SHA256SUMS.asc SHA256SUMS"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
