"""The kill switch is a file: shared by processes, cached by stat, failing safe."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pandas as pd
import pytest

import levibot.online.killswitch as killswitch_module
from levibot.online.killswitch import KillSwitch

NOW = pd.Timestamp("2026-03-01 08:30", tz="UTC")


def _set_on_in_other_process(path: str) -> None:
    KillSwitch(path).set(True, actor="other-process", reason="drill")


def test_missing_file_is_off(tmp_path: Path) -> None:
    switch = KillSwitch(tmp_path / "kill.json")
    assert switch.is_on() is False
    state = switch.state()
    assert (state.enabled, state.actor, state.error) == (False, None, None)


def test_set_persists_for_a_new_instance(tmp_path: Path) -> None:
    path = tmp_path / "state" / "kill.json"
    state = KillSwitch(path, clock=lambda: NOW).set(True, actor="ops", reason="exchange down")
    assert state.enabled and state.actor == "ops" and state.reason == "exchange down"
    assert state.changed_at == NOW and state.error is None
    assert json.loads(path.read_text()) == {
        "enabled": True,
        "changed_at": "2026-03-01T08:30:00+00:00",
        "actor": "ops",
        "reason": "exchange down",
    }
    fresh = KillSwitch(path)
    assert fresh.is_on() is True
    assert fresh.state().reason == "exchange down"
    assert fresh.set(False, actor="ops", reason="resolved").enabled is False
    assert KillSwitch(path).is_on() is False


@pytest.mark.parametrize(
    "content",
    [
        '{"enabled": fal',
        "[]",
        '{"enabled": "no"}',
        '{"enabled": 0}',
        '{"actor": "x"}',
        "\xff\xfe",
    ],
)
def test_corrupt_file_fails_safe(tmp_path: Path, content: str) -> None:
    path = tmp_path / "kill.json"
    path.write_bytes(content.encode("latin-1"))
    switch = KillSwitch(path)
    assert switch.is_on() is True
    assert "kill.json" in (switch.state().error or "")
    switch.set(False, actor="ops", reason="repaired")  # writing repairs it
    assert switch.is_on() is False and switch.state().error is None


@pytest.mark.parametrize("content", ['{"enabled": fal', '{"enabled": "no"}', "\xff\xfe"])
def test_public_state_of_a_corrupt_file_gives_a_reason_without_the_path(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "secret_dir" / "kill.json"
    path.parent.mkdir()
    path.write_bytes(content.encode("latin-1"))
    public = KillSwitch(path).public_state()
    assert public == {
        "enabled": True,
        "reason": killswitch_module.FORCED_ON_REASON,
        "actor": None,
        "changed_at": None,
        "forced": True,
    }
    assert "secret_dir" not in json.dumps(public) and "kill.json" not in json.dumps(public)


def test_public_state_of_a_good_file_is_its_content(tmp_path: Path) -> None:
    switch = KillSwitch(tmp_path / "kill.json", clock=lambda: NOW)
    off = {"enabled": False, "reason": None, "actor": None, "changed_at": None, "forced": False}
    assert switch.public_state() == off  # no file yet
    switch.set(True, actor="ops", reason="exchange down")
    assert switch.public_state() == {
        "enabled": True,
        "reason": "exchange down",
        "actor": "ops",
        "changed_at": "2026-03-01T08:30:00+00:00",
        "forced": False,
    }


def test_unreadable_path_fails_safe(tmp_path: Path) -> None:
    path = tmp_path / "kill.json"
    path.mkdir()
    switch = KillSwitch(path)
    assert switch.is_on() is True
    assert switch.state().error
    assert switch.public_state()["reason"] == killswitch_module.FORCED_ON_REASON


def test_is_on_reads_the_file_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kill.json"
    reads = []
    real_read = killswitch_module.read_json
    monkeypatch.setattr(killswitch_module, "read_json", lambda p: reads.append(p) or real_read(p))
    writer, reader = KillSwitch(path), KillSwitch(path)
    writer.set(True, actor="a", reason="x")
    for _ in range(100):
        assert reader.is_on() is True
        assert reader.public_state()["actor"] == "a"
    assert len(reads) == 2  # writer's own state() after set, then reader once
    writer.set(False, actor="b", reason="y")
    assert reader.is_on() is False
    # same size, maybe the same mtime tick: the atomic replace still changes the inode
    writer.set(True, actor="c", reason="z")
    writer.set(True, actor="d", reason="w")
    assert reader.state().actor == "d"
    path.unlink()
    assert reader.is_on() is False


def test_another_process_turning_it_on_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "kill.json"
    switch = KillSwitch(path)
    switch.set(False, actor="ops", reason="start")
    assert switch.is_on() is False  # cached off
    proc = multiprocessing.get_context("spawn").Process(
        target=_set_on_in_other_process, args=(str(path),)
    )
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert switch.is_on() is True
    assert switch.state().actor == "other-process"


def test_set_requires_a_bool(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        KillSwitch(tmp_path / "kill.json").set(1, actor="a", reason="b")  # type: ignore[arg-type]
