"""The state catalog: every state file is named by `Paths` alone, and read/written by one
module per kind."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from levibot.io import CorruptFileError
from levibot.state.drift_log import drift_history, latest_drift_status, write_drift_report
from levibot.state.paths import Paths
from levibot.state.weights import load_weights

ROOT = Path(__file__).resolve().parents[2]
STATE_FILES = (
    "model_registry.json", "canary_policy.json", "ensemble_weights.json", "kill_switch.json",
    "audit.jsonl", "latest.json", "marathon.json", "serve_env.yaml", "ingest_manifest.json",
    "marathon_evaluation.json", "last_check.json", "replay_clock.json", "replay_summary.json",
    "drift_reference.npz", "server.pid", "server.log", "current.json", "_events.jsonl",
)  # fmt: skip


def _code_files() -> list[Path]:
    return sorted((ROOT / "levibot").rglob("*.py")) + sorted((ROOT / "serving").rglob("*.py"))


@pytest.mark.parametrize("name", STATE_FILES)
def test_a_state_file_name_is_spelled_in_exactly_one_module(name: str) -> None:
    pattern = re.compile(re.escape(name))
    holders = [p.relative_to(ROOT) for p in _code_files() if pattern.search(p.read_text())]
    assert holders == [Path("levibot/state/paths.py")], holders


def test_no_module_builds_the_store_or_serving_folders_by_hand() -> None:
    by_hand = re.compile(r'data_dir\s*/\s*"(store|serving|quarantine|replay)"|FeatureStore\(')
    offenders = [
        p.relative_to(ROOT)
        for p in _code_files()
        if by_hand.search(p.read_text()) and p.name not in ("paths.py", "store.py")
    ]
    assert offenders == []


def test_registry_option_moves_the_whole_registry_side(settings) -> None:
    other = Path("/elsewhere/reg/alt.json")
    paths = Paths.of(settings, registry=other)
    assert paths.registry == other
    assert paths.canary_policy.parent == paths.ensemble_weights.parent == other.parent
    assert paths.drift_dir.parent == other.parent
    assert paths.kill_switch == Paths.of(settings).kill_switch  # the serving side stays


def test_paths_refuse_names_that_could_escape_their_folder(settings) -> None:
    paths = Paths.of(settings)
    with pytest.raises(ValueError, match="invalid symbol"):
        paths.quarantine("../etc")
    with pytest.raises(ValueError, match="prod' or 'candidate"):
        paths.paper_book("../x")


@pytest.mark.parametrize(
    "text",
    ['{"weights": {"lgbm": NaN, "deep": 1}}', '{"weights": {"lgbm": Infinity, "deep": 1}}',
     '{"weights": {"lgbm": 1e308, "deep": 1e308}}', '{"weights": {"lgbm": 0, "deep": 0}}',
     '{"weights": {"lgbm": -0.5, "deep": 1.5}}'],
)  # fmt: skip
def test_weights_that_are_not_finite_or_not_a_blend_are_refused(settings, text: str) -> None:
    path = Paths.of(settings).ensemble_weights
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(CorruptFileError, match="ensemble_weights"):
        load_weights(path)


def test_weights_default_without_a_file_and_normalise(settings) -> None:
    path = Paths.of(settings).ensemble_weights
    assert load_weights(path) == {"lgbm": 0.5, "deep": 0.5}
    path.parent.mkdir(parents=True)
    path.write_text('{"weights": {"lgbm": 3, "deep": 1}}')
    weights = load_weights(path)
    assert weights["lgbm"] == pytest.approx(0.75) and math.isclose(sum(weights.values()), 1.0)


def test_drift_log_keeps_history_and_latest(settings) -> None:
    paths = Paths.of(settings)
    assert latest_drift_status(paths) is None and drift_history(paths) == []
    write_drift_report(paths, "2026-01-01T00:00:00Z", {"status": "ok"})
    write_drift_report(paths, "2026-01-01T00:15:00Z", {"status": "critical"})
    assert latest_drift_status(paths) == "critical"
    assert [r["status"] for r in drift_history(paths)] == ["ok", "critical"]
    paths.drift_latest.write_text("{torn")
    assert latest_drift_status(paths) is None  # unreadable latest: no status, not a crash
