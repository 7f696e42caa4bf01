import json

import numpy as np
import pandas as pd
import pytest

from levibot.data.sources.synthetic import SyntheticMarket
from levibot.data.validate import DataValidationError
from levibot.features import FEATURES
from levibot.ingest import run_ingest
from levibot.state.paths import Paths


class BrokenRows:
    """Wraps a source and damages some rows, like a flaky exchange dump."""

    name = "broken"

    def __init__(self, inner, bad_rows: int):
        self.inner, self.bad_rows = inner, bad_rows

    def fetch(self, symbol, start, end):
        frame = self.inner.fetch(symbol, start, end)
        frame.iloc[: self.bad_rows, frame.columns.get_loc("close")] = np.nan
        return frame


def test_ingest_writes_store_manifest_and_is_idempotent(settings):
    first = run_ingest(settings)
    store = Paths.of(settings).store()
    assert store.symbols() == ["BTCUSDT", "ETHUSDT"]
    stored = store.read("BTCUSDT")
    assert len(stored) == 5 * 96 and set(FEATURES) <= set(stored.columns)
    assert first.quality.set_index("symbol").loc["ETHUSDT", "rows_clean"] == 5 * 96
    manifest = json.loads(Paths.of(settings).manifest.read_text())
    assert manifest["window"]["end"] == "2026-01-10T00:00:00+00:00"
    assert set(manifest["symbols"]) == {"BTCUSDT", "ETHUSDT"}

    second = run_ingest(settings)
    pd.testing.assert_frame_equal(store.read("BTCUSDT"), stored)
    assert second.quality.equals(first.quality)


def test_ingest_of_a_later_window_extends_the_store(settings):
    run_ingest(settings)
    later = settings.model_copy(update={"end": settings.end + pd.Timedelta(days=2)})
    run_ingest(later)
    stored = Paths.of(settings).store().read("ETHUSDT")
    assert len(stored) == 7 * 96 and stored.index.is_unique


def test_bad_rows_are_quarantined_and_counted(settings):
    market = SyntheticMarket(seed=settings.seed)
    result = run_ingest(settings, source=BrokenRows(market, bad_rows=2))
    assert result.quality["quarantined"].tolist() == [2, 2]
    quarantined = pd.read_csv(Paths.of(settings).quarantine("BTCUSDT"))
    assert quarantined["reason"].tolist() == ["nan_or_inf", "nan_or_inf"]
    run_ingest(settings, source=BrokenRows(market, bad_rows=2))
    assert len(pd.read_csv(Paths.of(settings).quarantine("BTCUSDT"))) == 2  # deduplicated


def test_failed_validation_leaves_the_store_untouched(settings):
    run_ingest(settings)
    store = Paths.of(settings).store()
    before = {s: store.path(s).read_bytes() for s in settings.symbols}
    manifest_before = Paths.of(settings).manifest.read_bytes()
    broken = BrokenRows(SyntheticMarket(seed=settings.seed), bad_rows=100)
    with pytest.raises(DataValidationError, match="broken source, symbol BTCUSDT"):
        run_ingest(settings, source=broken)
    assert {s: store.path(s).read_bytes() for s in settings.symbols} == before
    assert Paths.of(settings).manifest.read_bytes() == manifest_before


def test_empty_source_window_is_an_error(settings):
    class Empty:
        name = "empty"

        def fetch(self, symbol, start, end):
            return SyntheticMarket().fetch(symbol, end, end)

    with pytest.raises(DataValidationError, match="no bars"):
        run_ingest(settings, source=Empty())


def test_drift_scenario_defaults_to_two_days_before_end(settings):
    drifted = settings.model_copy(update={"drift_scenario": "feature_freeze"})
    result = run_ingest(drifted)
    frame = result.features["BTCUSDT"]
    last_two_days = frame.index >= pd.Timestamp(settings.end) - pd.Timedelta(days=2)
    assert frame.loc[last_two_days, "ob_imbalance"].nunique() == 1
    assert frame.loc[~last_two_days, "ob_imbalance"].nunique() > 50


def test_csv_source_ingest_at_1h_for_a_users_own_instrument(tmp_path, settings):
    from tests.conftest import make_bars

    bars = make_bars(24 * 20 * 4, freq="15min", start=pd.Timestamp("2025-01-01", tz="UTC"))
    csv = bars[["open", "high", "low", "close", "volume"]].rename(columns=str.upper)
    csv.index = csv.index.astype("int64") // 10**6  # epoch milliseconds
    csv.to_csv(tmp_path / "MYCOIN_15m.csv", index_label="Timestamp")
    own = settings.model_copy(
        update={
            "source": "csv",
            "csv_path": tmp_path / "MYCOIN_15m.csv",
            "symbols": ["MYCOIN"],
            "timeframe": "1h",
            "days": 10,
            "end": pd.Timestamp("2025-01-15", tz="UTC").to_pydatetime(),
        }
    )
    result = run_ingest(own)
    stored = result.features["MYCOIN"]
    assert len(stored) == 10 * 24 and (stored.index.minute == 0).all()
    assert stored["fund_rate"].isna().all()  # no auxiliary data: NaN, not zeros
    assert stored["ret_1"].iloc[1:].notna().all()
    row = result.quality.iloc[0]
    assert row["quarantined"] == 0 and row["incomplete_bars_dropped"] == 0


def _own_csv(tmp_path, settings, **changes):
    from tests.conftest import make_bars

    bars = make_bars(24 * 20, freq="1h", start=pd.Timestamp("2025-01-01", tz="UTC"))
    bars[["open", "high", "low", "close", "volume"]].to_csv(tmp_path / "MYCOIN_1h.csv")
    return settings.model_copy(update={
        "source": "csv", "csv_path": tmp_path / "MYCOIN_1h.csv", "symbols": ["MYCOIN"],
        "timeframe": "1h", "days": 10, **changes,
    })  # fmt: skip


def test_end_null_on_a_csv_means_the_files_last_bar(tmp_path, settings):
    """With the wall clock as end, a file ending months ago gave "no bars between" it and now."""
    result = run_ingest(_own_csv(tmp_path, settings, end=None))
    stored = result.features["MYCOIN"]
    assert stored.index[-1] == pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(
        hours=24 * 20 - 1
    )
    assert len(stored) == 10 * 24


def test_a_window_outside_the_file_says_what_the_file_covers(tmp_path, settings):
    from levibot.data.validate import DataValidationError

    late = pd.Timestamp("2026-06-01", tz="UTC").to_pydatetime()
    with pytest.raises(DataValidationError, match="covers 2025-01-01 00:00:00"):
        run_ingest(_own_csv(tmp_path, settings, end=late))
