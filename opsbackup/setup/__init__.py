"""Setting up an account and its hosts: pure functions that the setup commands and the demo call.

:mod:`.admin` makes the administrator's key files (``opsbackup keys init``); :mod:`.publish`
builds, signs and uploads keyring versions (``keys publish``, ``keys add-host``); :mod:`.host`
enrolls a host (``opsbackup host init``). docs/setup.md walks through the whole procedure.
"""

from __future__ import annotations

__all__: list[str] = []
