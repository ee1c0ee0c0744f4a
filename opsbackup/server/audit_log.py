"""The hash-chained audit log, stored as one object per entry: ``audit/<chain>/<sequence:020d>``.

``<chain>`` is the account id in hex, or ``server`` for requests that named no known account. Each
entry (:mod:`formats.audit`) holds the SHA-256 of the previous entry's exact bytes. Appending is a
conditional create (``put(overwrite=False)``; ``If-None-Match: *`` on S3) of the next sequence
number: when several writers (threads, processes, or server instances over one bucket) race,
exactly one wins each number and a loser re-reads the head (:meth:`AuditLog._find_head`), chains
onto the newest entry and tries the number after it. So every chain stays one gapless sequence
without any lock shared between instances. The in-memory head is only a hint, and the
per-chain thread lock only saves one instance's threads from racing each other for nothing.

:func:`verify_chain` reads a chain front to back and names the first broken entry: a gap in the
sequence, an entry that does not decode, a sequence number that does not match its key, or a
previous-entry hash that does not match. The last entry has no successor to vouch for it, so an
edit of the head itself is caught only against an anchor (a head hash recorded earlier, outside
the server: ``audit verify`` prints it).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from formats import audit
from formats.errors import FormatError, NotFoundError
from opsbackup.storage.base import ObjectStore

__all__ = [
    "SERVER_CHAIN",
    "AuditLog",
    "ChainReport",
    "chain_for",
    "entry_key",
    "list_chains",
    "verify_chain",
]

SERVER_CHAIN = "server"
_SEQ_DIGITS = 20


def chain_for(account_id: bytes | None) -> str:
    """The chain an account's requests go to; ``server`` when no account is known."""
    return account_id.hex() if account_id else SERVER_CHAIN


def entry_key(chain: str, sequence: int) -> str:
    return f"audit/{chain}/{sequence:0{_SEQ_DIGITS}d}"


def _account_field(chain: str) -> bytes:
    return audit.NO_ACCOUNT if chain == SERVER_CHAIN else bytes.fromhex(chain)


def _clip(text: str, limit: int) -> str:
    """``text`` as valid UTF-8 of at most ``limit`` bytes (lone surrogates replaced)."""
    raw = text.encode("utf-8", errors="replace")[:limit]
    return raw.decode("utf-8", errors="ignore")


class AuditLog:
    """Appends entries to the chains in ``store``. Thread-safe; safe across processes too."""

    def __init__(self, store: ObjectStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._heads: dict[str, tuple[int, bytes]] = {}  # chain -> (next sequence, previous hash)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, chain: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(chain, threading.Lock())

    def _find_head(self, chain: str, start: int) -> tuple[int, bytes]:
        """``(next free sequence number, hash of the entry before it)``, searching from ``start``.

        Entries are created gaplessly, so "entry n exists" is true up to the head and false after:
        a galloping search (``start``, +1, +2, +4, ...) then a binary search finds the head in
        O(log n) existence checks, not a listing of the whole chain (1 request per 1000 entries
        on S3) nor one read per entry another instance appended meanwhile. If someone deleted
        entries (tampering), the search may land in the hole and the next append refill it:
        :func:`verify_chain` still reports the chain broken there, since the entry after the
        refilled one does not link to it.
        """
        exists = self._store.exists
        if not exists(entry_key(chain, start)):
            free = start
        else:
            present, step = start, 1
            while exists(entry_key(chain, present + step)):
                present, step = present + step, step * 2
            free = present + step
            while free - present > 1:
                middle = (present + free) // 2
                if exists(entry_key(chain, middle)):
                    present = middle
                else:
                    free = middle
        if free == 0:
            return 0, audit.ZERO_HASH
        return free, audit.entry_hash(self._store.read(entry_key(chain, free - 1)))

    def append(
        self,
        *,
        account_id: bytes | None,
        credential_id: bytes,
        remote: str,
        method: str,
        path: str,
        status: int,
        reason: str,
    ) -> audit.AuditEntry:
        """Append one entry to the account's chain (or the server chain) and return it."""
        chain = chain_for(account_id)
        outcome = (
            audit.Outcome.ALLOWED
            if status < 400
            else audit.Outcome.REFUSED
            if status < 500
            else audit.Outcome.FAILED
        )
        with self._lock(chain):
            sequence, previous = self._heads.get(chain) or self._find_head(chain, 0)
            while True:
                entry = audit.AuditEntry(
                    sequence=sequence,
                    time_us=int(self._clock() * 1_000_000),
                    previous=previous,
                    account_id=_account_field(chain),
                    credential_id=credential_id[: audit.MAX_CREDENTIAL_ID],
                    remote=_clip(remote, audit.MAX_REMOTE),
                    method=_clip(method, audit.MAX_METHOD),
                    path=_clip(path, audit.MAX_PATH),
                    status=status,
                    outcome=outcome,
                    reason=_clip(reason, audit.MAX_REASON),
                )
                data = audit.encode(entry)
                if self._store.put(entry_key(chain, sequence), io.BytesIO(data), overwrite=False):
                    self._heads[chain] = (sequence + 1, audit.entry_hash(data))
                    return entry
                # Another writer (thread, process or server instance) took this number: re-read
                # the head, chain onto the newest entry and try the number after it.
                sequence, previous = self._find_head(chain, sequence + 1)


@dataclass(frozen=True)
class ChainReport:
    """The result of :func:`verify_chain`. ``broken_at`` is ``None`` when the chain is intact."""

    chain: str
    entries: int
    head_hash: bytes | None
    broken_at: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def list_chains(store: ObjectStore) -> list[str]:
    """The names of every chain in ``store``, sorted."""
    return sorted({k.split("/")[1] for k in store.list("audit/") if k.count("/") == 2})


def verify_chain(store: ObjectStore, chain: str, *, anchor: tuple[int, bytes] | None = None) -> ChainReport:
    """Check one chain front to back; the report names the first broken entry, if any.

    ``anchor`` is ``(sequence, hash)`` of an entry recorded earlier (for example the head hash an
    operator wrote down): the chain must still hold that entry with that hash.
    """
    keys = list(store.list(f"audit/{chain}/"))
    previous = audit.ZERO_HASH
    account = _account_field(chain)
    hashes: dict[int, bytes] = {}

    def broken(seq: int, problem: str) -> ChainReport:
        return ChainReport(chain, len(keys), None, seq, f"entry {seq}: {problem}")

    for index, key in enumerate(keys):
        name = key.rsplit("/", 1)[1]
        if len(name) != _SEQ_DIGITS or not name.isdigit():
            return broken(index, f"unexpected object {key!r} in the chain")
        stored_seq = int(name)
        if stored_seq != index:
            return broken(index, f"missing (gap in the sequence: the next stored entry is {stored_seq})")
        try:
            data = store.read(key)
        except NotFoundError:
            return broken(index, "vanished while being read")
        try:
            entry = audit.decode(data)
        except FormatError as exc:
            return broken(index, f"does not decode: {exc}")
        if entry.sequence != index:
            return broken(index, f"holds sequence number {entry.sequence} (entries were moved or reordered)")
        if entry.previous != previous:
            what = "the first entry" if index == 0 else f"entry {index - 1}"
            return broken(index, f"previous-entry hash does not match {what} (it was altered or replaced)")
        if entry.account_id != account:
            return broken(index, "belongs to another account's chain")
        previous = audit.entry_hash(data)
        hashes[index] = previous
    if anchor is not None:
        seq, expected = anchor
        if seq not in hashes:
            return ChainReport(chain, len(keys), None, seq, f"entry {seq}: the anchored entry is missing")
        if hashes[seq] != expected:
            return ChainReport(
                chain, len(keys), None, seq, f"entry {seq}: does not match the anchored hash (it was altered)"
            )
    return ChainReport(chain, len(keys), previous if keys else None)
