"""formats.paper_key: golden pages, round trips, tolerant retyping, and each named failure."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats import keyfile
from formats import paper_key as pk
from formats.errors import FormatError
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("paper_key")


def two_files() -> pk.PaperPage:
    data = hashlib.shake_256(b"data").digest(200)
    browse = hashlib.shake_256(b"browse").digest(75)
    return pk.PaperPage(
        (pk.PaperFile("data.key", data), pk.PaperFile("browse.key", browse)), bytes(range(16))
    )


def lines_of(page: pk.PaperPage) -> list[str]:
    return pk.encode(page).splitlines()


def numbered(lines: list[str], n: int) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(f"{n:04d}:"))


def join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def refused(text: str, *words: str) -> str:
    with pytest.raises(FormatError) as info:
        pk.decode(text)
    for word in words:
        assert word in str(info.value), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("vec", VECTORS["valid"], ids=lambda v: v["name"])
def test_golden_pages_encode_and_decode(vec: dict[str, Any]) -> None:
    page = pk.PaperPage(
        tuple(pk.PaperFile(f["name"], bytes.fromhex(f["hex"])) for f in vec["files"]),
        None if vec["account"] is None else bytes.fromhex(vec["account"]),
        None if vec["root"] is None else bytes.fromhex(vec["root"]),
    )
    assert pk.encode(page) == vec["page"]
    assert pk.decode(vec["page"]) == page


def test_the_real_key_file_vector_survives_the_page() -> None:
    vec = next(v for v in VECTORS["valid"] if "real key file" in v["name"])
    (f,) = pk.decode(vec["page"]).files
    assert keyfile.decode(f.data).role.label == "dedup"


@pytest.mark.parametrize("vec", VECTORS["invalid"], ids=lambda v: v["name"])
def test_golden_invalid_pages_are_refused(vec: dict[str, str]) -> None:
    refused(vec["page"], vec["error"])


names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
files = st.lists(
    st.tuples(names, st.binary(min_size=1, max_size=400)), min_size=1, max_size=4, unique_by=lambda t: t[0]
)


@settings(max_examples=60, deadline=None)
@given(
    files=files,
    account=st.none() | st.binary(min_size=16, max_size=16),
    root=st.none() | st.binary(min_size=32, max_size=32),
)
def test_round_trip(files: list[tuple[str, bytes]], account: bytes | None, root: bytes | None) -> None:
    page = pk.PaperPage(tuple(pk.PaperFile(n, d) for n, d in files), account, root)
    text = pk.encode(page, ["a comment"])
    assert all(len(line) <= 72 for line in text.splitlines())
    assert pk.decode(text) == page


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=1, max_size=300), spaces=st.sampled_from(["", " ", "   ", "\t"]))
def test_retyped_with_other_spacing_case_and_blank_lines_still_decodes(data: bytes, spaces: str) -> None:
    page = pk.PaperPage((pk.PaperFile("data.key", data),))
    retyped = []
    for line in pk.encode(page).splitlines():
        if line[:1].isdigit():
            line = spaces.join(line.replace(" ", "")).lower()  # every character apart, or none
        else:
            line = "  " + line.upper().replace(" ", "   ") + "  "
        retyped += [line, ""]
    text = "\r\n".join(retyped).replace("DATA.KEY", "data.key")
    assert pk.decode(text) == page


def test_one_wrong_character_names_its_line() -> None:
    lines = lines_of(two_files())
    for n in (1, 5, 8):
        i = numbered(lines, n)
        bad = list(lines)
        pos = 12
        bad[i] = bad[i][:pos] + ("Q" if bad[i][pos] != "Q" else "R") + bad[i][pos + 1 :]
        refused(join(bad), f"line {n} does not match its check")


def test_a_mistyped_check_names_its_line() -> None:
    lines = lines_of(two_files())
    i = numbered(lines, 3)
    lines[i] = lines[i][:-4] + ("0000" if not lines[i].endswith("0000") else "1111")
    refused(join(lines), "line 3 does not match")


def test_a_lookalike_digit_gets_a_hint() -> None:
    lines = lines_of(two_files())
    i = numbered(lines, 2)
    lines[i] = lines[i][:6] + "0" + lines[i][7:]
    refused(join(lines), "line 2", "'0' is not a base32 character", "did you mean O")


def test_a_dropped_character_is_named() -> None:
    lines = lines_of(two_files())
    i = numbered(lines, 4)
    lines[i] = lines[i][:6] + lines[i][7:]
    refused(join(lines), "line 4 has 47 base32 characters, not 48")


def test_swapped_lines_are_refused() -> None:
    lines = lines_of(two_files())
    i, j = numbered(lines, 3), numbered(lines, 4)
    lines[i], lines[j] = lines[j], lines[i]
    refused(join(lines), "line 3 is missing")


def test_a_missing_line_is_named() -> None:
    lines = lines_of(two_files())
    del lines[numbered(lines, 2)]
    refused(join(lines), "line 2 is missing")


def test_a_missing_last_line_of_a_file_is_named() -> None:
    lines = lines_of(two_files())
    del lines[numbered(lines, 7)]  # data.key: 200 bytes = lines 1..7
    refused(join(lines), "file 1 (data.key) has 6 of its 7 lines", "line 7 is missing")


def test_a_duplicated_line_is_refused() -> None:
    lines = lines_of(two_files())
    i = numbered(lines, 5)
    lines.insert(i, lines[i])
    refused(join(lines), "line 5 is out of order or repeated")


def test_a_truncated_page_is_refused() -> None:
    lines = lines_of(two_files())
    refused(join(lines[: numbered(lines, 9)]), "truncated")
    refused(join(lines[:-1]), "truncated")
    refused("", "truncated")


def test_an_unknown_version_is_refused() -> None:
    text = pk.encode(two_files()).replace("v1", "v7", 1)
    refused(text, "version v7 is not supported")


def test_a_wrong_length_is_refused() -> None:
    lines = lines_of(two_files())
    i = lines.index("file 2 browse.key 75 bytes")
    lines[i] = "file 2 browse.key 76 bytes"  # same line count (3), other last line
    refused(join(lines), "line 10 has 24 base32 characters, not 26", "size")
    lines[i] = "file 2 browse.key 140 bytes"  # needs 5 lines: line 10 would be full
    refused(join(lines), "line 10 has 24 base32 characters, not 48", "size")
    lines[i] = "file 2 browse.key 30 bytes"  # needs 1 line, has 3
    refused(join(lines), "more than the 1 lines")


def test_a_whole_file_sha256_mismatch_is_refused() -> None:
    lines = lines_of(two_files())
    i = next(k for k, line in enumerate(lines) if line.startswith("sha256"))
    lines[i] = "sha256 " + "0" * 64
    refused(join(lines), "header lines", "do not match the end line")


def test_a_renamed_file_fails_the_end_check() -> None:
    text = pk.encode(two_files()).replace("file 2 browse.key", "file 2 browse.kez")
    refused(text, "end line")


def test_a_missing_file_and_an_extra_file_are_refused() -> None:
    text = pk.encode(two_files())
    refused(text.replace("files 2", "files 3"), "fewer files")
    refused(text.replace("files 2", "files 1"), "more files")


def test_hostile_names_are_refused() -> None:
    text = pk.encode(two_files())
    refused(text.replace("data.key", "../x"), "not allowed")
    with pytest.raises(ValueError, match="is not"):
        pk.encode(pk.PaperPage((pk.PaperFile("../x", b"1"),)))
    with pytest.raises(ValueError, match="appears twice"):
        pk.encode(pk.PaperPage((pk.PaperFile("a", b"1"), pk.PaperFile("a", b"2"))))


def test_an_oversized_page_is_refused_before_parsing() -> None:
    refused("x" * (pk.MAX_PAGE_CHARS + 1), "too large")


def test_the_line_check_is_as_specified() -> None:
    assert pk.line_check(1, b"\x00") == hashlib.sha256(b"\x00\x00\x00\x01\x00").hexdigest()[:4]
