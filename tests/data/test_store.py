import pandas as pd
import pytest

from levibot.data.store import ROW_GROUP_SIZE, FeatureStore, upsert_frames
from levibot.io import CorruptFileError
from tests.conftest import make_bars


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    return FeatureStore(tmp_path / "store", "15m")


def test_upsert_twice_is_idempotent_and_newest_wins(store):
    first = make_bars(100, seed=1)
    store.upsert("BTCUSDT", first)
    store.upsert("BTCUSDT", first)
    pd.testing.assert_frame_equal(store.read("BTCUSDT", "bars"), first, check_freq=False)

    overlap = make_bars(100, seed=2, start=first.index[50])
    merged = store.upsert("BTCUSDT", overlap)
    assert len(merged) == 150 and merged.index.is_unique
    pd.testing.assert_frame_equal(merged.loc[overlap.index], overlap, check_freq=False)
    pd.testing.assert_frame_equal(merged.iloc[:50], first.iloc[:50], check_freq=False)


def test_upsert_frames_with_nothing_existing():
    new = make_bars(3)
    pd.testing.assert_frame_equal(upsert_frames(None, new), new)


def test_failed_write_leaves_old_file_intact(store, monkeypatch):
    good = make_bars(10)
    store.write("ETHUSDT", good)
    before = store.path("ETHUSDT").read_bytes()

    def broken(self, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        store.write("ETHUSDT", make_bars(20))
    assert store.path("ETHUSDT").read_bytes() == before
    assert sorted(p.name for p in store.path("ETHUSDT").parent.iterdir()) == ["ETHUSDT_15m.parquet"]


def test_tail_reads_the_last_rows_across_row_groups(store):
    frame = make_bars(ROW_GROUP_SIZE * 2 + 100)
    store.write("BTCUSDT", frame)
    for n in (0, 1, 99, 100, 101, ROW_GROUP_SIZE + 200, len(frame), len(frame) + 5):
        tail = store.tail("BTCUSDT", n)
        pd.testing.assert_frame_equal(
            tail, frame.iloc[len(frame) - min(n, len(frame)) :], check_freq=False
        )


def test_staleness_is_now_minus_close_of_last_bar(store):
    frame = make_bars(10)
    store.write("BTCUSDT", frame)
    close_time = frame.index[-1] + pd.Timedelta(minutes=15)
    assert store.staleness_seconds("BTCUSDT", now=close_time + pd.Timedelta(seconds=90)) == 90.0


def test_bad_symbols_missing_files_and_corruption(store):
    for bad in ("../etc", "btc/usdt", "", "A"):
        with pytest.raises(ValueError, match="invalid symbol"):
            store.path(bad)
    assert store.read("BTCUSDT") is None
    with pytest.raises(FileNotFoundError, match="BTCUSDT"):
        store.tail("BTCUSDT", 5)
    store.path("BTCUSDT").parent.mkdir(parents=True)
    store.path("BTCUSDT").write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match=r"BTCUSDT_15m\.parquet"):
        store.read("BTCUSDT")
    with pytest.raises(CorruptFileError):
        store.tail("BTCUSDT", 1)


def test_write_refuses_duplicates_and_unsorted(store):
    frame = make_bars(5)
    with pytest.raises(ValueError, match="duplicate"):
        store.write("BTCUSDT", pd.concat([frame, frame.iloc[[0]]]).sort_index())
    with pytest.raises(ValueError, match="sorted"):
        store.write("BTCUSDT", frame.iloc[::-1])


def test_symbols_lists_stored_files(store):
    store.write("SOLUSDT", make_bars(3))
    store.write("BTCUSDT", make_bars(3))
    assert store.symbols() == ["BTCUSDT", "SOLUSDT"]


def test_append_adds_bars_without_rewriting_the_table(store):
    frame = make_bars(300)
    store.write("BTCUSDT", frame.iloc[:280])
    table = store.path("BTCUSDT")
    before = table.stat().st_mtime_ns
    for i in range(280, 300):
        store.append("BTCUSDT", frame.iloc[i : i + 1])
    assert table.stat().st_mtime_ns == before  # the table was not rewritten
    pd.testing.assert_frame_equal(store.read("BTCUSDT"), frame, check_freq=False)
    pd.testing.assert_frame_equal(store.tail("BTCUSDT", 30), frame.iloc[-30:], check_freq=False)
    fresh = FeatureStore(store.root, "15m")  # another process sees the same rows
    pd.testing.assert_frame_equal(fresh.tail("BTCUSDT", 5), frame.iloc[-5:], check_freq=False)
    assert store.last_bar_time("BTCUSDT") == frame.index[-1]


def test_append_refuses_old_rows_and_survives_a_torn_line(store):
    frame = make_bars(50)
    store.write("BTCUSDT", frame.iloc[:40])
    store.append("BTCUSDT", frame.iloc[40:42])
    with pytest.raises(ValueError, match="must be newer than the stored"):
        store.append("BTCUSDT", frame.iloc[41:43])
    with open(store.delta_path("BTCUSDT"), "a") as handle:
        handle.write('{"timestamp": "2026-01-01T')  # a writer crashed mid-line
    store.append("BTCUSDT", frame.iloc[42:44])  # the next append ends the torn line first
    pd.testing.assert_frame_equal(
        FeatureStore(store.root, "15m").read("BTCUSDT"), frame.iloc[:44], check_freq=False
    )


def test_a_full_delta_is_folded_into_the_table(store, monkeypatch):
    import levibot.data.store as module

    monkeypatch.setattr(module, "COMPACT_ROWS", 5)
    frame = make_bars(30)
    store.write("BTCUSDT", frame.iloc[:20])
    for i in range(20, 30):
        store.append("BTCUSDT", frame.iloc[i : i + 1])
    pd.testing.assert_frame_equal(store.read("BTCUSDT"), frame, check_freq=False)
    assert pq_rows(store.path("BTCUSDT")) >= 25  # folded at least once


def pq_rows(path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def test_a_reader_notices_a_new_delta_after_a_fold(store, monkeypatch):
    import levibot.data.store as module

    monkeypatch.setattr(module, "COMPACT_ROWS", 4)
    frame = make_bars(40)
    store.write("BTCUSDT", frame.iloc[:20])
    reader = FeatureStore(store.root, "15m")  # another process, reading between appends
    for i in range(20, 40):
        store.append("BTCUSDT", frame.iloc[i : i + 1])
        pd.testing.assert_frame_equal(
            reader.tail("BTCUSDT", 5), frame.iloc[i - 4 : i + 1], check_freq=False
        )
