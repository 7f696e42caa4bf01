"""Paper books act once per bar, price trades net of costs and live on disk."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pandas as pd
import pytest

from levibot.io import CorruptFileError
from levibot.online.paper import PaperBook
from levibot.policy import Policy

T0 = pd.Timestamp("2026-01-01 00:00", tz="UTC")
BAR = pd.Timedelta("15min")
POLICY = Policy(entry_threshold=0.6, exit_threshold=0.4, fee_bps=10, slippage_bps=5)
SYMBOL = "BTCUSDT"


def _bar(i: int) -> pd.Timestamp:
    return T0 + i * BAR


def _book(path: Path, **kwargs: object) -> PaperBook:
    return PaperBook(path, label="prod", clock=lambda: T0, **kwargs)  # type: ignore[arg-type]


def _act(book: PaperBook, i: int, signal: str, close: float = 100.0, **kwargs: object):
    return book.on_bar(SYMBOL, _bar(i), close, signal, policy=POLICY, model_id="m1", **kwargs)


def _entry_then_exit_in_process(path: str, barrier, results) -> None:
    book = PaperBook(path, label="prod")
    for i, signal in ((0, "ENTRY"), (1, "EXIT")):
        barrier.wait(timeout=60)  # all four act on the same bar at the same moment
        trade = book.on_bar(SYMBOL, _bar(i), 100.0, signal, policy=POLICY, model_id="m")
        results.put((signal, trade))


def test_trade_return_net_of_fees_by_hand(tmp_path: Path) -> None:
    book = _book(tmp_path / "prod.json", notional=1000.0, timeframe="15m")
    assert _act(book, 0, "ENTRY", close=100.0) is None
    assert book.positions()[SYMBOL]["entry_price"] == 100.0
    assert book.positions()[SYMBOL]["entry_cost"] == pytest.approx(0.0015)
    trade = _act(book, 3, "EXIT", close=110.0)
    # c = (10 + 5) / 1e4 = 0.0015; 110/100 * 0.9985**2 - 1 = 1.1 * 0.99700225 - 1
    assert trade is not None
    assert trade["return"] == pytest.approx(0.096702475, abs=1e-12)
    assert trade["pnl"] == pytest.approx(96.702475, abs=1e-9)
    assert trade["bars_held"] == 3
    assert {k: trade[k] for k in ("model", "model_id", "symbol", "entry_price", "exit_price")} == {
        "model": "prod",
        "model_id": "m1",
        "symbol": SYMBOL,
        "entry_price": 100.0,
        "exit_price": 110.0,
    }
    assert trade["entry_time"] == "2026-01-01T00:00:00+00:00"
    assert trade["exit_time"] == "2026-01-01T00:45:00+00:00"
    assert book.positions() == {}
    state = book.state()
    assert (state["entries"], state["closed_trades"]) == (1, 1)
    assert state["realized_pnl"] == pytest.approx(96.702475)


def test_without_timeframe_there_is_no_bars_held(tmp_path: Path) -> None:
    book = _book(tmp_path / "prod.json")
    _act(book, 0, "ENTRY", close=100.0)
    trade = _act(book, 1, "EXIT", close=99.0)
    assert trade is not None and "bars_held" not in trade
    assert trade["pnl"] == trade["return"] == pytest.approx(0.99 * 0.9985**2 - 1)


def test_acts_once_per_bar(tmp_path: Path) -> None:
    book = _book(tmp_path / "prod.json")
    for _ in range(100):
        _act(book, 5, "ENTRY")
    assert book.state()["entries"] == 1
    assert _act(book, 5, "EXIT") is None  # same bar again: no-op even with another signal
    assert _act(book, 4, "EXIT") is None  # an older, late bar never re-acts
    assert SYMBOL in book.positions()
    assert book.last_bar(SYMBOL) == _bar(5)
    assert _act(book, 6, "EXIT") is not None
    assert book.on_bar("ETHUSDT", _bar(6), 10.0, "ENTRY", policy=POLICY, model_id="m1") is None
    assert set(book.positions()) == {"ETHUSDT"}  # symbols have their own last bar


def test_hold_still_uses_up_the_bar(tmp_path: Path) -> None:
    book = _book(tmp_path / "prod.json")
    _act(book, 0, "HOLD")
    _act(book, 0, "ENTRY")
    assert book.positions() == {}
    _act(book, 1, "ENTRY")
    assert SYMBOL in book.positions()


def test_exit_while_flat_and_entry_while_long_are_no_ops(tmp_path: Path) -> None:
    book = _book(tmp_path / "prod.json")
    assert _act(book, 0, "EXIT") is None
    assert book.positions() == {}
    _act(book, 1, "ENTRY", close=100.0)
    assert _act(book, 2, "ENTRY", close=120.0) is None
    assert book.positions()[SYMBOL]["entry_price"] == 100.0
    assert book.state()["entries"] == 1


def test_allow_entry_false_blocks_entries_not_exits(tmp_path: Path) -> None:
    book = _book(tmp_path / "prod.json")
    _act(book, 0, "ENTRY", allow_entry=False)
    assert book.positions() == {}
    _act(book, 1, "ENTRY")
    assert _act(book, 2, "EXIT", allow_entry=False) is not None
    assert book.positions() == {}


def test_positions_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "paper" / "prod.json"
    _act(_book(path), 0, "ENTRY", close=100.0)
    restarted = _book(path)
    assert restarted.positions()[SYMBOL]["entry_price"] == 100.0
    assert _act(restarted, 0, "EXIT") is None  # it also remembers the last bar
    trade = _act(restarted, 1, "EXIT", close=101.0)
    assert trade is not None and trade["entry_price"] == 100.0


def test_missing_file_is_an_empty_book(tmp_path: Path) -> None:
    book = _book(tmp_path / "prod.json")
    assert book.positions() == {}
    assert book.last_bar(SYMBOL) is None
    assert book.state()["label"] == "prod"
    assert not (tmp_path / "prod.json").exists()  # reading does not create it


def test_bad_close_raises_and_does_not_use_up_the_bar(tmp_path: Path) -> None:
    book = _book(tmp_path / "prod.json")
    for close in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="close"):
            _act(book, 0, "ENTRY", close=close)
    _act(book, 0, "ENTRY")
    assert SYMBOL in book.positions()


@pytest.mark.parametrize(
    "content",
    ['{"label": "prod", "positions": {', "[]", '{"label": "prod", "positions": {"X": 1}}'],
)
def test_corrupt_file_raises_and_is_left_alone(tmp_path: Path, content: str) -> None:
    path = tmp_path / "prod.json"
    path.write_text(content)
    book = _book(path)
    with pytest.raises(CorruptFileError, match=r"prod\.json"):
        book.positions()
    with pytest.raises(CorruptFileError, match=r"prod\.json"):
        _act(book, 0, "ENTRY")
    assert path.read_text() == content


def test_a_book_of_another_label_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prod.json"
    _act(_book(path), 0, "ENTRY")
    with pytest.raises(CorruptFileError, match="'prod', not 'candidate'"):
        PaperBook(path, label="candidate").positions()


def test_book_file_is_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "prod.json"
    _act(_book(path), 0, "ENTRY", close=100.0)
    data = json.loads(path.read_text())
    assert data["last_bar"] == {SYMBOL: "2026-01-01T00:00:00Z"}
    assert data["positions"][SYMBOL]["model_id"] == "m1"


def test_processes_on_the_same_bar_act_once(tmp_path: Path) -> None:
    path = tmp_path / "prod.json"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_entry_then_exit_in_process, args=(str(path), barrier, results))
        for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in range(8)]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert [t for s, t in outcomes if s == "ENTRY"] == [None] * 4
    trades = [t for s, t in outcomes if s == "EXIT" and t is not None]
    assert len(trades) == 1 and trades[0]["model"] == "prod"
    state = _book(path).state()
    assert (state["entries"], state["closed_trades"], state["positions"]) == (1, 1, {})


class _Crash(Exception):
    """A process dying at a chosen point."""


def _trade_log(tmp_path: Path):
    from levibot.online.shadow_log import ShadowLog

    return ShadowLog(tmp_path / "logs", clock=lambda: T0)


def test_a_crash_before_the_trade_is_logged_loses_no_trade(tmp_path: Path) -> None:
    """The trade used to be logged after the book was saved: a crash in between lost it."""
    log, book = _trade_log(tmp_path), _book(tmp_path / "prod.json")
    _act(book, 0, "ENTRY")

    def die(_: dict) -> None:
        raise _Crash

    with pytest.raises(_Crash):
        _act(book, 1, "EXIT", close=105.0, record_trade=die, trade_recorded=log.has_trade)
    assert book.positions() == {} and log.trades().empty  # closed on disk, not yet logged
    _act(book, 2, "HOLD", record_trade=log.log_trade, trade_recorded=log.has_trade)
    trades = log.trades()
    assert len(trades) == 1 and trades["exit_price"].iloc[0] == 105.0
    assert book.state()["pending_trades"] == []


def test_a_crash_after_the_trade_is_logged_does_not_log_it_twice(tmp_path: Path) -> None:
    log, book = _trade_log(tmp_path), _book(tmp_path / "prod.json")
    _act(book, 0, "ENTRY")

    def log_then_die(trade: dict) -> None:
        log.log_trade(trade)
        raise _Crash

    with pytest.raises(_Crash):
        _act(book, 1, "EXIT", record_trade=log_then_die, trade_recorded=log.has_trade)
    assert len(book.state()["pending_trades"]) == 1  # the book does not know it was logged
    _act(book, 2, "HOLD", record_trade=log.log_trade, trade_recorded=log.has_trade)
    _act(book, 3, "HOLD", record_trade=log.log_trade, trade_recorded=log.has_trade)
    assert len(log.trades()) == 1 and book.state()["pending_trades"] == []


def test_trades_carry_an_id_unique_per_book_symbol_and_exit_bar(tmp_path: Path) -> None:
    book = _book(tmp_path / "prod.json")
    _act(book, 0, "ENTRY")
    first = _act(book, 1, "EXIT")
    _act(book, 2, "ENTRY")
    second = _act(book, 3, "EXIT")
    assert first["trade_id"] != second["trade_id"]
    assert first["trade_id"] == f"prod|{SYMBOL}|{_bar(1).isoformat()}"
