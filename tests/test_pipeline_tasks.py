"""The per-symbol fan-out: fetch tasks stage one symbol each, `ingest` merges them."""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd
import pytest
import yaml

from levibot.data.validate import DataValidationError
from levibot.ingest import common_window, merge_staged, run_ingest, stage_symbol
from levibot.pipeline_tasks import (
    FETCH_UPSTREAM,
    INVALID_SYMBOLS,
    fetch_symbol,
    ingest_from_upstream,
    load_staged,
    save_staged,
    symbol_grid,
)
from levibot.state.paths import Paths

ROOT = Path(__file__).resolve().parents[1]


def _products(folder: Path, symbol: str) -> dict[str, Path]:
    return {
        "bars": folder / f"{symbol}.parquet",
        "quarantine": folder / f"{symbol}_quarantine.parquet",
        "report": folder / f"{symbol}.json",
    }


def _pipeline_task(name: str) -> dict:
    spec = yaml.safe_load((ROOT / "pipeline.yaml").read_text())
    return next(task for task in spec["tasks"] if task["name"] == name)


def test_staged_symbol_survives_the_round_trip_with_an_empty_quarantine(settings, tmp_path):
    staged = stage_symbol(settings, "BTCUSDT")
    assert len(staged.quarantine) == 0 and len(staged.clean) == 5 * 96
    products = _products(tmp_path / "staging", "BTCUSDT")
    save_staged(staged, products)
    back = load_staged(products)
    pd.testing.assert_frame_equal(back.clean, staged.clean, check_freq=False)
    pd.testing.assert_frame_equal(
        back.quarantine, staged.quarantine, check_index_type=False, check_freq=False
    )
    assert back.report() == staged.report()


def test_missing_product_key_is_named(settings, tmp_path):
    products = _products(tmp_path, "BTCUSDT")
    del products["quarantine"]
    with pytest.raises(ValueError, match="missing \\['quarantine'\\]"):
        save_staged(stage_symbol(settings, "BTCUSDT"), products)


def test_merging_staged_symbols_stores_what_a_single_ingest_stores(settings, tmp_path):
    """Fan-out then merge == the one-process ingest, bar for bar."""
    staged = [stage_symbol(settings, symbol) for symbol in settings.symbols]
    merge_staged(settings, staged)
    store = Paths.of(settings).store()
    fanned = {symbol: store.read(symbol) for symbol in settings.symbols}
    other = settings.model_copy(update={"data_dir": tmp_path / "single"})
    run_ingest(other)
    single = Paths.of(other).store()
    for symbol in settings.symbols:
        pd.testing.assert_frame_equal(fanned[symbol], single.read(symbol))


BAR = pd.Timedelta(minutes=15)


def _staged_one_bar_later(settings, symbol):
    """`symbol` staged by a task that ran just after the next bar closed."""
    later = stage_symbol(settings.model_copy(update={"end": settings.end + BAR}), symbol)
    assert later.window == (settings.end - pd.Timedelta(days=5) + BAR, settings.end + BAR)
    return later


def test_symbols_staged_across_a_bar_close_are_cut_to_their_common_window(settings):
    """A live fetch task can finish a bar later than another: every symbol must end on the
    same bar, so the later symbol's extra bar is left out of the store and its counts."""
    btc = stage_symbol(settings, "BTCUSDT")
    eth = _staged_one_bar_later(settings, "ETHUSDT")
    assert common_window([btc, eth], BAR) == (eth.window[0], btc.window[1])
    result = merge_staged(settings, [btc, eth])
    store = Paths.of(settings).store()
    for symbol in settings.symbols:
        stored = store.read(symbol)
        assert stored.index[0] == eth.window[0] and stored.index[-1] == btc.window[1] - BAR
        assert len(stored) == 5 * 96 - 1
    assert result.window == (eth.window[0], btc.window[1])
    quality = result.quality.set_index("symbol")
    assert (quality["rows_clean"] == quality["rows_stored"]).all()
    assert (quality["last_bar"] == btc.window[1] - BAR).all()


def test_quarantined_rows_outside_the_common_window_are_not_saved(settings):
    btc = stage_symbol(settings, "BTCUSDT")
    eth = _staged_one_bar_later(settings, "ETHUSDT")
    inside, outside = eth.clean.iloc[[10]], eth.clean.iloc[[-1]]  # -1: the extra bar
    eth.quarantine = pd.concat([inside, outside]).assign(reason="test")
    merge_staged(settings, [btc, eth])
    saved = pd.read_csv(Paths.of(settings).quarantine("ETHUSDT"), index_col=0, parse_dates=[0])
    assert list(saved.index) == list(inside.index)


def test_products_left_from_an_earlier_build_are_refused_not_silently_cut(settings):
    """Ploomber skips a fetch task whose parameters match an earlier build's: its staged
    bars can end hours before the others', and cutting every symbol back to them would
    drop the fresh bars without a word."""
    btc = stage_symbol(settings, "BTCUSDT")
    old_eth = stage_symbol(settings.model_copy(update={"end": settings.end - 5 * BAR}), "ETHUSDT")
    with pytest.raises(DataValidationError, match=r"earlier build: ETHUSDT .*--force"):
        merge_staged(settings, [btc, old_eth])
    assert not Paths.of(settings).manifest.exists()  # nothing written


def test_disjoint_windows_are_refused_with_the_fix(settings):
    btc, eth = (stage_symbol(settings, symbol) for symbol in settings.symbols)
    eth.window = (btc.window[1], btc.window[1] + pd.Timedelta(days=1))
    with pytest.raises(DataValidationError, match=r"windows disagree.*ploomber build --force"):
        merge_staged(settings, [btc, eth])


def test_symbols_from_different_sources_are_refused(settings):
    btc, eth = (stage_symbol(settings, symbol) for symbol in settings.symbols)
    eth.source = "csv"
    with pytest.raises(DataValidationError, match=r"different sources \['csv', 'synthetic'\]"):
        merge_staged(settings, [btc, eth])


def test_a_symbol_without_a_fetch_is_named(settings):
    with pytest.raises(DataValidationError, match="missing \\['ETHUSDT'\\]"):
        merge_staged(settings, [stage_symbol(settings, "BTCUSDT")])
    btc = stage_symbol(settings, "BTCUSDT")
    with pytest.raises(DataValidationError, match="staged once"):
        merge_staged(settings, [btc, btc, stage_symbol(settings, "ETHUSDT")])


def test_ingest_without_upstream_fetches_itself(settings):
    """papermill alone (no fetch tasks): the notebook still ingests every symbol."""
    result = ingest_from_upstream(settings, None, project_root=settings.data_dir.parent)
    assert set(result.features) == set(settings.symbols)
    assert Paths.of(settings).manifest.exists()


def test_ingest_merges_the_fetch_products_it_is_given(settings, tmp_path):
    folder = tmp_path / "staging"
    upstream = {FETCH_UPSTREAM: {}}
    for symbol in settings.symbols:
        products = _products(folder, symbol)
        save_staged(stage_symbol(settings, symbol), products)
        upstream[FETCH_UPSTREAM][f"fetch-{symbol}"] = products
    result = ingest_from_upstream(settings, upstream, project_root=settings.data_dir.parent)
    assert result.quality.set_index("symbol").loc["ETHUSDT", "rows_clean"] == 5 * 96


def test_fetch_task_takes_exactly_the_ingest_parameters():
    """Ploomber checks a function's signature against its params: the fetch task and the
    ingest notebook share one anchor in pipeline.yaml, and the function must accept it."""
    fetch = _pipeline_task("fetch-[[symbol]]")
    accepted = set(inspect.signature(fetch_symbol).parameters) - {"product", "symbol"}
    assert accepted == set(fetch["params"])
    assert _pipeline_task("ingest")["params"] == fetch["params"]


def test_fetch_symbol_writes_its_three_products(settings, tmp_path):
    products = _products(tmp_path / "staging", "ETHUSDT")
    params = set(inspect.signature(fetch_symbol).parameters) - {"product", "symbol"}
    values = {name: getattr(settings, name, None) for name in params}
    values.update(
        project_root=str(settings.data_dir.parent),
        symbols=",".join(settings.symbols),
        end=settings.end.isoformat(),
        data_dir=str(settings.data_dir),
    )
    fetch_symbol(products, "ETHUSDT", **values)
    assert load_staged(products).symbol == "ETHUSDT"
    assert not Paths.of(settings).store().symbols()  # staging only: the store is untouched


def test_symbol_grid_is_the_parsed_symbols_setting():
    assert symbol_grid("BTCUSDT, ETHUSDT") == ["BTCUSDT", "ETHUSDT"]
    for invalid in (" , ", "btc-usd!", "BTCUSDT,BTCUSDT"):  # left to the on_render check
        assert symbol_grid(invalid) == [INVALID_SYMBOLS]
