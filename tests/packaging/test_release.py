"""The release: SHA256SUMS and its detached signature verify as docs/release.md says; the SBOM is right."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.conftest import ROOT, Release, gpg, kill_agent, require_tool, run

__all__: list[str] = []

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
RELEASE: list[str | Path] = [sys.executable, ROOT / "tools/release.py"]


@pytest.fixture
def verifier(release: Release, tmp_path: Path) -> Iterator[Path]:
    """A GnuPG home that holds only the release's public key, as a user's would."""
    home = tmp_path / "verifier"
    home.mkdir(mode=0o700)
    run(gpg(home, "--import", release.public_key))
    yield home
    kill_agent(home)


def verify(home: Path, signature: Path, signed: Path) -> tuple[int, str]:
    done = run(gpg(home, "--status-fd", "1", "--verify", signature, signed), check=False)
    return done.returncode, done.stdout


def test_sha256sums_list_every_artifact_and_check(release: Release) -> None:
    sums = (release.dist / "SHA256SUMS").read_text()
    names = sorted(line.split("  ", 1)[1] for line in sums.splitlines())
    assert names == sorted(p.name for p in release.dist.iterdir() if not p.name.startswith("SHA256SUMS"))
    assert {Path(n).suffix for n in names} == {".whl", ".gz", ".deb", ".json"}
    assert f"opsbackup-{VERSION}.tar.gz" in names
    done = run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=release.dist)
    assert done.stdout.count(": OK\n") == len(names)


def test_a_changed_artifact_fails_the_check(release: Release, tmp_path: Path) -> None:
    copy = tmp_path / "dist"
    shutil.copytree(release.dist, copy)
    with release.deb.open("rb") as f, (copy / release.deb.name).open("r+b") as g:
        g.seek(1000)
        g.write(bytes([f.read()[1000] ^ 1]))
    done = run(["sha256sum", "-c", "SHA256SUMS"], cwd=copy, check=False)
    assert done.returncode != 0
    assert f"{release.deb.name}: FAILED" in done.stdout


def test_the_detached_signature_verifies_with_the_release_key(release: Release, verifier: Path) -> None:
    signature = release.dist / "SHA256SUMS.asc"
    assert signature.read_text().startswith("-----BEGIN PGP SIGNATURE-----\n")
    code, status = verify(verifier, signature, release.dist / "SHA256SUMS")
    assert code == 0, status
    valid = [line.split() for line in status.splitlines() if line.startswith("[GNUPG:] VALIDSIG ")]
    assert len(valid) == 1
    assert valid[0][-1] == release.fingerprint  # the primary key's fingerprint


def test_the_signature_refuses_changed_sums(release: Release, verifier: Path, tmp_path: Path) -> None:
    sums = tmp_path / "SHA256SUMS"
    text = (release.dist / "SHA256SUMS").read_text()
    sums.write_text(("1" if text[0] != "1" else "2") + text[1:])
    code, status = verify(verifier, release.dist / "SHA256SUMS.asc", sums)
    assert code != 0
    assert "[GNUPG:] BADSIG " in status


def test_the_signature_needs_the_release_key(release: Release, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    try:
        code, status = verify(empty, release.dist / "SHA256SUMS.asc", release.dist / "SHA256SUMS")
    finally:
        kill_agent(empty)
    assert code != 0
    assert "[GNUPG:] NO_PUBKEY " in status


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_sbom_is_cyclonedx_naming_every_bundled_package(release: Release) -> None:
    bom = json.loads((release.dist / f"opsbackup-{VERSION}.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["specVersion"] == "1.5"
    assert re.fullmatch(r"urn:uuid:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", bom["serialNumber"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", bom["metadata"]["timestamp"])
    main = bom["metadata"]["component"]
    assert (main["name"], main["version"], main["purl"]) == (
        "opsbackup",
        VERSION,
        f"pkg:pypi/opsbackup@{VERSION}",
    )
    wheel = next(release.dist.glob("*.whl"))
    assert main["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(wheel.read_bytes()).hexdigest()}]
    if run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=False).returncode == 0:
        properties = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
        built = re.fullmatch(r"([0-9a-f]{40})(\+dirty)?", properties["opsbackup:git-revision"])
        assert built  # the commit the release was built from: HEAD then, so HEAD or an ancestor now
        run(["git", "merge-base", "--is-ancestor", built.group(1), "HEAD"], cwd=ROOT)
    components = {c["name"]: c for c in bom["components"]}
    for name in (
        "cryptography",
        "zstandard",
        "requests",
        "click",
        "python-gnupg",
        "tqdm",
        "starlette",
        "uvicorn",
    ):
        assert name in components, f"{name} is not in the SBOM"
    for c in components.values():
        assert c["purl"] == f"pkg:pypi/{_normalize(c['name'])}@{c['version']}"
        assert c["bom-ref"] == c["purl"]
        assert c["type"] == "library"
        assert re.fullmatch(r"[0-9a-f]{64}", c["hashes"][0]["content"])
        assert c["hashes"][0]["alg"] == "SHA-256"
        assert c["properties"][0]["value"].endswith(".whl")
    assert components["cryptography"]["licenses"]  # read from the package's metadata
    refs = {main["bom-ref"]} | {c["bom-ref"] for c in components.values()}
    graph = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    assert set(graph) == refs
    assert all(set(targets) <= refs for targets in graph.values())
    wanted = {f"pkg:pypi/{n}@{components[n]['version']}" for n in ("cryptography", "zstandard", "click")}
    assert wanted <= set(graph[main["bom-ref"]])


def test_sbom_matches_what_the_package_installs(release: Release, tmp_path: Path) -> None:
    bom_text = (release.dist / f"opsbackup-{VERSION}.cdx.json").read_text()
    listing = run(["dpkg-deb", "--contents", release.deb]).stdout
    shipped = set(re.findall(r"\./usr/lib/opsbackup/site/([^/]+)-([^-/]+)\.dist-info/\n", listing))
    bom = json.loads(bom_text)
    described = {
        (_normalize(c["name"]), c["version"]) for c in [*bom["components"], bom["metadata"]["component"]]
    }
    assert {(_normalize(n), v) for n, v in shipped} == described
    run(["dpkg-deb", "-x", release.deb, tmp_path])
    assert (tmp_path / "usr/share/doc/opsbackup/sbom.cdx.json").read_text() == bom_text


def test_release_refuses_a_short_key_id_before_building(tmp_path: Path) -> None:
    done = run([*RELEASE, "--gpg-key", "8CFBAF960302B7FC", "--out", tmp_path / "dist"], check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "tools/release.py: error: --gpg-key must be a full key fingerprint (40 hex digits), "
        "not '8CFBAF960302B7FC'"
    ]
    assert not (tmp_path / "dist").exists()


def test_release_refuses_an_output_directory_that_holds_files(tmp_path: Path) -> None:
    (tmp_path / "old.deb").write_bytes(b"x")
    done = run([*RELEASE, "--gpg-key", "A" * 40, "--out", tmp_path], check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"tools/release.py: error: {tmp_path} is not empty: remove what it holds or pass another --out"
    )


def test_release_refuses_a_key_that_is_not_in_the_keyring(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_tool(tmp_path_factory, "gpg", "gnupg")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    try:
        done = run(
            [*RELEASE, "--gpg-key", "A" * 40, "--gnupghome", home, "--out", tmp_path / "d"], check=False
        )
    finally:
        kill_agent(home)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"tools/release.py: error: no secret key {'A' * 40} in {home}: pass --gnupghome or import the key"
    )
