"""Paper books: the long/flat positions a model would hold if its signals were traded.

One book per model label ("prod", "candidate"), one JSON file each. Several server
processes share a book, so every change locks ``<file>.lock``, reloads the book from
disk, applies the change and saves it atomically: the state on disk is the truth and
survives restarts. A book acts at most once per (symbol, bar): the first call for a bar
decides, every later call for that bar or an older one is a no-op.

Costs: the cost rate of a leg is ``c = (fee_bps + slippage_bps) / 1e4``, charged once
when entering and once when exiting, like the backtest. A closed trade's net return is

    return = exit_price / entry_price * (1 - c_entry) * (1 - c_exit) - 1

which is ``exit / entry * (1 - c)**2 - 1`` when the policy did not change in between,
and ``pnl = return * notional``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from levibot.backtest import cost_rate
from levibot.io import (
    LOCK_TIMEOUT_SEC,
    CorruptFileError,
    UtcDatetime,
    file_lock,
    format_errors,
    read_json,
    write_json_atomic,
)
from levibot.policy import Policy
from levibot.timeframe import timeframe_seconds, to_utc, utc_now

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Position(_Strict):
    """An open long of one symbol."""

    model_id: str
    entry_time: UtcDatetime  # open time of the bar whose close we bought at
    entry_price: float = Field(gt=0)
    entry_cost: float = Field(ge=0, lt=1)  # cost rate of the entry leg
    opened_at: UtcDatetime  # clock time of the call that opened it


class Book(_Strict):
    """The whole file: open positions, the last bar acted on per symbol, running totals."""

    schema_version: Literal[1] = SCHEMA_VERSION
    label: str
    positions: dict[str, Position] = Field(default_factory=dict)
    last_bar: dict[str, UtcDatetime] = Field(default_factory=dict)
    last_action: dict[str, dict[str, Any]] = Field(default_factory=dict)
    entries: int = Field(default=0, ge=0)
    closed_trades: int = Field(default=0, ge=0)
    realized_pnl: float = 0.0
    updated_at: UtcDatetime | None = None
    pending_trades: list[dict[str, Any]] = Field(default_factory=list)


class PaperBook:
    """The paper book of one model label, persisted as JSON at `path`."""

    def __init__(
        self,
        path: Path | str,
        *,
        label: str,
        clock: Callable[[], pd.Timestamp] = utc_now,
        notional: float = 1.0,
        timeframe: str | None = None,
        lock_timeout: float = LOCK_TIMEOUT_SEC,
    ) -> None:
        if not label:
            raise ValueError("a paper book needs a label (e.g. 'prod', 'candidate')")
        if not (math.isfinite(notional) and notional > 0):
            raise ValueError(f"notional must be a positive number, got {notional}")
        self.path = Path(path)
        self.label = label
        self.clock = clock
        self.notional = float(notional)
        self.bar_seconds = None if timeframe is None else timeframe_seconds(timeframe)
        self.lock_timeout = lock_timeout

    # ------------------------------------------------------------------ reading

    def _load(self) -> Book:
        """The book on disk; missing is empty, corrupt raises CorruptFileError (never reset)."""
        try:
            data = read_json(self.path)
        except FileNotFoundError:
            return Book(label=self.label)
        except UnicodeDecodeError as exc:
            raise CorruptFileError(f"{self.path}: not valid UTF-8 JSON ({exc})") from exc
        try:
            book = Book.model_validate(data)
        except ValidationError as exc:
            problems = format_errors(exc, limit=5)
            raise CorruptFileError(f"{self.path}: not a valid paper book: {problems}") from exc
        if book.label != self.label:
            raise CorruptFileError(
                f"{self.path}: holds the paper book of {book.label!r}, not {self.label!r}"
            )
        return book

    def state(self) -> dict[str, Any]:
        """The whole book as JSON-ready data (positions, last bars, totals)."""
        return self._load().model_dump(mode="json")

    def positions(self) -> dict[str, dict[str, Any]]:
        """Open positions by symbol."""
        return {s: p.model_dump(mode="json") for s, p in self._load().positions.items()}

    def last_action(self, symbol: str) -> dict[str, Any] | None:
        """{"bar", "signal", "was_open"} of the last bar this book acted on for `symbol`."""
        return self._load().last_action.get(symbol)

    def last_bar(self, symbol: str) -> pd.Timestamp | None:
        """Open time of the last bar of `symbol` this book acted on."""
        last = self._load().last_bar.get(symbol)
        return None if last is None else to_utc(last)

    # ------------------------------------------------------------------ acting

    def on_bar(
        self,
        symbol: str,
        bar_time: pd.Timestamp,
        close: float,
        signal: str | Callable[[bool], str],
        *,
        policy: Policy,
        model_id: str,
        allow_entry: bool = True,
        record_trade: Callable[[dict[str, Any]], Any] | None = None,
        trade_recorded: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any] | None:
        """Apply `signal` at `close` of the bar opening at `bar_time`, once per bar.

        A bar at or before the last one acted on for `symbol` is a no-op (None).
        ENTRY while flat (and `allow_entry`) opens a long; EXIT while long closes it and
        returns the closed-trade record; anything else only marks the bar as done.
        `signal` may be a function of "is a position open?", called under the lock with
        the book's real state, so a decision never rests on another process's stale view.
        What was decided is kept as the symbol's `last_action` (see `last_action`).

        `record_trade` (the trade log's append) is called with a closed trade under the
        lock, exactly once even across a crash: the trade is first saved in the book as
        pending together with the position's removal, then recorded, then cleared; a book
        found with a pending trade records it first unless `trade_recorded(trade)` says
        the log already holds it (the crash came after the append).
        """
        close = float(close)
        if not (math.isfinite(close) and close > 0):
            raise ValueError(f"{symbol}: close must be a positive price, got {close}")
        bar = to_utc(bar_time)
        rate = cost_rate(policy.fee_bps, policy.slippage_bps)
        with file_lock(self.path, timeout=self.lock_timeout):
            book = self._load()
            if book.pending_trades and record_trade is not None:
                self._recover(book, record_trade, trade_recorded)
            last = book.last_bar.get(symbol)
            if last is not None and bar <= to_utc(last):
                return None
            now = to_utc(self.clock())
            book.last_bar[symbol] = bar.to_pydatetime()
            book.updated_at = now.to_pydatetime()
            trade = None
            position = book.positions.get(symbol)
            if callable(signal):
                signal = signal(position is not None)
            if signal == "ENTRY" and (position is not None or not allow_entry):
                signal = "HOLD"
            book.last_action[symbol] = {
                "bar": bar.isoformat(),
                "signal": signal,
                "was_open": position is not None,
            }
            if signal == "ENTRY":
                book.positions[symbol] = Position(
                    model_id=model_id,
                    entry_time=bar.to_pydatetime(),
                    entry_price=close,
                    entry_cost=rate,
                    opened_at=now.to_pydatetime(),
                )
                book.entries += 1
            elif signal == "EXIT" and position is not None:
                trade = self._close(position, symbol, bar, close, rate, model_id)
                del book.positions[symbol]
                book.closed_trades += 1
                book.realized_pnl += trade["pnl"]
                if record_trade is not None:
                    book.pending_trades.append(trade)
            write_json_atomic(self.path, book.model_dump(mode="json"))
            if trade is not None and record_trade is not None:
                record_trade(trade)
                book.pending_trades = [t for t in book.pending_trades if t is not trade]
                write_json_atomic(self.path, book.model_dump(mode="json"))
            return trade

    def _recover(
        self,
        book: Book,
        record_trade: Callable[[dict[str, Any]], Any],
        trade_recorded: Callable[[dict[str, Any]], bool] | None,
    ) -> None:
        """Record the trades a crashed writer saved as pending but may not have logged."""
        for trade in book.pending_trades:
            if trade_recorded is None or not trade_recorded(trade):
                record_trade(trade)
        book.pending_trades = []
        write_json_atomic(self.path, book.model_dump(mode="json"))

    def _close(
        self,
        position: Position,
        symbol: str,
        bar: pd.Timestamp,
        close: float,
        rate: float,
        model_id: str,
    ) -> dict[str, Any]:
        entry_time = to_utc(position.entry_time)
        net = close / position.entry_price * (1.0 - position.entry_cost) * (1.0 - rate) - 1.0
        trade: dict[str, Any] = {
            "trade_id": f"{self.label}|{symbol}|{bar.isoformat()}",
            "model": self.label,
            "model_id": position.model_id,
            "exit_model_id": model_id,
            "symbol": symbol,
            "entry_time": entry_time.isoformat(),
            "exit_time": bar.isoformat(),
            "entry_price": position.entry_price,
            "exit_price": close,
            "entry_cost": position.entry_cost,
            "exit_cost": rate,
            "return": net,
            "notional": self.notional,
            "pnl": net * self.notional,
        }
        if self.bar_seconds is not None:
            trade["bars_held"] = round((bar - entry_time).total_seconds() / self.bar_seconds)
        return trade
