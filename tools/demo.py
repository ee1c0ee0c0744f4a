#!/usr/bin/env python3
"""Install opsbackup into ./.venv and run ``opsbackup demo``: the README's quick start.

Needs only Python 3.11+ (and network access for pip, the first time). Extra arguments go to
``opsbackup demo`` (``python3 tools/demo.py --keep --size 16``). The exit code is the demo's:
0 only when the restored tree is identical to the original.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"


def main() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before anything is installed
        sys.exit("tools/demo.py: opsbackup needs Python 3.11 or newer")
    if not (BIN / "python").exists():
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    install = [str(BIN / "python"), "-m", "pip", "install", "-q", "-e", "."]
    print("+", " ".join(install), flush=True)
    if subprocess.run(install, cwd=ROOT, check=False).returncode != 0:
        sys.exit("tools/demo.py: installing opsbackup failed (see above)")
    demo = [str(BIN / "opsbackup"), "demo", *sys.argv[1:]]
    print("+", " ".join(demo), flush=True)
    sys.exit(subprocess.run(demo, cwd=ROOT, check=False).returncode)


if __name__ == "__main__":
    main()
