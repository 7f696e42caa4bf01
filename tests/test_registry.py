"""Registry schema, operations, artifact checks, canary policy and concurrent writers."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from levibot.io import without_fsync, write_json_atomic
from levibot.online.jsonl import append_jsonl_lines, read_jsonl
from levibot.registry import (
    EVENTS_KEPT,
    CanaryPolicy,
    Event,
    ModelEntry,
    PolicyInfo,
    Registry,
    RegistryError,
    bootstrap_prod,
    describe,
    load_canary_policy,
    load_registry,
    promote,
    register_candidate,
    registry_events,
    rollback,
    save_canary_policy,
    save_registry,
    signal_confidence,
    tighten_policy,
    update_canary_policy,
    verify_artifacts,
)
from levibot.state.paths import Paths, events_archive_for
from tests.factories import make_entry


@pytest.fixture
def reg_file(tmp_path: Path) -> Path:
    return tmp_path / "registry" / "model_registry.json"


# ------------------------------------------------------------------ schema and files


def test_round_trip(reg_file: Path) -> None:
    entry = make_entry(reg_file.parent, "m1")
    saved = bootstrap_prod(reg_file, entry, reason="first release")
    loaded = load_registry(reg_file)
    assert loaded == saved
    assert loaded.prod == entry
    assert loaded.prod.trained_at.tzinfo is not None
    raw = json.loads(reg_file.read_text())
    assert raw["schema_version"] == 1
    assert set(raw) == {"schema_version", "prod", "candidate", "archive", "events"}
    assert raw["prod"]["models"]["lgbm"]["artifacts"]["model"]["path"] == "models/m1/lgbm.bin"
    assert raw["events"][0]["action"] == "bootstrap_prod"


def test_missing_file(reg_file: Path) -> None:
    with pytest.raises(RegistryError, match=r"model_registry\.json: file not found"):
        load_registry(reg_file)
    assert load_registry(reg_file, missing_ok=True) == Registry()


def test_corrupt_json_names_file(reg_file: Path) -> None:
    reg_file.parent.mkdir(parents=True)
    reg_file.write_text("{not json")
    with pytest.raises(RegistryError, match=r"model_registry\.json: not valid JSON"):
        load_registry(reg_file)


def test_schema_error_names_file_and_field(reg_file: Path) -> None:
    entry = make_entry(reg_file.parent, "m1")
    bootstrap_prod(reg_file, entry, reason="r")
    raw = json.loads(reg_file.read_text())
    raw["prod"]["policy"]["exit_threshold"] = 0.9
    raw["prod"]["horizon"] = 0
    reg_file.write_text(json.dumps(raw))
    with pytest.raises(RegistryError) as info:
        load_registry(reg_file)
    message = str(info.value)
    assert str(reg_file) in message
    assert "prod.policy" in message and "prod.horizon" in message
    assert "\n" not in message


def test_unknown_schema_version_and_keys(reg_file: Path) -> None:
    reg_file.parent.mkdir(parents=True)
    reg_file.write_text(json.dumps({"schema_version": 2, "prodd": None}))
    with pytest.raises(RegistryError, match="schema_version") as info:
        load_registry(reg_file)
    assert "prodd" in str(info.value)


def test_policy_exit_must_be_below_entry() -> None:
    with pytest.raises(ValidationError, match="exit_threshold"):
        PolicyInfo(entry_threshold=0.5, exit_threshold=0.5, fee_bps=1, slippage_bps=1)


def test_entry_rejects_bad_fields(tmp_path: Path) -> None:
    data = make_entry(tmp_path, "m1").model_dump(mode="json")
    bad = json.loads(json.dumps(data))
    bad["models"]["lgbm"]["kind"] = "deep"
    with pytest.raises(ValidationError, match="keyed by their kind"):
        ModelEntry.model_validate(bad)
    bad = json.loads(json.dumps(data))
    bad["data_window"]["test_start"] = "2025-12-01T00:00:00Z"
    with pytest.raises(ValidationError, match="test_start"):
        ModelEntry.model_validate(bad)
    bad = json.loads(json.dumps(data))
    bad["timeframe"] = "7x"
    with pytest.raises(ValidationError, match="timeframe"):
        ModelEntry.model_validate(bad)
    bad = json.loads(json.dumps(data))
    bad["models"]["lgbm"]["metrics"]["sharpe"] = float("nan")
    with pytest.raises(ValidationError):
        ModelEntry.model_validate(bad)


def test_paths_from_settings(settings) -> None:
    assert Paths.of(settings).registry == settings.registry_dir / "model_registry.json"
    assert Paths.of(settings).canary_policy == settings.registry_dir / "canary_policy.json"


# ---------------------------------------------------------------------- operations


def test_lifecycle_bootstrap_register_promote_rollback(reg_file: Path) -> None:
    base = reg_file.parent
    bootstrap_prod(reg_file, make_entry(base, "m1"), reason="first")
    with pytest.raises(RegistryError, match="prod already set"):
        bootstrap_prod(reg_file, make_entry(base, "m0"), reason="again")

    register_candidate(reg_file, make_entry(base, "m2"), reason="retrain")
    reg = register_candidate(reg_file, make_entry(base, "m3"), reason="retrain again")
    assert reg.candidate.id == "m3"
    assert [(a.entry.id, a.role, a.reason) for a in reg.archive] == [
        ("m2", "candidate", "replaced")
    ]

    reg = promote(reg_file, reason="canary passed")
    assert reg.prod.id == "m3" and reg.candidate is None
    assert [(a.entry.id, a.role) for a in reg.archive][-1] == ("m1", "prod")

    register_candidate(reg_file, make_entry(base, "m4"), reason="retrain")
    reg = promote(reg_file, reason="canary passed")
    assert reg.prod.id == "m4"

    reg = rollback(reg_file, reason="live sharpe collapsed")
    assert reg.prod.id == "m3"
    last = reg.archive[-1]
    assert (last.entry.id, last.role, last.reason, last.rolled_back) == (
        "m4",
        "prod",
        "live sharpe collapsed",
        True,
    )
    reg = rollback(reg_file, reason="still bad")
    assert reg.prod.id == "m1"  # goes further back, never back to the rolled-back m4
    with pytest.raises(RegistryError, match="archive has no previous prod"):
        rollback(reg_file, reason="nothing left")

    reg = load_registry(reg_file)
    assert [e.action for e in reg.events] == [
        "bootstrap_prod",
        "register_candidate",
        "register_candidate",
        "promote",
        "register_candidate",
        "promote",
        "rollback",
        "rollback",
    ]
    assert reg.events[3].model_ids == ["m3", "m1"]
    assert reg.events[3].reason == "canary passed"
    assert reg.events[6].details["previous_prod"] == "m4"
    assert all(e.at.tzinfo is not None for e in reg.events)
    text = describe(reg)
    assert "m1" in text and "rollback" in text and "candidate: (none)" in text


def test_register_rejects_duplicate_id_and_empty_reason(reg_file: Path) -> None:
    entry = make_entry(reg_file.parent, "m1")
    bootstrap_prod(reg_file, entry, reason="first")
    with pytest.raises(RegistryError, match="already prod or candidate"):
        register_candidate(reg_file, entry, reason="dup")
    with pytest.raises(RegistryError, match="reason"):
        register_candidate(reg_file, make_entry(reg_file.parent, "m2"), reason="  ")
    assert len(load_registry(reg_file).events) == 1


def test_promote_without_candidate(reg_file: Path) -> None:
    bootstrap_prod(reg_file, make_entry(reg_file.parent, "m1"), reason="first")
    with pytest.raises(RegistryError, match="no candidate to promote"):
        promote(reg_file, reason="x")
    with pytest.raises(RegistryError, match="file not found"):
        promote(reg_file.with_name("other.json"), reason="x")


def test_rollback_with_empty_archive(reg_file: Path) -> None:
    bootstrap_prod(reg_file, make_entry(reg_file.parent, "m1"), reason="first")
    with pytest.raises(RegistryError, match="archive has no previous prod"):
        rollback(reg_file, reason="x")
    assert load_registry(reg_file).prod.id == "m1"


def test_promote_detects_sha_mismatch_and_leaves_file_unchanged(reg_file: Path) -> None:
    base = reg_file.parent
    bootstrap_prod(reg_file, make_entry(base, "m1"), reason="first")
    register_candidate(reg_file, make_entry(base, "m2"), reason="retrain")
    before = reg_file.read_text()
    (base / "models/m2/lgbm.bin").write_bytes(b"tampered")
    with pytest.raises(RegistryError) as info:
        promote(reg_file, reason="x")
    message = str(info.value)
    assert "lgbm/model" in message and "sha256 mismatch" in message
    assert hashlib.sha256(b"tampered").hexdigest() in message
    assert reg_file.read_text() == before


def test_promote_detects_missing_artifact(reg_file: Path) -> None:
    base = reg_file.parent
    register_candidate(reg_file, make_entry(base, "m2"), reason="retrain")
    (base / "models/m2/deep.calib").unlink()
    with pytest.raises(RegistryError, match=r"deep/calibration .*missing file"):
        promote(reg_file, reason="x")


def test_rollback_verifies_restored_artifacts(reg_file: Path) -> None:
    base = reg_file.parent
    bootstrap_prod(reg_file, make_entry(base, "m1"), reason="first")
    register_candidate(reg_file, make_entry(base, "m2"), reason="retrain")
    promote(reg_file, reason="ok")
    (base / "models/m1/deep.bin").unlink()
    with pytest.raises(RegistryError, match=r"m1: artifact deep/model .*missing file"):
        rollback(reg_file, reason="bad")
    assert load_registry(reg_file).prod.id == "m2"


def test_register_verifies_unless_told_not_to(reg_file: Path) -> None:
    entry = make_entry(reg_file.parent, "m1")
    (reg_file.parent / "models/m1/lgbm.bin").write_bytes(b"changed")
    with pytest.raises(RegistryError, match="sha256 mismatch"):
        register_candidate(reg_file, entry, reason="r")
    with pytest.raises(RegistryError, match="sha256 mismatch"):
        verify_artifacts(entry, reg_file.parent)
    assert register_candidate(reg_file, entry, reason="r", verify=False).candidate.id == "m1"


def test_absolute_artifact_paths(tmp_path: Path, reg_file: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    entry = make_entry(elsewhere, "m1")  # refs are relative to `elsewhere`
    data = entry.model_dump()
    for spec in data["models"].values():
        for ref in [*spec["artifacts"].values(), spec["calibration"]["artifact"]]:
            ref["path"] = str(elsewhere / ref["path"])
    absolute = ModelEntry.model_validate(data)
    register_candidate(reg_file, absolute, reason="r")
    assert promote(reg_file, reason="r").prod.id == "m1"


def test_tighten_policy_arithmetic_and_bounds(reg_file: Path) -> None:
    base = reg_file.parent
    register_candidate(reg_file, make_entry(base, "c", entry=0.55, exit_=0.45), reason="r")
    reg = tighten_policy(reg_file, reason="ECE 0.09 > 0.07")
    policy = reg.candidate.policy
    assert (policy.entry_threshold, policy.exit_threshold) == (0.56, 0.44)
    event = reg.events[-1]
    assert event.action == "tighten_policy" and event.reason == "ECE 0.09 > 0.07"
    assert event.details["entry_threshold"] == [0.55, 0.56]
    assert event.details["target"] == "candidate"

    reg = tighten_policy(reg_file, delta=0.5, reason="big")
    policy = reg.candidate.policy
    assert (policy.entry_threshold, policy.exit_threshold) == (1.0, 0.0)
    assert policy.exit_threshold < policy.entry_threshold
    assert load_registry(reg_file).candidate.policy == policy

    with pytest.raises(RegistryError, match="no prod"):
        tighten_policy(reg_file, reason="r", target="prod")
    for bad in (0.0, -0.01, float("nan"), 2.0):
        with pytest.raises(RegistryError, match="delta"):
            tighten_policy(reg_file, delta=bad, reason="r")


def test_tighten_prod(reg_file: Path) -> None:
    bootstrap_prod(reg_file, make_entry(reg_file.parent, "p", entry=0.6, exit_=0.5), reason="r")
    reg = tighten_policy(reg_file, delta=0.02, reason="ECE", target="prod")
    assert (reg.prod.policy.entry_threshold, reg.prod.policy.exit_threshold) == (0.62, 0.48)


def test_failed_transaction_does_not_write(reg_file: Path) -> None:
    bootstrap_prod(reg_file, make_entry(reg_file.parent, "m1"), reason="r")
    reg = load_registry(reg_file)
    reg.events[0].reason = "edited"
    save_registry(reg_file, reg)
    assert load_registry(reg_file).events[0].reason == "edited"
    reg.prod.policy.exit_threshold = 0.99  # invalid: exit above entry
    with pytest.raises(RegistryError, match="exit_threshold"):
        save_registry(reg_file, reg)
    assert load_registry(reg_file).prod.policy.exit_threshold == 0.45


# ------------------------------------------------------------------ events archive


def _reasons(events: list[Event]) -> list[str]:
    return [event.reason for event in events]


def _archived_reasons(reg_file: Path) -> list[str]:
    return [record["reason"] for record in read_jsonl(events_archive_for(reg_file), strict=True)]


def test_old_events_move_to_the_archive_and_the_reader_keeps_them_all(reg_file: Path) -> None:
    extra = 3
    with without_fsync():
        bootstrap_prod(reg_file, make_entry(reg_file.parent, "p"), reason="op0")
        for i in range(1, EVENTS_KEPT + extra):
            reg = tighten_policy(reg_file, delta=0.001, reason=f"op{i}", target="prod")
    everything = [f"op{i}" for i in range(EVENTS_KEPT + extra)]
    assert _reasons(reg.events) == everything[extra:]  # the returned registry is the file's
    assert _reasons(load_registry(reg_file).events) == everything[extra:]
    assert _archived_reasons(reg_file) == everything[:extra]
    assert _reasons(registry_events(reg_file)) == everything
    text = describe(load_registry(reg_file), total_events=len(registry_events(reg_file)))
    assert f"{EVENTS_KEPT + extra} total" in text
    assert f"newest {EVENTS_KEPT}" in describe(load_registry(reg_file))


def test_a_registry_with_too_many_events_from_an_older_version_is_trimmed(
    reg_file: Path,
) -> None:
    count = EVENTS_KEPT + 50
    events = [
        Event(
            at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i), action="a", reason=f"e{i}"
        )
        for i in range(count)
    ]
    write_json_atomic(reg_file, Registry(events=events).model_dump(mode="json"))
    bootstrap_prod(reg_file, make_entry(reg_file.parent, "p"), reason="next")
    everything = [f"e{i}" for i in range(count)] + ["next"]
    assert _reasons(load_registry(reg_file).events) == everything[-EVENTS_KEPT:]
    assert _archived_reasons(reg_file) == everything[:-EVENTS_KEPT]
    assert _reasons(registry_events(reg_file)) == everything


def test_a_crash_between_archiving_and_rewriting_loses_no_event(reg_file: Path) -> None:
    bootstrap_prod(reg_file, make_entry(reg_file.parent, "p"), reason="op0")
    tighten_policy(reg_file, reason="op1", target="prod")
    head = load_registry(reg_file).events[:1]  # archived, then killed before the rewrite
    append_jsonl_lines(events_archive_for(reg_file), [e.model_dump(mode="json") for e in head])
    assert _reasons(registry_events(reg_file)) == ["op0", "op1"]  # counted once
    assert registry_events(reg_file.with_name("none.json"), missing_ok=True) == []
    with pytest.raises(RegistryError, match="file not found"):
        registry_events(reg_file.with_name("none.json"))


def test_a_failed_registry_write_after_archiving_does_not_duplicate_events(
    reg_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import levibot.registry.store as store

    monkeypatch.setattr(store, "EVENTS_KEPT", 2)
    bootstrap_prod(reg_file, make_entry(reg_file.parent, "p"), reason="op0")
    for i in (1, 2):
        tighten_policy(reg_file, reason=f"op{i}", target="prod")
    real_write = store._write
    calls = {"n": 0}

    def write_fails_once(path, obj):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        return real_write(path, obj)

    monkeypatch.setattr(store, "_write", write_fails_once)
    with pytest.raises(OSError):
        tighten_policy(reg_file, reason="op3", target="prod")  # archived op0, op1; not saved
    for i in (3, 4):
        tighten_policy(reg_file, reason=f"op{i}", target="prod")
    reasons = _reasons(registry_events(reg_file))
    assert reasons == ["op0", "op1", "op2", "op3", "op4"]  # each once
    assert _archived_reasons(reg_file) == ["op0", "op1", "op2"]


# ------------------------------------------------------------------- canary policy


def test_canary_policy_defaults_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "registry" / "canary_policy.json"
    policy = load_canary_policy(path)
    assert policy == CanaryPolicy()
    assert (policy.enabled, policy.fraction, policy.min_confidence) == (False, 0.10, 0.0)
    limits = policy.thresholds  # the go-live guide's numbers
    assert limits.max_staleness_sec == 1800 and limits.canary_min_sharpe == 0.0
    assert (limits.ece.target, limits.ece.acceptable, limits.ece.tighten) == (0.05, 0.06, 0.07)
    assert limits.gate.min_trades == 20 and limits.gate.max_dd_ratio == 0.9
    assert (limits.gate.sharpe_margin, limits.gate.sharpe_rollback) == (0.2, 0.3)
    assert (limits.drift.psi_warning, limits.drift.psi_critical) == (0.2, 0.3)
    with pytest.raises(RegistryError, match="file not found"):
        load_canary_policy(path, missing_ok=False)

    save_canary_policy(path, CanaryPolicy(enabled=True, fraction=0.2))
    assert load_canary_policy(path).fraction == 0.2
    updated = update_canary_policy(
        path, min_confidence=0.1, thresholds={"ece": {"tighten": 0.08}, "gate": {"min_trades": 5}}
    )
    assert updated.enabled and updated.fraction == 0.2 and updated.min_confidence == 0.1
    limits = updated.thresholds  # nested changes merge: the untouched limits keep their values
    assert limits.ece.tighten == 0.08 and limits.ece.target == 0.05
    assert limits.gate.min_trades == 5 and limits.gate.sharpe_margin == 0.2
    assert limits.max_staleness_sec == 1800
    assert load_canary_policy(path) == updated


def test_canary_policy_from_before_the_threshold_model_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "canary_policy.json"
    path.write_text(
        '{"enabled": true, "fraction": 0.1, "min_confidence": 0.0, "max_risk_per_trade": 0.02,'
        ' "guards": {"max_staleness_sec": 900, "max_ece": 0.08, "min_sharpe": -1.0},'
        ' "promote_criteria": {"min_sharpe_delta": 0.2, "max_dd_ratio": 0.9, "min_trades": 20,'
        ' "max_ece": 0.05}}'
    )
    limits = load_canary_policy(path).thresholds
    assert limits.max_staleness_sec == 900 and limits.canary_min_sharpe == -1.0
    assert limits.ece.tighten == 0.08


def test_thresholds_refuse_inconsistent_limits(tmp_path: Path) -> None:
    path = tmp_path / "canary_policy.json"
    with pytest.raises(RegistryError, match="target <= acceptable <= tighten"):
        update_canary_policy(path, thresholds={"ece": {"target": 0.09}})
    with pytest.raises(RegistryError, match="rollback_max_checks"):
        update_canary_policy(path, thresholds={"gate": {"rollback_max_checks": 5}})
    with pytest.raises(RegistryError, match="max_staleness_sec"):
        update_canary_policy(path, thresholds={"max_staleness_sec": float("nan")})
    with pytest.raises(RegistryError, match="typo"):
        update_canary_policy(path, thresholds={"drift": {"typo": 1}})
    assert not path.exists()


def test_canary_policy_validation(tmp_path: Path) -> None:
    path = tmp_path / "canary_policy.json"
    with pytest.raises(ValidationError, match="fraction"):
        CanaryPolicy(fraction=1.5)
    with pytest.raises(ValidationError, match="min_confidence"):
        CanaryPolicy(min_confidence=0.6)
    with pytest.raises(RegistryError, match=r"canary_policy\.json.*fraction"):
        update_canary_policy(path, fraction=1.5)
    with pytest.raises(RegistryError, match="typo"):
        update_canary_policy(path, typo=1)
    assert not path.exists()
    path.write_text('{"fraction": "lots"}')
    with pytest.raises(RegistryError, match=r"canary_policy\.json.*fraction"):
        load_canary_policy(path)
    assert signal_confidence(0.8) == pytest.approx(0.3)
    assert signal_confidence(0.2) == pytest.approx(0.3)


# -------------------------------------------------------------- concurrent writers

WORKERS, OPS = 4, 10


def _worker(path: str, worker: int) -> None:
    """Alternate candidate registrations and policy tightenings on one shared file."""
    target = Path(path)
    base = target.parent
    for i in range(OPS):
        if i % 2:
            tighten_policy(target, delta=0.001, reason=f"w{worker} op{i}")
        else:
            entry = make_entry(base, f"w{worker}-{i}")
            register_candidate(target, entry, reason=f"w{worker} op{i}")


def _check_no_lost_update(reg_file: Path) -> None:
    reg = load_registry(reg_file)
    assert len(reg.events) == 1 + WORKERS * OPS
    registered = [e for e in reg.events if e.action == "register_candidate"]
    assert len(registered) == 1 + WORKERS * OPS // 2
    assert len(reg.archive) == WORKERS * OPS // 2  # every replaced candidate archived
    assert not list(reg_file.parent.glob(".model_registry.json.*.tmp"))


def test_concurrent_processes_lose_no_update(reg_file: Path) -> None:
    register_candidate(reg_file, make_entry(reg_file.parent, "seed"), reason="seed")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(reg_file), w)) for w in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * WORKERS
    _check_no_lost_update(reg_file)


def test_concurrent_threads_lose_no_update(reg_file: Path) -> None:
    register_candidate(reg_file, make_entry(reg_file.parent, "seed"), reason="seed")
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            _worker(str(reg_file), worker)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    _check_no_lost_update(reg_file)


def test_an_old_max_ece_below_the_new_defaults_caps_them(tmp_path: Path) -> None:
    path = tmp_path / "canary_policy.json"
    path.write_text('{"guards": {"max_ece": 0.045}}')
    ece = load_canary_policy(path).thresholds.ece
    assert (ece.target, ece.acceptable, ece.tighten) == (0.045, 0.045, 0.045)
