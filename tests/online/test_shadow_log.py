"""Shadow logs rotate daily by the injected clock and read back as frames."""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path

import pandas as pd

from levibot.online.jsonl import count_corrupt_lines
from levibot.online.shadow_log import PREDICTION_COLUMNS, TRADE_COLUMNS, ShadowLog

T0 = pd.Timestamp("2026-01-01 23:59:58", tz="UTC")


class FakeClock:
    def __init__(self, now: pd.Timestamp) -> None:
        self.now = now

    def __call__(self) -> pd.Timestamp:
        return self.now


def _prediction(variant: str = "prod", **extra: object) -> dict:
    return {
        "request_id": "r1",
        "endpoint": "/predict",
        "symbol": "BTCUSDT",
        "bar_time": "2026-01-01T23:45:00+00:00",
        "variant": variant,
        "role": "prod" if variant == "prod" else "candidate",
        "model_id": "m1",
        "p_up": 0.61,
        "signal": "ENTRY",
        "reason": "threshold",
        "served": True,
        **extra,
    }


def test_daily_rotation_by_clock_across_midnight(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    log = ShadowLog(tmp_path, clock=clock)
    log.log_prediction(_prediction(request_id="before"))
    clock.now = T0 + pd.Timedelta(seconds=3)  # 2026-01-02 00:00:01
    log.log_prediction(_prediction(request_id="after"))
    log.log_trade({"model": "prod", "symbol": "BTCUSDT", "return": 0.01})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "predictions_20260101.jsonl",
        "predictions_20260102.jsonl",
        "trades_20260102.jsonl",
    ]
    frame = log.predictions()
    assert list(frame.columns) == PREDICTION_COLUMNS
    assert frame["request_id"].tolist() == ["before", "after"]
    assert frame["ts"].tolist() == [T0, T0 + pd.Timedelta(seconds=3)]
    assert isinstance(frame["ts"].dtype, pd.DatetimeTZDtype)
    assert str(frame["ts"].dt.tz) == "UTC"
    assert frame["bar_time"].iloc[0] == pd.Timestamp("2026-01-01 23:45", tz="UTC")
    trades = log.trades()
    assert list(trades.columns[: len(TRADE_COLUMNS)]) == TRADE_COLUMNS
    assert trades["return"].tolist() == [0.01]


def test_given_ts_is_kept_and_order_is_by_ts(tmp_path: Path) -> None:
    log = ShadowLog(tmp_path, clock=FakeClock(T0))
    log.log_prediction(_prediction(request_id="b", ts="2026-01-01T10:00:00+00:00"))
    log.log_prediction(_prediction(request_id="a", ts="2026-01-01T09:00:00+00:00"))
    frame = log.predictions()
    assert frame["request_id"].tolist() == ["a", "b"]


def test_since_reads_only_days_that_reach_it(tmp_path: Path) -> None:
    clock = FakeClock(pd.Timestamp("2026-01-01 12:00", tz="UTC"))
    log = ShadowLog(tmp_path, clock=clock)
    for hours in (0, 12, 24, 36):  # 01 12:00, 02 00:00, 02 12:00, 03 00:00
        clock.now = pd.Timestamp("2026-01-01 12:00", tz="UTC") + pd.Timedelta(hours=hours)
        log.log_prediction(_prediction(request_id=str(hours)))
    since = pd.Timestamp("2026-01-02 06:00", tz="UTC")
    assert [p.name for p in log.files("predictions", since)] == [
        "predictions_20260102.jsonl",
        "predictions_20260103.jsonl",
    ]
    assert log.predictions(since)["request_id"].tolist() == ["24", "36"]
    # naive `since` is UTC; a since after everything gives an empty frame with columns
    assert log.predictions(pd.Timestamp("2026-01-02 00:00"))["request_id"].tolist() == [
        "12",
        "24",
        "36",
    ]
    late = log.predictions(pd.Timestamp("2026-02-01", tz="UTC"))
    assert late.empty and list(late.columns) == PREDICTION_COLUMNS


def test_counts_by_variant_and_model_follow_new_rows(tmp_path: Path) -> None:
    log = ShadowLog(tmp_path, clock=FakeClock(T0))
    for variant in ("prod", "prod", "canary"):
        log.log_prediction(_prediction(variant))
    log.log_trade({"model": "candidate", "symbol": "BTCUSDT"})
    assert log.counts() == {
        "predictions": {"canary": 1, "prod": 2},
        "trades": {"candidate": 1},
        "corrupt_lines": 0,
    }
    log.log_prediction(_prediction("canary"))
    log.log_trade({"model": "prod"})
    with open(tmp_path / "predictions_20260101.jsonl", "a") as handle:
        handle.write('{"variant": "prod", "tor\n')
    other = ShadowLog(tmp_path)  # another process sees the same files
    for counter in (log, other):
        assert counter.counts() == {
            "predictions": {"canary": 2, "prod": 2},
            "trades": {"candidate": 1, "prod": 1},
            "corrupt_lines": 1,
        }
    assert len(log.predictions()) == 4


def test_empty_and_missing_directory(tmp_path: Path) -> None:
    for directory in (tmp_path, tmp_path / "missing"):
        log = ShadowLog(directory)
        predictions, trades = log.predictions(), log.trades()
        assert predictions.empty and list(predictions.columns) == PREDICTION_COLUMNS
        assert trades.empty and list(trades.columns) == TRADE_COLUMNS
        assert isinstance(predictions["ts"].dtype, pd.DatetimeTZDtype)
        assert log.counts() == {"predictions": {}, "trades": {}, "corrupt_lines": 0}
    (tmp_path / "notes.txt").write_text("not a log")
    (tmp_path / "predictions_2026.jsonl").write_text("{}\n")
    assert ShadowLog(tmp_path).predictions().empty


def test_nan_p_up_is_logged_as_null(tmp_path: Path) -> None:
    log = ShadowLog(tmp_path, clock=FakeClock(T0))
    log.log_prediction(_prediction(p_up=float("nan"), signal="HOLD"))
    assert "NaN" not in (tmp_path / "predictions_20260101.jsonl").read_text()
    assert log.predictions()["p_up"].isna().all()


# ---------------------------------------------------------------- incremental counts


def _recount(directory: Path) -> dict:
    """Counts from a fresh ShadowLog: a full read of every file, nothing cached."""
    return ShadowLog(directory).counts()


def _append_raw(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def test_incremental_counts_equal_full_recount_after_many_appends(tmp_path: Path) -> None:
    rng = random.Random(7)
    log = ShadowLog(tmp_path, clock=FakeClock(T0))
    path = log.path_for("predictions", T0.date())
    for step in range(60):
        batch = [_prediction(rng.choice(["prod", "canary", ""])) for _ in range(rng.randint(1, 5))]
        log.log_predictions(batch)
        if step % 7 == 3:
            _append_raw(path, b"not json\n")
        if step % 5 == 0:
            log.log_trade({"model": rng.choice(["prod", "candidate"])})
        if step % 3 == 0:
            assert log.counts() == _recount(tmp_path)
    final = log.counts()
    assert final == _recount(tmp_path)
    assert sum(final["predictions"].values()) == len(log.predictions())
    assert final["corrupt_lines"] == 9
    assert "unknown" in final["predictions"]  # empty variant


def test_second_count_reads_only_the_appended_bytes(tmp_path: Path) -> None:
    log = ShadowLog(tmp_path, clock=FakeClock(T0))
    path = log.path_for("predictions", T0.date())
    log.log_predictions([_prediction(request_id=f"r{i}") for i in range(5000)])
    big = path.stat().st_size
    log.counts()
    assert log.bytes_read == big
    log.log_predictions([_prediction("canary") for _ in range(3)])
    appended = path.stat().st_size - big
    assert log.counts()["predictions"] == {"canary": 3, "prod": 5000}
    assert log.bytes_read == big + appended  # not 2 * big + appended
    log.counts()  # nothing new: nothing read
    assert log.bytes_read == big + appended


def test_partial_trailing_line_is_counted_once_when_finished(tmp_path: Path) -> None:
    log = ShadowLog(tmp_path, clock=FakeClock(T0))
    path = log.path_for("predictions", T0.date())
    log.log_prediction(_prediction("prod"))
    _append_raw(path, b'{"variant": "can')
    assert log.counts()["predictions"] == {"prod": 1}
    assert log.counts()["corrupt_lines"] == 0
    _append_raw(path, b'ary"}\n')
    for _ in range(2):
        assert log.counts() == {
            "predictions": {"canary": 1, "prod": 1},
            "trades": {},
            "corrupt_lines": 0,
        }
    assert log.counts() == _recount(tmp_path)


def test_truncated_or_replaced_file_is_recounted(tmp_path: Path) -> None:
    log = ShadowLog(tmp_path, clock=FakeClock(T0))
    path = log.path_for("predictions", T0.date())
    log.log_predictions([_prediction("prod") for _ in range(5)])
    assert log.counts()["predictions"] == {"prod": 5}
    with open(path, "r+b") as handle:  # same inode, shorter: truncated
        handle.truncate(0)
    log.log_prediction(_prediction("canary"))
    assert log.counts()["predictions"] == {"canary": 1}
    replacement = tmp_path / "new.tmp"  # another inode, longer than the old file
    lines = "".join(json.dumps(_prediction("prod")) + "\n" for _ in range(4))
    replacement.write_text(lines)
    os.replace(replacement, path)
    assert log.counts()["predictions"] == {"prod": 4}
    assert log.counts() == _recount(tmp_path)
    path.unlink()
    assert log.counts() == {"predictions": {}, "trades": {}, "corrupt_lines": 0}


def test_corrupt_line_is_counted_once(tmp_path: Path) -> None:
    log = ShadowLog(tmp_path, clock=FakeClock(T0))
    path = log.path_for("predictions", T0.date())
    log.log_prediction(_prediction("prod"))
    _append_raw(path, b"[1, 2]\n")  # valid JSON, not an object
    assert log.counts()["corrupt_lines"] == 1
    _append_raw(path, b'{"variant": "prod", "tor')  # crashed writer: torn line
    assert log.counts()["corrupt_lines"] == 1  # not terminated yet: not counted
    log.log_prediction(_prediction("canary"))  # terminates the torn line first
    for _ in range(2):
        counts = log.counts()
        assert counts["corrupt_lines"] == 2 == count_corrupt_lines(path)
        assert counts["predictions"] == {"canary": 1, "prod": 1}
    assert log.counts() == _recount(tmp_path)


def test_concurrent_counts_while_appending(tmp_path: Path) -> None:
    log = ShadowLog(tmp_path, clock=FakeClock(T0))
    writer_log = ShadowLog(tmp_path, clock=FakeClock(T0))
    path = log.path_for("predictions", T0.date())
    done = threading.Event()
    seen: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(400):
                writer_log.log_predictions([_prediction("prod"), _prediction("canary")])
                if i % 50 == 0:
                    writer_log.log_trade({"model": "prod"})
        finally:
            done.set()

    def poll(totals: list[int]) -> None:
        try:
            while not done.is_set():
                totals.append(sum(log.counts()["predictions"].values()))
        except BaseException as exc:  # surfaced below; a thread would swallow it
            errors.append(exc)

    threads = [threading.Thread(target=poll, args=(totals,)) for totals in seen]
    threads.append(threading.Thread(target=write))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for totals in seen:  # each poller only ever sees counts grow
        assert totals == sorted(totals)
    assert log.counts() == {
        "predictions": {"canary": 400, "prod": 400},
        "trades": {"prod": 8},
        "corrupt_lines": 0,
    }
    trades = log.path_for("trades", T0.date())
    assert log.bytes_read == path.stat().st_size + trades.stat().st_size  # each byte once
