"""JSON Lines appends stay whole lines under concurrent threads and processes."""

from __future__ import annotations

import json
import math
import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from levibot.io import CorruptFileError
from levibot.online.jsonl import append_jsonl, count_corrupt_lines, dumps_line, read_jsonl

PAD = "x" * 2000  # ~2 KB lines: larger than PIPE_BUF, so only the lock keeps them whole


def _append_many(path: str, worker: int, n: int) -> None:
    for i in range(n):
        append_jsonl(path, {"worker": worker, "i": i, "pad": PAD})


def test_round_trip_one_sorted_line_per_record(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "log.jsonl"
    append_jsonl(path, {"b": 1, "a": "two\nlines"})
    append_jsonl(path, {"z": [1, 2], "y": {"k": None}})
    lines = path.read_text().splitlines()
    assert lines[0] == '{"a": "two\\nlines", "b": 1}'
    assert read_jsonl(path) == [{"a": "two\nlines", "b": 1}, {"y": {"k": None}, "z": [1, 2]}]


def test_nan_inf_and_odd_types_become_json(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    record = {
        "nan": float("nan"),
        "inf": [float("-inf"), 1.5],
        "np_nan": np.float32("nan"),
        "np_int": np.int64(7),
        "np_bool": np.bool_(True),
        "ts": pd.Timestamp("2026-01-01 12:00", tz="UTC"),
        "nat": pd.NaT,
        "path": Path("a/b"),
    }
    append_jsonl(path, record)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    (row,) = read_jsonl(path, strict=True)
    assert row == {
        "inf": [None, 1.5],
        "nan": None,
        "nat": None,
        "np_bool": True,
        "np_int": 7,
        "np_nan": None,
        "path": "a/b",
        "ts": "2026-01-01T12:00:00+00:00",
    }


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_jsonl(tmp_path / "nope.jsonl", strict=True) == []
    assert count_corrupt_lines(tmp_path / "nope.jsonl") == 0


def test_corrupt_lines_skipped_or_raised(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "tor\n[1, 2]\n\n{"a": 3}\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 3}]
    assert count_corrupt_lines(path) == 2  # the torn line and the non-object; blanks ignored
    with pytest.raises(CorruptFileError, match=r"log\.jsonl: line 2: .*and 1 more"):
        read_jsonl(path, strict=True)


def test_append_after_torn_line_keeps_the_new_record(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    append_jsonl(path, {"a": 1})
    with open(path, "ab") as handle:  # a writer that crashed mid-line
        handle.write(b'{"a": 2, "b"')
    append_jsonl(path, {"a": 3}, fsync=True)
    assert read_jsonl(path) == [{"a": 1}, {"a": 3}]
    assert count_corrupt_lines(path) == 1


def test_processes_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, 200)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.decode().splitlines()
    assert len(lines) == 800
    rows = [json.loads(line) for line in lines]
    assert all(row["pad"] == PAD for row in rows)
    for worker in range(4):  # each writer's lines keep their order
        assert [r["i"] for r in rows if r["worker"] == worker] == list(range(200))
    assert count_corrupt_lines(path) == 0


def test_threads_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    threads = [threading.Thread(target=_append_many, args=(str(path), w, 100)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = read_jsonl(path, strict=True)
    assert len(rows) == 800
    assert sorted((r["worker"], r["i"]) for r in rows) == [
        (w, i) for w in range(8) for i in range(100)
    ]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


def _expected(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _expected(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expected(v) for v in value]
    return value


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(), _json, max_size=4))
def test_any_record_is_one_parseable_line(record: dict) -> None:
    line = dumps_line(record)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == _expected(record)
