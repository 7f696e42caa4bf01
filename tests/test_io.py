import json
import os
import subprocess
import time

import pytest

from levibot.io import (
    STALE_TEMP_GRACE_SEC,
    STALE_TEMP_MAX_AGE_SEC,
    CorruptFileError,
    atomic_write,
    read_json,
    remove_stale_temp_files,
    write_json_atomic,
)


def test_json_round_trip_and_no_temp_files_left(tmp_path):
    target = tmp_path / "sub" / "x.json"
    write_json_atomic(target, {"b": 1, "a": [1, 2]})
    assert read_json(target) == {"a": [1, 2], "b": 1}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_failed_write_leaves_the_old_file_intact(tmp_path):
    target = tmp_path / "x.json"
    write_json_atomic(target, {"v": 1})

    def explode(tmp):
        tmp.write_text('{"v": 2, "half')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_corrupt_json_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(CorruptFileError, match=r"bad\.json"):
        read_json(path)


# ------------------------------------------------------- temp files of killed writers

OLD, ANCIENT = STALE_TEMP_GRACE_SEC + 60, STALE_TEMP_MAX_AGE_SEC + 60  # seconds untouched


def _dead_pid() -> int:
    """The pid of a process that has exited (as a writer killed by `kill -9` would be)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _left_temp(folder, name: str, age: float):
    """A half-written temp file `name` as a killed writer leaves it, untouched for `age` s."""
    tmp = folder / name
    tmp.write_text('{"half')
    stamp = time.time() - age
    os.utime(tmp, (stamp, stamp))
    return tmp


def test_a_write_removes_the_temp_files_of_dead_writers(tmp_path):
    target = tmp_path / "x.json"
    dead = _left_temp(tmp_path, f".x.json.{_dead_pid()}.0badc0de.tmp", OLD)
    legacy = _left_temp(tmp_path, ".x.json.k2j_9xqa.tmp", ANCIENT)  # older versions' name
    write_json_atomic(target, {"v": 1})
    assert not dead.exists() and not legacy.exists()
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_live_or_recent_writers_and_other_targets_keep_their_temp_files(tmp_path):
    target, dead = tmp_path / "x.json", _dead_pid()
    with subprocess.Popen(["sleep", "30"]) as live:
        try:
            kept = [
                _left_temp(tmp_path, f".x.json.{live.pid}.0badc0de.tmp", OLD),  # live writer
                _left_temp(tmp_path, f".x.json.{dead}.0a.tmp", 1.0),  # maybe another pid ns
                _left_temp(tmp_path, f".x.json.bak.{dead}.0a.tmp", ANCIENT),  # other target
                _left_temp(tmp_path, f".y.json.{dead}.0a.tmp", ANCIENT),  # other target
            ]
            write_json_atomic(target, {"v": 2})
            assert all(tmp.exists() for tmp in kept)
        finally:
            live.kill()
    assert read_json(target) == {"v": 2}


def test_a_very_old_temp_file_goes_even_if_its_pid_is_alive(tmp_path):
    target = tmp_path / "x.json"
    reused = _left_temp(tmp_path, f".x.json.{os.getpid()}.0a.tmp", ANCIENT)  # pid reused
    assert remove_stale_temp_files(target) == [reused]
    assert not reused.exists()
