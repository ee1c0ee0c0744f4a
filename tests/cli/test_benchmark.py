"""``opsbackup benchmark``: the shape of its output (never its speed: that is not a test)."""

from __future__ import annotations

import json

from tests.cli._run import run

STAGES = ["chunker", "chunk id", "pack hash", "compress", "seal", "backup chunk", "open", "decompress"]


def test_the_table_names_every_stage_with_two_positive_rates() -> None:
    done = run(["benchmark", "--size", "2", "--threads", "2", "--no-rsa"])
    assert done.code == 0, done.err
    lines = done.text.splitlines()
    assert lines[0].split()[:2] == ["stage", "what"]
    assert "2 threads MB/s" in lines[0]
    rows = lines[1:]
    assert [row[:13].strip() for row in rows] == STAGES
    for row in rows:
        one, many = (float(x) for x in row.split()[-2:])
        assert one > 0, row
        assert many > 0, row
    assert "RSA" not in done.text
    assert "MiB of sample data" in done.err


def test_json_has_every_stage_and_the_rsa_unwrap_time() -> None:
    done = run(["benchmark", "--size", "1", "--threads", "1", "--json"])
    assert done.code == 0, done.err
    out = json.loads(done.out)
    assert out["size_mib"] == 1
    assert out["threads"] == 1
    assert [s["name"] for s in out["stages"]] == STAGES
    assert all(s["mb_s_one_thread"] > 0 and s["mb_s_all_threads"] > 0 for s in out["stages"])
    assert out["rsa_unwrap_ms"] > 0


def test_a_size_out_of_range_is_one_usage_error() -> None:
    done = run(["benchmark", "--size", "0"])
    assert done.code == 2
    assert "Traceback" not in done.err
    assert "--size" in done.err
