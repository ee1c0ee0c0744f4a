"""Log lines on stderr that journald and syslog take: sd-daemon ``<N>`` prefixes under journald, else
``opsbackup[PID]: LEVEL: message``.

Under systemd (``JOURNAL_STREAM`` names our stderr) each line starts with its syslog priority,
``<3>`` error, ``<4>`` warning, ``<5>`` notice, ``<6>`` info, which journald strips and records as
the priority; the unit's ``SyslogIdentifier`` and the PID are added by journald. Anywhere else
(cron mail, a terminal, ``logger``) a line is ``opsbackup[PID]: warning: message``, the form a
syslog daemon writes. Messages are one line each: newlines and control characters are escaped.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

__all__ = ["PRIORITIES", "Log", "under_journald"]

#: level -> syslog priority
PRIORITIES = {"error": 3, "warning": 4, "notice": 5, "info": 6}


def under_journald(stream: TextIO) -> bool:
    """True when ``stream`` is the journal stream systemd connected (``JOURNAL_STREAM=dev:ino``)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class Log:
    """Writes log lines to ``stream`` (stderr by default) in the journald or the syslog form."""

    def __init__(self, stream: TextIO | None = None, *, journald: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.journald = under_journald(self.stream) if journald is None else journald
        self.counts: dict[str, int] = {}

    def line(self, level: str, message: str) -> str:
        """The text of one log line (without the newline)."""
        if self.journald:
            return f"<{PRIORITIES[level]}>{_one_line(message)}"
        return f"opsbackup[{os.getpid()}]: {level}: {_one_line(message)}"

    def __call__(self, level: str, message: str) -> None:
        self.counts[level] = self.counts.get(level, 0) + 1
        self.stream.write(self.line(level, message) + "\n")
        self.stream.flush()
