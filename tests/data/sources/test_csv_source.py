"""CsvSource: layouts, symbol selection, resampling and honest handling of bad rows."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from levibot.data.schema import BAR_COLUMNS, empty_bars
from levibot.data.sources.csv import CsvSource
from levibot.symbols import UnknownSymbolError

T0 = pd.Timestamp("2024-01-01", tz="UTC")
BINANCE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)


def kline_lines(n: int, step: pd.Timedelta, *, unit_per_ms: int = 1, price: float = 100.0):
    """Binance kline rows (no header): open time in ms (or us with unit_per_ms=1000)."""
    lines = []
    for i in range(n):
        ms = (T0 + i * step).value // 1_000_000
        close_ms = ms + step.value // 1_000_000 - 1
        o = price + i
        lines.append(
            f"{ms * unit_per_ms},{o},{o + 2},{o - 1},{o + 1},{i + 1},"
            f"{close_ms * unit_per_ms},{(i + 1) * o},7,0.5,50,0"
        )
    return lines


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def window(hours: float = 24) -> tuple[pd.Timestamp, pd.Timestamp]:
    return T0, T0 + pd.Timedelta(hours=hours)


def test_binance_headerless_klines_native_timeframe(tmp_path: Path) -> None:
    write(tmp_path / "BTCUSDT-1h-2024-01.csv", kline_lines(5, pd.Timedelta(hours=1)))
    bars = CsvSource(tmp_path, timeframe="1h").fetch("BTCUSDT", *window())
    assert list(bars.columns) == BAR_COLUMNS
    assert bars.index.name == "timestamp" and str(bars.index.tz) == "UTC"
    assert len(bars) == 5 and bars.index[0] == T0
    assert bars.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == [
        100.0, 102.0, 99.0, 101.0, 1.0,
    ]  # fmt: skip
    assert bars["funding_rate"].isna().all()


def test_binance_klines_with_header(tmp_path: Path) -> None:
    lines = [BINANCE_HEADER, *kline_lines(3, pd.Timedelta(hours=1))]
    path = write(tmp_path / "BTCUSDT-1h-2024-02.csv", lines)
    source = CsvSource(path, timeframe="1h")
    bars = source.fetch("BTCUSDT", *window())
    assert len(bars) == 3 and bars["close"].tolist() == [101.0, 102.0, 103.0]
    assert source.last_report["unparseable_timestamps"] == 0


def test_zipped_monthly_dumps_in_a_directory(tmp_path: Path) -> None:
    step = pd.Timedelta(minutes=15)
    lines = kline_lines(8, step)
    with zipfile.ZipFile(tmp_path / "BTCUSDT-15m-2024-01.zip", "w") as archive:
        archive.writestr("BTCUSDT-15m-2024-01.csv", "\n".join(lines[:4]) + "\n")
    with zipfile.ZipFile(tmp_path / "BTCUSDT-15m-2024-02.zip", "w") as archive:
        archive.writestr("BTCUSDT-15m-2024-02.csv", "\n".join(lines[4:]) + "\n")
    with zipfile.ZipFile(tmp_path / "ETHUSDT-15m-2024-01.zip", "w") as archive:
        archive.writestr("ETHUSDT-15m-2024-01.csv", "\n".join(kline_lines(2, step, price=5)))
    source = CsvSource(tmp_path, timeframe="15m")
    btc = source.fetch("BTCUSDT", *window())
    eth = source.fetch("ethusdt", *window())
    assert len(btc) == 8 and btc.index.is_monotonic_increasing
    assert len(eth) == 2 and eth["open"].iloc[0] == 5.0
    assert source.last_report["files"] == ["ETHUSDT-15m-2024-01.zip/ETHUSDT-15m-2024-01.csv"]


def test_single_zip_with_several_members(tmp_path: Path) -> None:
    step = pd.Timedelta(hours=1)
    path = tmp_path / "dump.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-1h.csv", "\n".join(kline_lines(3, step)))
        archive.writestr("SOLUSDT-1h.csv", "\n".join(kline_lines(2, step, price=20)))
    source = CsvSource(path, timeframe="1h")
    assert len(source.fetch("SOLUSDT", *window())) == 2
    with pytest.raises(UnknownSymbolError, match="BTCUSDT"):
        source.fetch("ETHUSDT", *window())


def test_microsecond_open_times(tmp_path: Path) -> None:
    lines = kline_lines(4, pd.Timedelta(hours=1), unit_per_ms=1000)
    bars = CsvSource(write(tmp_path / "BTCUSDT-1h-2025-01.csv", lines), timeframe="1h").fetch(
        "BTCUSDT", *window()
    )
    expected = pd.date_range(T0, periods=4, freq="1h", name="timestamp")
    assert bars.index.equals(expected)


def test_generic_csv_upper_case_iso_with_timezone(tmp_path: Path) -> None:
    lines = [
        "Date,OPEN,HIGH,LOW,CLOSE,VOLUME,Funding_Rate",
        "2024-01-01T02:00:00+02:00,10,11,9,10.5,100,0.0001",  # = 00:00 UTC
        "2024-01-01T03:00:00+02:00,10.5,12,10,11,120,",
    ]
    bars = CsvSource(write(tmp_path / "prices.csv", lines), timeframe="1h").fetch(
        "ANYTHING", *window()
    )
    assert list(bars.index) == [T0, T0 + pd.Timedelta(hours=1)]
    assert bars["close"].tolist() == [10.5, 11.0]
    assert bars["funding_rate"].iloc[0] == pytest.approx(0.0001)
    assert np.isnan(bars["funding_rate"].iloc[1]) and bars["open_interest"].isna().all()


def test_naive_iso_strings_are_utc(tmp_path: Path) -> None:
    lines = ["timestamp,open,high,low,close,volume", "2024-01-01 01:00:00,1,2,0.5,1.5,3"]
    bars = CsvSource(write(tmp_path / "x.csv", lines), timeframe="1h").fetch("X", *window())
    assert bars.index[0] == T0 + pd.Timedelta(hours=1)


def test_epoch_seconds_with_symbol_column(tmp_path: Path) -> None:
    rows = ["time,Symbol,open,high,low,close,volume"]
    for i in range(3):
        secs = (T0 + pd.Timedelta(hours=i)).value // 10**9
        rows.append(f"{secs},BTCUSDT,{10 + i},{12 + i},{9 + i},{11 + i},1")
        rows.append(f"{secs},ETH/USDT,{1 + i},{2 + i},{0.5 + i},{1.5 + i},1")
    source = CsvSource(write(tmp_path / "all.csv", rows), timeframe="1h")
    btc = source.fetch("BTCUSDT", *window())
    eth = source.fetch("ETHUSDT", *window())
    assert btc["open"].tolist() == [10.0, 11.0, 12.0]
    assert eth["open"].tolist() == [1.0, 2.0, 3.0]
    assert btc.index[2] == T0 + pd.Timedelta(hours=2)
    with pytest.raises(UnknownSymbolError, match=r"available.*BTCUSDT.*ETH/USDT"):
        source.fetch("SOLUSDT", *window())


def test_resample_1m_to_15m_drops_and_reports_incomplete_bar(tmp_path: Path) -> None:
    lines = kline_lines(40, pd.Timedelta(minutes=1))  # 00:00..00:39: two full bars + 10 min
    source = CsvSource(write(tmp_path / "BTCUSDT-1m.csv", lines), timeframe="15m")
    bars = source.fetch("BTCUSDT", *window())
    assert list(bars.index) == [T0, T0 + pd.Timedelta(minutes=15)]
    first = bars.iloc[0]
    assert first["open"] == 100.0  # first sub-bar's open
    assert first["high"] == 114.0 + 2  # max over 15 sub-bars
    assert first["low"] == 99.0
    assert first["close"] == 115.0  # last sub-bar's close
    assert first["volume"] == sum(range(1, 16))
    report = source.last_report
    assert report["resampled"] and report["source_interval_seconds"] == 60
    assert report["incomplete_bars_dropped"] == 1
    assert report["incomplete_bar_times"] == [(T0 + pd.Timedelta(minutes=30)).isoformat()]


def test_resample_gap_inside_a_bar_drops_it(tmp_path: Path) -> None:
    lines = kline_lines(30, pd.Timedelta(minutes=1))
    del lines[20]  # 00:20 missing -> 00:15 bar incomplete
    source = CsvSource(write(tmp_path / "BTCUSDT-1m.csv", lines), timeframe="15m")
    assert list(source.fetch("BTCUSDT", *window()).index) == [T0]
    assert source.last_report["incomplete_bars_dropped"] == 1


def test_resample_keeps_auxiliaries_last(tmp_path: Path) -> None:
    rows = ["timestamp,open,high,low,close,volume,open_interest"]
    for i in range(4):
        stamp = (T0 + pd.Timedelta(minutes=30 * i)).isoformat()
        rows.append(f"{stamp},1,2,0.5,1.5,1,{1000 + i}")
    bars = CsvSource(write(tmp_path / "oi.csv", rows), timeframe="1h").fetch("X", *window())
    assert bars["open_interest"].tolist() == [1001.0, 1003.0]
    assert bars["volume"].tolist() == [2.0, 2.0]


def test_malformed_sub_bar_spoils_its_resampled_bar(tmp_path: Path) -> None:
    lines = kline_lines(30, pd.Timedelta(minutes=1))
    fields = lines[3].split(",")
    fields[2] = "n/a"
    lines[3] = ",".join(fields)
    source = CsvSource(write(tmp_path / "BTCUSDT-1m.csv", lines), timeframe="15m")
    bars = source.fetch("BTCUSDT", *window())
    assert len(bars) == 2
    assert bars.iloc[0][["open", "high", "low", "close", "volume"]].isna().all()
    assert bars.iloc[1][["open", "close"]].notna().all()
    assert source.last_report["spoiled_bars"] == 1


def test_hourly_data_with_hourly_timeframe_is_not_resampled(tmp_path: Path) -> None:
    lines = kline_lines(6, pd.Timedelta(hours=1))
    source = CsvSource(write(tmp_path / "btcusdt_1h.csv", lines), timeframe="1h")
    bars = source.fetch("BTCUSDT", *window())
    assert len(bars) == 6 and not source.last_report["resampled"]
    assert source.last_report["incomplete_bars_dropped"] == 0


def test_coarser_than_target_cannot_be_upsampled(tmp_path: Path) -> None:
    lines = kline_lines(6, pd.Timedelta(hours=4))
    source = CsvSource(write(tmp_path / "BTCUSDT-4h.csv", lines), timeframe="1h")
    with pytest.raises(ValueError, match="upsampled"):
        source.fetch("BTCUSDT", *window())


def test_interval_not_dividing_timeframe_is_an_error(tmp_path: Path) -> None:
    lines = kline_lines(10, pd.Timedelta(minutes=7))
    source = CsvSource(write(tmp_path / "BTCUSDT-7m.csv", lines), timeframe="15m")
    with pytest.raises(ValueError, match="does not divide"):
        source.fetch("BTCUSDT", *window())


def test_malformed_numbers_are_kept_as_nan(tmp_path: Path) -> None:
    lines = kline_lines(4, pd.Timedelta(hours=1))
    fields = lines[1].split(",")
    fields[4] = "12..5"  # close
    lines[1] = ",".join(fields)
    lines[2] = lines[2] + ",extra,cells"  # wrong width: values cannot be trusted
    lines[3] = lines[3] + ",,"  # trailing empty cells are harmless
    source = CsvSource(write(tmp_path / "BTCUSDT.csv", lines), timeframe="1h")
    bars = source.fetch("BTCUSDT", *window())
    assert len(bars) == 4
    assert np.isnan(bars["close"].iloc[1]) and bars["open"].iloc[1] == 101.0
    assert bars.iloc[2][["open", "high", "low", "close", "volume"]].isna().all()
    assert bars.index[2] == T0 + pd.Timedelta(hours=2)
    assert source.last_report["malformed_rows"] == 1


def test_unparseable_timestamps_are_counted_not_placed(tmp_path: Path) -> None:
    lines = kline_lines(3, pd.Timedelta(hours=1))
    lines.insert(1, "yesterday,1,2,3,4,5,6,7,8,9,10,11")
    lines.append(",1,2,3,4,5,6,7,8,9,10,11")
    source = CsvSource(write(tmp_path / "BTCUSDT.csv", lines), timeframe="1h")
    bars = source.fetch("BTCUSDT", *window())
    assert len(bars) == 3
    report = source.last_report
    assert report["unparseable_timestamps"] == 2
    assert report["unparseable_rows"][0] == "yesterday,1,2,3,4,5,6,7,8,9,10,11"
    assert report["unparseable_locations"][0] == "BTCUSDT.csv:2"


def test_duplicates_are_kept_and_rows_sorted_stably(tmp_path: Path) -> None:
    lines = kline_lines(3, pd.Timedelta(hours=1))
    duplicate = lines[0].replace(",100.0,", ",999.0,", 1)
    lines = [lines[2], lines[0], lines[1], duplicate]
    bars = CsvSource(write(tmp_path / "BTCUSDT.csv", lines), timeframe="1h").fetch(
        "BTCUSDT", *window()
    )
    assert len(bars) == 4 and bars.index.is_monotonic_increasing
    assert bars.index.duplicated().sum() == 1
    assert bars["open"].iloc[:2].tolist() == [100.0, 999.0]  # file order among ties


def test_unknown_symbol_names_path_and_available(tmp_path: Path) -> None:
    write(tmp_path / "BTCUSDT-1h.csv", kline_lines(2, pd.Timedelta(hours=1)))
    write(tmp_path / "ETHUSDT-1h.csv", kline_lines(2, pd.Timedelta(hours=1)))
    with pytest.raises(UnknownSymbolError) as info:
        CsvSource(tmp_path, timeframe="1h").fetch("BTCUSD", *window())
    message = str(info.value)
    assert str(tmp_path) in message and "BTCUSDT" in message and "ETHUSDT" in message


def test_single_file_named_for_another_symbol_is_not_served(tmp_path: Path) -> None:
    path = write(tmp_path / "ETHUSDT-1h.csv", kline_lines(2, pd.Timedelta(hours=1)))
    with pytest.raises(UnknownSymbolError, match="ETHUSDT"):
        CsvSource(path, timeframe="1h").fetch("BTCUSDT", *window())


def test_missing_path_fails_early(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CsvSource(tmp_path / "nope.csv", timeframe="1h")


def test_window_is_start_inclusive_end_exclusive(tmp_path: Path) -> None:
    source = CsvSource(
        write(tmp_path / "BTCUSDT.csv", kline_lines(10, pd.Timedelta(hours=1))), timeframe="1h"
    )
    start, end = T0 + pd.Timedelta(hours=2), T0 + pd.Timedelta(hours=5)
    bars = source.fetch("BTCUSDT", start, end)
    assert list(bars.index) == list(pd.date_range(start, periods=3, freq="1h"))
    naive = source.fetch("BTCUSDT", pd.Timestamp("2024-01-01 02:00"), "2024-01-01 05:00")
    pd.testing.assert_frame_equal(naive, bars)


def test_empty_window_returns_empty_bars(tmp_path: Path) -> None:
    source = CsvSource(
        write(tmp_path / "BTCUSDT.csv", kline_lines(3, pd.Timedelta(hours=1))), timeframe="1h"
    )
    bars = source.fetch("BTCUSDT", T0 + pd.Timedelta(days=5), T0 + pd.Timedelta(days=6))
    pd.testing.assert_frame_equal(bars, empty_bars())
    assert source.last_report["rows"] == 0


def test_repeated_fetches_do_not_reread(tmp_path: Path) -> None:
    path = write(tmp_path / "BTCUSDT.csv", kline_lines(3, pd.Timedelta(hours=1)))
    source = CsvSource(path, timeframe="1h")
    first = source.fetch("BTCUSDT", *window())
    path.unlink()
    pd.testing.assert_frame_equal(source.fetch("BTCUSDT", *window()), first)


def test_output_passes_the_validator(tmp_path: Path) -> None:
    from levibot.data.validate import validate_bars

    lines = kline_lines(60, pd.Timedelta(minutes=1))
    bars = CsvSource(write(tmp_path / "BTCUSDT.csv", lines), timeframe="15m").fetch(
        "BTCUSDT", *window()
    )
    result = validate_bars(bars, timeframe="15m", source="csv")
    assert len(result.clean) == 4 and result.quarantine.empty


# --- day-first and month-first dates, decided for the whole column -------------------

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _day_first_extract(tmp_path: Path, rows: int = 24 * 40) -> tuple[Path, pd.DatetimeIndex]:
    """The real EURUSD ask bars written back in their source's day-first format
    (`01.02.2017 00:00:00.000`, gym-anytrading's FOREX_EURUSD_1H_ASK.csv)."""
    frame = pd.read_csv(FIXTURES / "EURUSD_1h.csv", nrows=rows)
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    frame["timestamp"] = stamps.dt.strftime("%d.%m.%Y %H:%M:%S.000")
    frame.columns = ["Time", "Open", "High", "Low", "Close", "Volume"]
    path = tmp_path / "EURUSD_1h.csv"
    frame.to_csv(path, index=False)
    return path, pd.DatetimeIndex(stamps)


def test_day_first_dates_are_read_day_first_for_the_whole_file(tmp_path: Path) -> None:
    """pandas' per-value parsing stored 01.02.2017 (1 Feb) as 2 January: 2,219 of 6,225
    rows of the real file landed on wrong dates, 354 of them on Saturdays."""
    path, truth = _day_first_extract(tmp_path)
    bars = CsvSource(path, timeframe="1h").fetch("EURUSD", truth[0], truth[-1] + pd.Timedelta("1h"))
    assert bars.index.equals(pd.DatetimeIndex(truth, name=bars.index.name))
    assert (bars.index.day_of_week != 5).all()  # FX has no Saturday bars


def test_month_first_dates_with_a_day_above_12_are_read_month_first(tmp_path: Path) -> None:
    lines = ["date,open,high,low,close,volume"] + [
        f"01/{d:02d}/2024 00:00,1,2,0.5,1.5,3" for d in range(1, 20)
    ]
    bars = CsvSource(write(tmp_path / "x.csv", lines), timeframe="1d").fetch(
        "X", T0, T0 + pd.Timedelta(days=30)
    )
    assert list(bars.index) == list(pd.date_range(T0, periods=19, freq="1D"))


def test_a_short_ambiguous_file_is_read_by_its_regular_spacing(tmp_path: Path) -> None:
    lines = ["date,open,high,low,close,volume"] + [
        f"{d:02d}.01.2024 00:00,1,2,0.5,1.5,3" for d in range(1, 6)
    ]  # day-first: 1..5 Jan daily; month-first would be 1 Jan, 1 Feb, ... monthly
    bars = CsvSource(write(tmp_path / "x.csv", lines), timeframe="1d").fetch(
        "X", T0, T0 + pd.Timedelta(days=10)
    )
    assert list(bars.index) == list(pd.date_range(T0, periods=5, freq="1D"))


@pytest.mark.parametrize(
    "dates",
    [["01.02.2024", "02.01.2024"],  # both orders put two rows in time order
     ["13.02.2024", "02.13.2024"]],  # day-first and month-first in one file
)  # fmt: skip
def test_an_undecidable_date_order_is_refused_naming_the_setting(tmp_path: Path, dates) -> None:
    lines = ["date,open,high,low,close,volume"] + [f"{d},1,2,0.5,1.5,3" for d in dates]
    source = CsvSource(write(tmp_path / "x.csv", lines), timeframe="1d")
    with pytest.raises(ValueError, match="timestamp_format") as caught:
        source.fetch("X", T0, T0 + pd.Timedelta(days=60))
    assert "x.csv" in str(caught.value)


def test_timestamp_format_says_the_order_outright(tmp_path: Path) -> None:
    lines = ["date,open,high,low,close,volume"] + [
        f"01.02.2024 {h:02d}:00,1,2,0.5,1.5,3" for h in range(3)
    ]  # one date: both orders read the rows equally well
    path = write(tmp_path / "x.csv", lines)
    with pytest.raises(ValueError, match="timestamp_format"):
        CsvSource(path, timeframe="1h").fetch("X", T0, T0 + pd.Timedelta(days=60))
    source = CsvSource(path, timeframe="1h", timestamp_format="%m.%d.%Y %H:%M")
    bars = source.fetch("X", T0, T0 + pd.Timedelta(days=60))
    assert bars.index[0] == T0 + pd.Timedelta(days=1) and len(bars) == 3  # 2 January


def test_an_unnamed_first_column_is_the_timestamp(tmp_path: Path) -> None:
    """pandas' default to_csv writes the time index as an unnamed first column."""
    frame = pd.DataFrame(
        {"Open": [1.0, 1.1], "High": [2.0, 2.1], "Low": [0.5, 0.6], "Close": [1.5, 1.6],
         "Volume": [3, 4]},
        index=pd.date_range("2024-01-01", periods=2, freq="1D"),
    )  # fmt: skip
    frame.to_csv(tmp_path / "GOOG.csv")
    bars = CsvSource(tmp_path / "GOOG.csv", timeframe="1d").fetch(
        "GOOG", T0, T0 + pd.Timedelta(days=5)
    )
    assert list(bars.index) == [T0, T0 + pd.Timedelta(days=1)]


def test_a_header_without_a_timestamp_says_how_to_fix_it(tmp_path: Path) -> None:
    lines = ["when,open,high,low,close,volume", "2024-01-01,1,2,0.5,1.5,3"]
    with pytest.raises(ValueError, match="rename the columns"):
        CsvSource(write(tmp_path / "x.csv", lines), timeframe="1d").fetch("X", *window())


def test_coverage_gives_the_first_and_last_bar(tmp_path: Path) -> None:
    path, truth = _day_first_extract(tmp_path, rows=48)
    assert CsvSource(path, timeframe="1h").coverage("EURUSD") == (truth[0], truth[-1])


@pytest.mark.parametrize(
    ("name", "timeframe", "first", "rows"),
    [("GOOG_1d_backtesting.csv", "1d", "2004-08-19", 60),
     ("EURUSD_1h_backtesting.csv", "1h", "2017-04-19 09:00", 60),
     ("EURUSD_1h_ASK_gym_anytrading.csv", "1h", "2017-01-01 22:00", 400)],
)  # fmt: skip
def test_the_real_files_layouts_ingest_with_their_dates_right(name, timeframe, first, rows):
    path = FIXTURES / "raw" / name
    source = CsvSource(path, timeframe=timeframe)
    symbol = name.split("_")[0]  # files named for a symbol serve only that symbol
    start, last = source.coverage(symbol)
    bars = source.fetch(symbol, start, last + pd.Timedelta(hours=24))
    assert start == pd.Timestamp(first, tz="UTC") and len(bars) == rows
    assert bars.index.is_monotonic_increasing and (bars.index.day_of_week != 5).all()
    assert source.last_report["unparseable_timestamps"] == 0


@pytest.mark.parametrize(
    ("texts", "expected"),
    [(["01.02.2017 00:00:00.123", "13.02.2017 01:00:00.5"],
      ["2017-02-01 00:00:00.123", "2017-02-13 01:00:00.5"]),  # any fraction, not only .000
     (["05/02/2017 12:00 AM", "13/02/2017 01:00 PM"], ["2017-02-05 00:00", "2017-02-13 13:00"]),
     (["05.02.2017 00:00:00,250", "13.02.2017 00:00:00,000"],
      ["2017-02-05 00:00:00.25", "2017-02-13 00:00"]),  # comma before the milliseconds
     (["05.02.2017 00:00 UTC", "13.02.2017 01:00 +01:00"],
      ["2017-02-05 00:00", "2017-02-13 00:00"])],
)  # fmt: skip
def test_numeric_date_variants_keep_one_order(texts, expected):
    from levibot.data.sources.timestamps import parse_timestamps

    got = parse_timestamps(texts)
    assert list(got) == [pd.Timestamp(e, tz="UTC") for e in expected]


def test_a_format_is_used_for_all_digit_dates_too():
    from levibot.data.sources.timestamps import parse_timestamps

    got = parse_timestamps(["20170102", "20170103"], timestamp_format="%Y%m%d")
    assert list(got) == [pd.Timestamp("2017-01-02", tz="UTC"), pd.Timestamp("2017-01-03", tz="UTC")]


def test_a_stray_row_is_one_bad_row_not_a_refused_file():
    """One impossible date among day-first rows, or one numeric date among ISO rows, is an
    unparseable row (counted against max_bad_fraction), not a refusal of every row."""
    from levibot.data.sources.timestamps import parse_timestamps

    day_first = [f"{d:02d}.02.2017 00:00" for d in range(1, 28)] + ["31.13.2017 00:00"]
    got = parse_timestamps(day_first)
    assert got.isna().sum() == 1 and got[12] == pd.Timestamp("2017-02-13", tz="UTC")
    iso = [f"2017-01-{d:02d} 00:00" for d in range(1, 31)] * 2 + ["05/06/2017 10:00"]
    got = parse_timestamps(iso)
    assert got.isna().sum() == 1 and got[0] == pd.Timestamp("2017-01-01", tz="UTC")


def test_an_unnamed_column_of_row_numbers_is_not_taken_for_times(tmp_path: Path) -> None:
    """`to_csv` of a frame without a time index writes 0, 1, 2, ... there: 1970 seconds."""
    frame = pd.DataFrame({"Gmt time": ["01.01.2017 00:00", "01.01.2017 01:00"],
                          "Open": [1, 1], "High": [2, 2], "Low": [0.5, 0.5], "Close": [1.5, 1.5],
                          "Volume": [3, 3]})  # fmt: skip
    frame.to_csv(tmp_path / "X.csv")
    with pytest.raises(ValueError, match="row numbers"):
        CsvSource(tmp_path / "X.csv", timeframe="1h").fetch("X", *window())
