"""Paper key: key files as a printable, retypable text page (docs/spec/paper-key.md).

The page carries the exact bytes of one or more key files (still sealed under their passphrase:
the page is not a plaintext key) as numbered lines of base32, each with a short check, so that a
person can print it, store it, and type it back in on a fresh machine::

    opsbackup paper key v1
    # comment lines are ignored
    account 00112233445566778899aabbccddeeff          (optional: 16-byte account id)
    root 4f1c...                                       (optional: SHA-256 of the root public DER)
    files 2
    file 1 data.key 3583 bytes
    sha256 <64 hex>
    0001: ABCD EFGH ... (12 groups of 4 base32 characters)  1f2e
    ...
    end 1a2b3c4d

Decoding tolerates blank lines, comment lines, whitespace and case (people retype it) and is
otherwise strict: every problem is a :class:`FormatError`, and one that is in a data line names
that line's number. Pure: no I/O, no policy (which files, where they go: the commands decide).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from formats.errors import FormatError

__all__ = [
    "ACCOUNT_ID_SIZE",
    "BYTES_PER_LINE",
    "GROUP",
    "HEADER",
    "MAX_FILES",
    "MAX_FILE_SIZE",
    "MAX_LINES",
    "MAX_PAGE_CHARS",
    "PaperFile",
    "PaperPage",
    "decode",
    "encode",
    "line_check",
]

HEADER = "opsbackup paper key v1"
VERSION = 1
BYTES_PER_LINE = 30  # 48 base32 characters
GROUP = 4  # characters per group
MAX_FILES = 16
MAX_FILE_SIZE = 64 * 1024
MAX_LINES = 9999  # line numbers are four digits
MAX_PAGE_CHARS = 1024 * 1024
MAX_COMMENT = 70
ACCOUNT_ID_SIZE = 16
ROOT_SIZE = 32
CHECK_CHARS = 4
END_CHECK_CHARS = 8

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_HEX = re.compile(r"[0-9a-f]+")
_VERSION_LINE = re.compile(r"opsbackup paper key v(\d+)")
_DATA_LINE = re.compile(r"(\d{4}):?(.*)")
_B32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_LOOKALIKE = {"0": "O", "1": "I or L", "8": "B", "9": "g?"}
_VALID_TAIL = {0, 2, 4, 5, 7}  # base32 characters mod 8 of an unpadded encoding


@dataclass(frozen=True, repr=False)
class PaperFile:
    """One file on the page: a safe name (``[a-z0-9][a-z0-9._-]{0,63}``) and its exact bytes."""

    name: str
    data: bytes

    def __repr__(self) -> str:  # never print key material, even sealed
        return f"PaperFile({self.name!r}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class PaperPage:
    """A decoded page: its files in order, and the optional account id and root fingerprint."""

    files: tuple[PaperFile, ...]
    account_id: bytes | None = None
    root_fingerprint: bytes | None = None


def line_check(number: int, data: bytes) -> str:
    """The check of data line ``number``: 4 hex digits of SHA-256(u32 number || data)."""
    return hashlib.sha256(number.to_bytes(4, "big") + data).hexdigest()[:CHECK_CHARS]


def _problem(page: PaperPage) -> str | None:
    if not 1 <= len(page.files) <= MAX_FILES:
        return f"a page holds 1..{MAX_FILES} files, not {len(page.files)}"
    if page.account_id is not None and len(page.account_id) != ACCOUNT_ID_SIZE:
        return f"an account id is {ACCOUNT_ID_SIZE} bytes"
    if page.root_fingerprint is not None and len(page.root_fingerprint) != ROOT_SIZE:
        return f"a root fingerprint is {ROOT_SIZE} bytes"
    names = [f.name for f in page.files]
    for f in page.files:
        if not _NAME.fullmatch(f.name):
            return f"file name {f.name!r} is not [a-z0-9][a-z0-9._-]{{0,63}}"
        if not 1 <= len(f.data) <= MAX_FILE_SIZE:
            return f"file {f.name} has {len(f.data)} bytes (1..{MAX_FILE_SIZE})"
    if len(set(names)) != len(names):
        return "a file name appears twice"
    if sum(_line_count(len(f.data)) for f in page.files) > MAX_LINES:
        return f"the files need more than {MAX_LINES} lines"
    return None


def _line_count(size: int) -> int:
    return -(-size // BYTES_PER_LINE)


def _header_lines(page: PaperPage, digests: Sequence[bytes] | None = None) -> list[str]:
    """The header lines (the end line's check covers exactly these); ``digests`` as typed."""
    if digests is None:
        digests = [hashlib.sha256(f.data).digest() for f in page.files]
    lines = [HEADER]
    if page.account_id is not None:
        lines.append(f"account {page.account_id.hex()}")
    if page.root_fingerprint is not None:
        lines.append(f"root {page.root_fingerprint.hex()}")
    lines.append(f"files {len(page.files)}")
    for i, (f, digest) in enumerate(zip(page.files, digests, strict=True), 1):
        lines += [f"file {i} {f.name} {len(f.data)} bytes", f"sha256 {digest.hex()}"]
    return lines


def _end_check(header_lines: Sequence[str]) -> str:
    text = "".join(line + "\n" for line in header_lines)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:END_CHECK_CHARS]


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def encode(page: PaperPage, comments: Sequence[str] = ()) -> str:
    """The page as text (lines of at most 72 characters, each ending in ``\\n``).

    ``comments`` (printable ASCII, at most 70 characters each) go after the first line, as
    ``# `` lines that a decoder ignores.
    """
    problem = _problem(page)
    if problem is not None:
        raise ValueError(problem)
    for c in comments:
        if len(c) > MAX_COMMENT or not all(" " <= ch <= "~" for ch in c):
            raise ValueError(f"a comment is at most {MAX_COMMENT} printable ASCII characters")
    header = _header_lines(page)
    out = [header[0]] + [f"# {c}".rstrip() for c in comments]
    number = 0
    body = iter(header[1:])
    for line in body:
        out.append(line)
        if not line.startswith("file "):
            continue
        out.append(next(body))  # the file's sha256 line
        f = page.files[int(line.split()[1]) - 1]
        for start in range(0, len(f.data), BYTES_PER_LINE):
            number += 1
            chunk = f.data[start : start + BYTES_PER_LINE]
            text = _b32(chunk)
            groups = " ".join(text[i : i + GROUP] for i in range(0, len(text), GROUP))
            out.append(f"{number:04d}: {groups}  {line_check(number, chunk)}")
    out.append(f"end {_end_check(header)}")
    return "".join(line + "\n" for line in out)


# ----------------------------------------------------------------------------------------------
# decoding


def _lines(text: str) -> Iterator[str]:
    """The meaningful lines: stripped, whitespace collapsed, no blank or ``#`` comment lines."""
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if line and not line.startswith("#"):
            yield line


class _Cursor:
    def __init__(self, text: str) -> None:
        self._lines = list(_lines(text))
        self._pos = 0

    def peek(self) -> str | None:
        return self._lines[self._pos] if self._pos < len(self._lines) else None

    def take(self, what: str) -> str:
        line = self.peek()
        if line is None:
            raise FormatError(f"paper key is truncated: it ends where {what} should be")
        self._pos += 1
        return line

    def rest(self) -> list[str]:
        return self._lines[self._pos :]


def _hex_field(line: str, keyword: str, size: int) -> bytes:
    words = line.lower().split()
    value = "".join(words[1:])
    if words[0] != keyword or len(value) != 2 * size or not _HEX.fullmatch(value):
        raise FormatError(f"paper key: {line!r} is not a '{keyword}' line of {2 * size} hex digits")
    return bytes.fromhex(value)


def _check_version(line: str) -> None:
    low = line.lower()
    if low == HEADER:
        return
    m = _VERSION_LINE.fullmatch(low)
    if m is not None:
        raise FormatError(
            f"paper key version v{m.group(1)} is not supported (this opsbackup reads v{VERSION})"
        )
    raise FormatError(f"not an opsbackup paper key: the first line must be {HEADER!r}")


def _int_field(word: str, what: str, low: int, high: int) -> int:
    if not word.isdigit() or not low <= int(word) <= high:
        raise FormatError(f"paper key: {what} {word!r} is not a number in {low}..{high}")
    return int(word)


def _bad_char(number: int, data: str) -> FormatError | None:
    for ch in data:
        if ch not in _B32:
            hint = f" (did you mean {_LOOKALIKE[ch]}?)" if ch in _LOOKALIKE else ""
            return FormatError(f"paper key line {number}: {ch!r} is not a base32 character{hint}")
    return None


def _data_line(line: str, expected: int, full: bool, last_chars: int) -> bytes:
    """Decode data line ``expected``; ``full`` is whether it must hold a whole line's bytes."""
    m = _DATA_LINE.fullmatch(line.replace(" ", ""))
    if m is None:
        raise FormatError(f"paper key: line {expected} is missing (found {line[:24]!r} instead)")
    number = int(m.group(1))
    if number != expected:
        if number > expected:
            raise FormatError(
                f"paper key: line {expected} is missing (line {number} follows line {expected - 1})"
            )
        raise FormatError(
            f"paper key: line {number} is out of order or repeated (line {expected} should be here)"
        )
    body = m.group(2)
    if len(body) < CHECK_CHARS + 1:
        raise FormatError(f"paper key line {number} is cut short")
    data, check = body[:-CHECK_CHARS].upper(), body[-CHECK_CHARS:].lower()
    bad = _bad_char(number, data)
    if bad is not None:
        raise bad
    want = 8 * BYTES_PER_LINE // 5 if full else last_chars
    if len(data) != want:
        raise FormatError(
            f"paper key line {number} has {len(data)} base32 characters, not {want}: one is missing or "
            "extra (or the size on the file's 'file' line is mistyped); compare it with the printout"
        )
    try:
        raw = base64.b32decode(data + "=" * (-len(data) % 8))
    except binascii.Error:
        raise FormatError(f"paper key line {number} is not valid base32") from None
    if line_check(number, raw) != check:
        raise FormatError(
            f"paper key line {number} does not match its check {check!r}: "
            "a character in it (or in the check) is mistyped"
        )
    if _b32(raw) != data:
        raise FormatError(f"paper key line {number} is not canonical base32")
    return raw


def _file(cur: _Cursor, index: int, first_line: int, names: set[str]) -> tuple[PaperFile, bytes]:
    line = cur.take(f"'file {index} ...'")
    words = line.lower().split()
    if words[0] == "end":
        raise FormatError(f"paper key has fewer files than its 'files' line says: file {index} is missing")
    if words[0] != "file":
        raise FormatError(f"paper key: expected 'file {index} NAME SIZE bytes', found {line[:40]!r}")
    if len(words) != 5 or words[4] != "bytes":
        raise FormatError(f"paper key: {line!r} is not a 'file N NAME SIZE bytes' line")
    if _int_field(words[1], "file number", 1, MAX_FILES) != index:
        raise FormatError(f"paper key: file {words[1]} is out of order (file {index} should be here)")
    name = words[2]
    if not _NAME.fullmatch(name):
        raise FormatError(f"paper key: file name {name!r} is not allowed ([a-z0-9][a-z0-9._-]{{0,63}})")
    if name in names:
        raise FormatError(f"paper key: file {name} appears twice")
    names.add(name)
    size = _int_field(words[3], f"size of {name}", 1, MAX_FILE_SIZE)
    digest = _hex_field(cur.take(f"the sha256 line of {name}"), "sha256", 32)
    count = _line_count(size)
    if first_line + count - 1 > MAX_LINES:
        raise FormatError(f"paper key: more than {MAX_LINES} lines")
    tail = size - (count - 1) * BYTES_PER_LINE
    last_chars = len(_b32(bytes(tail)))
    chunks = []
    for k in range(count):
        number = first_line + k
        nxt = cur.peek()
        if nxt is None:
            raise FormatError(f"paper key is truncated: it ends where line {number} should be")
        if not nxt[0].isdigit():
            raise FormatError(
                f"paper key: file {index} ({name}) has {k} of its {count} lines "
                f"({size} bytes): line {number} is missing, or its size {size} is mistyped"
            )
        chunks.append(_data_line(cur.take(f"line {number}"), number, k < count - 1, last_chars))
    nxt = cur.peek()
    if nxt is not None and nxt[0].isdigit():
        raise FormatError(
            f"paper key: file {index} ({name}) has more than the {count} lines its size "
            f"{size} needs: line {first_line + count} is extra, or the size is mistyped"
        )
    return PaperFile(name, b"".join(chunks)), digest


def decode(text: str) -> PaperPage:
    """Decode a page strictly (whitespace, case, blank and ``#`` lines aside); ``FormatError``."""
    if len(text) > MAX_PAGE_CHARS:
        raise FormatError(f"paper key is too large (more than {MAX_PAGE_CHARS} characters)")
    cur = _Cursor(text)
    _check_version(cur.take("the first line"))
    account_id = root = None
    line = cur.take("the 'files' line")
    if line.lower().startswith("account"):
        account_id = _hex_field(line, "account", ACCOUNT_ID_SIZE)
        line = cur.take("the 'files' line")
    if line.lower().startswith("root"):
        root = _hex_field(line, "root", ROOT_SIZE)
        line = cur.take("the 'files' line")
    words = line.lower().split()
    if len(words) != 2 or words[0] != "files":
        raise FormatError(f"paper key: expected 'files N', found {line[:40]!r}")
    count = _int_field(words[1], "file count", 1, MAX_FILES)
    files: list[PaperFile] = []
    digests: list[bytes] = []
    names: set[str] = set()
    next_line = 1
    for index in range(1, count + 1):
        f, digest = _file(cur, index, next_line, names)
        files.append(f)
        digests.append(digest)
        next_line += _line_count(len(f.data))
    end = cur.take("the end line").lower().split()
    if end[0] == "file":
        raise FormatError(f"paper key has more files than its 'files {count}' line says")
    if len(end) != 2 or end[0] != "end":
        raise FormatError(f"paper key: expected the end line 'end CHECK', found {' '.join(end)[:40]!r}")
    if cur.rest():
        raise FormatError("paper key has text after its end line")
    page = PaperPage(tuple(files), account_id, root)
    typed = _header_lines(page, digests)
    if _end_check(typed) != end[1]:
        raise FormatError(
            "paper key: the header lines (account, root, files, file, sha256) do not match the end "
            "line's check: one of them, or the end line, is mistyped"
        )
    for f, digest in zip(files, digests, strict=True):
        if hashlib.sha256(f.data).digest() != digest:
            raise FormatError(
                f"paper key: file {f.name} does not match its SHA-256 although every line passed its "
                "check: a line holds an undetected typo; compare each line with the printout"
            )
    return page
