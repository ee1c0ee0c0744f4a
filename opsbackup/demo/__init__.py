"""``opsbackup demo``: a server, an account, a host, a backup and a verified restore, in one go."""

from __future__ import annotations

from opsbackup.demo.run import DEFAULT_SIZE_MIB, DemoResult, run_demo

__all__ = ["DEFAULT_SIZE_MIB", "DemoResult", "run_demo"]
