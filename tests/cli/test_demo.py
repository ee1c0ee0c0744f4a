"""``opsbackup demo`` end to end (the real command, in a subprocess), and its tree comparison."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opsbackup.demo.sample import compare_trees, make_sample_tree

pytestmark = pytest.mark.slow


def test_the_demo_runs_and_passes(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "opsbackup", "demo", "--size", "6", "--dir", str(work)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for step in range(1, 10):
        assert f"[{step}/9]" in out, out
    assert "every byte, mode, mtime, symlink target and hard link is identical" in out
    assert "demo passed" in out
    assert "speed: backup" in out
    assert "restore" in out
    rebackup = out.split("backup again")[1]
    assert " 0 new chunks" in rebackup, out
    assert "the host holds no key that reads backups" in out
    assert not work.exists()  # without --keep, the work directory it made is removed


def test_the_demo_refuses_a_directory_in_use(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep me\n")
    done = subprocess.run(
        [sys.executable, "-m", "opsbackup", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert (tmp_path / "precious").read_text() == "keep me\n"


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    original = make_sample_tree(tmp_path / "a", 1 << 20).root
    copy = tmp_path / "b"
    shutil.copytree(original, copy, symlinks=True, copy_function=shutil.copy2)
    shutil.copystat(original, copy)
    for sub in ("etc", "etc/app", "var", "var/log", "srv", "srv/data", "srv/data/blobs", "home", "empty"):
        shutil.copystat(original / sub, copy / sub)
    os.unlink(copy / "srv/data/table-3.hardlink")  # copytree does not keep hard links: remake it
    os.link(copy / "srv/data/table-3.db", copy / "srv/data/table-3.hardlink")
    for sub in ("srv/data", "srv"):
        shutil.copystat(original / sub, copy / sub)
    return original, copy


def test_compare_trees_accepts_an_exact_copy(pair: tuple[Path, Path]) -> None:
    compared, problems = compare_trees(*pair)
    assert problems == []
    assert compared > 330


@pytest.mark.parametrize("change", ["content", "mode", "mtime", "symlink", "hardlink", "missing", "extra"])
def test_compare_trees_sees_every_kind_of_difference(pair: tuple[Path, Path], change: str) -> None:
    original, copy = pair
    victim = (
        copy / "etc/file-005.txt" if (copy / "etc/file-005.txt").exists() else next(copy.glob("etc/*.txt"))
    )
    st = victim.stat()
    if change == "content":
        flipped = bytearray(victim.read_bytes())
        flipped[0] ^= 1
        victim.write_bytes(bytes(flipped))
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif change == "mode":
        victim.chmod(0o604)
    elif change == "mtime":
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    elif change == "symlink":
        (copy / "etc/current.txt").unlink()
        (copy / "etc/current.txt").symlink_to("app/file-001.txt")
    elif change == "hardlink":
        link = copy / "srv/data/table-3.hardlink"
        data = link.read_bytes()
        link.unlink()
        link.write_bytes(data)
    elif change == "missing":
        victim.unlink()
    else:
        (copy / "empty" / "new").write_text("x")
    _, problems = compare_trees(original, copy)
    assert problems, change
