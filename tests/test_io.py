import json

import pytest

from levibot.io import CorruptFileError, atomic_write, read_json, write_json_atomic


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
