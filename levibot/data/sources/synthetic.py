"""A seeded, deterministic multi-asset market: BTCUSDT / ETHUSDT / SOLUSDT plus alts.

Why it looks the way it does: the default pipeline must run offline yet give models
something real to find and the marathon something real to catch. Stylised facts:

* stochastic log-volatility (AR(1), half-life ~1.5 days) -> volatility clustering;
* Student-t(4) shocks -> fat tails;
* a market regime (trend / range / high-vol) switching at random times, shared by
  all assets; in trend regimes returns carry momentum and a drift, in range regimes
  they mean-revert -- the weak predictable component, which changes with the regime;
* order-book imbalance and news sentiment lead the next bars' returns a little;
* alts follow BTC partly with a one-bar lag (BTC leads);
* funding follows the recent premium (past returns plus noise) and open interest
  follows past returns, so neither reveals the hidden regime;
* intraday volume (and volatility) seasonality peaking in US hours.

The predictable part is sized to what real 15m crypto bars show: every feature's
information coefficient (rank correlation with the next bar's return) is at most a few
hundredths, the strongest around 0.02-0.03 (`tests/data/sources` measures it on a long
sample). `edge` scales every predictive coefficient (momentum / reversion, order flow,
news, the BTC lead; not the regime's drift, a property of the market; 0 = nothing to
find); `edge_after` from `edge_change` on changes it, so a release trained before the
change loses (or gains) its edge at a known time: scenarios with a known right answer.

Every random draw comes from a generator keyed by (seed, stream, day), and every
recursion is a causal filter started at a fixed epoch, so a bar depends only on the
seed, the drift settings and draws up to that bar: any two fetches agree on the bars
they share, whatever windows they ask for.

The universe: BTCUSDT, ETHUSDT and SOLUSDT, then as many alts as a run asks for, named
``ALT001USDT`` .. ``ALT999USDT`` (`synthetic_universe(n)` lists the first n symbols), so
scaling benchmarks can ask for 100 symbols. An alt's constants (price level, volatility,
beta to BTC, volume) come from its number alone (`alt_spec`) and its draws from a stream
of its own, so an asset's bars depend only on the seed, the drift settings, its own
stream and BTC's: asking for more symbols, or the same ones in another order, leaves
every symbol's bars as they were (the three original assets bit-identical to a market
without alts). Only the requested symbols are simulated (plus BTC, which drives them).

Drift scenarios switch on at ``drift_start``: ``vol_shock`` (volatility x5, volume x2),
``trend_flip`` (momentum/reversion and the order-book/news effects change sign),
``feature_freeze`` (the auxiliary feeds get stuck at their last value).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from levibot.data.schema import INDEX_NAME, conform_bars, empty_bars
from levibot.symbols import UnknownSymbolError
from levibot.timeframe import timeframe_seconds, to_utc

SIM_EPOCH = pd.Timestamp("2024-01-01", tz="UTC")
DRIFT_SCENARIOS = ("none", "vol_shock", "trend_flip", "feature_freeze")
TREND, RANGE, HIGH_VOL = 0, 1, 2


@dataclass(frozen=True)
class AssetSpec:
    """Per-asset constants: starting price, volatility scale, beta to BTC, volume."""

    price0: float
    vol_scale: float
    beta: float
    volume0: float
    open_interest0: float


ASSETS: dict[str, AssetSpec] = {
    "BTCUSDT": AssetSpec(42_000.0, 1.0, 0.0, 350.0, 8.0e4),
    "ETHUSDT": AssetSpec(2_300.0, 1.25, 0.85, 4_000.0, 1.1e6),
    "SOLUSDT": AssetSpec(100.0, 1.8, 1.10, 60_000.0, 2.0e7),
}
LEAD = "BTCUSDT"  # the asset every other one follows (simulated first, without a BTC leg)
MAX_ALTS = 999
ALT_PATTERN = re.compile(r"^ALT(\d{3})USDT$")
ALT_STREAM_BASE = 1000  # alt k draws from stream 1000 + k: apart from 0 (market), 1..3
ALT_SPEC_KEY = 0xA175  # keys the generator of the alts' constants (with the alt's number)
BASE_VOL_15M = 0.0022  # per-bar sigma of BTC at 15m in a calm regime (~2% a day)
REGIME_VOL = np.array([1.0, 0.8, 2.4])  # trend, range, high-vol
REGIME_MOMENTUM = np.array([0.10, -0.10, 0.0])  # coefficient on the last 3 shocks' mean
REGIME_WEIGHTS = np.array([0.35, 0.45, 0.20])
BTC_LAG_SHARE = 0.03  # share of an alt's BTC exposure that arrives one bar late
TREND_DRIFT = 0.02  # per-bar drift in a trend regime, in units of sigma
ORDER_FLOW_LEAD = 0.04  # next-bar return per unit of order-book imbalance, in sigma
NEWS_LEAD = 0.10  # next-bar return per unit of confidence-weighted news impact, in sigma


def alt_symbol(number: int) -> str:
    """The name of alt `number` (1 -> ALT001USDT)."""
    if not 1 <= number <= MAX_ALTS:
        raise ValueError(f"alt numbers run from 1 to {MAX_ALTS}, got {number}")
    return f"ALT{number:03d}USDT"


def _alt_number(symbol: str) -> int | None:
    """k for ALTkkkUSDT with 1 <= k <= MAX_ALTS; None for any other name."""
    match = ALT_PATTERN.match(symbol) if isinstance(symbol, str) else None
    number = int(match.group(1)) if match else 0
    return number if number >= 1 else None


def is_synthetic_symbol(symbol: str) -> bool:
    """Whether the synthetic market has bars for `symbol`."""
    return symbol in ASSETS or _alt_number(symbol) is not None


def synthetic_universe(n: int) -> list[str]:
    """The first `n` symbols of the synthetic market: BTC, ETH, SOL, then ALT001USDT, ..."""
    if not 1 <= n <= len(ASSETS) + MAX_ALTS:
        raise ValueError(f"the synthetic market has 1 to {len(ASSETS) + MAX_ALTS} symbols, got {n}")
    core = list(ASSETS)[:n]
    return core + [alt_symbol(k) for k in range(1, n - len(core) + 1)]


def alt_spec(number: int) -> AssetSpec:
    """Alt `number`'s constants, from a generator keyed by the number alone (not the
    seed): ALT007USDT is the same kind of asset in every market, only its path differs.

    Ranges bracket ETH and SOL: prices 0.1 .. 1000 USDT, 1.3 .. 2.6x BTC's volatility,
    beta 0.6 .. 1.3, 2 .. 12 M USDT traded per 15m bar, 0.2 .. 2 G USDT open interest.
    """
    alt_symbol(number)  # range check
    rng = np.random.default_rng([ALT_SPEC_KEY, number])
    price0 = float(10.0 ** rng.uniform(-1.0, 3.0))
    return AssetSpec(
        price0=price0,
        vol_scale=float(rng.uniform(1.3, 2.6)),
        beta=float(rng.uniform(0.6, 1.3)),
        volume0=float(rng.uniform(2e6, 12e6) / price0),
        open_interest0=float(10.0 ** rng.uniform(8.3, 9.3) / price0),
    )


def _unknown_message(symbols: Sequence[str]) -> str:
    return (
        f"synthetic market has no {list(symbols)}; available: {', '.join(ASSETS)} "
        f"and {alt_symbol(1)} .. {alt_symbol(MAX_ALTS)} (see synthetic_universe)"
    )


def _draws(seed: int, stream: int, first_day: int, n_days: int, shape: tuple[int, int]):
    """Normal, uniform and t(4) draws for days [first_day, first_day + n_days)."""
    normal, uniform, student = [], [], []
    for day in range(first_day, first_day + n_days):
        rng = np.random.default_rng([seed, stream, day])
        normal.append(rng.standard_normal(shape))
        uniform.append(rng.random(shape))
        student.append(rng.standard_t(4, size=shape[1]) / np.sqrt(2.0))  # unit variance
    return (
        np.concatenate(normal, axis=1),
        np.concatenate(uniform, axis=1),
        np.concatenate(student),
    )


def _ar1(innovations: np.ndarray, phi: float) -> np.ndarray:
    """x_t = phi * x_{t-1} + e_t, started at zero (causal)."""
    return lfilter([1.0], [1.0, -phi], innovations)


def _lagged(values: np.ndarray, lag: int = 1) -> np.ndarray:
    """values shifted `lag` bars later, zero-filled at the start."""
    out = np.zeros_like(values)
    out[lag:] = values[:-lag]
    return out


def _freeze_from(values: np.ndarray, start: int) -> np.ndarray:
    """A stuck feed: every value from `start` on repeats the last one before it."""
    out = values.copy()
    if 0 < start < len(out):
        out[start:] = out[start - 1]
    return out


class SyntheticMarket:
    """The embedded default data source (see the module docstring)."""

    name = "synthetic"

    def __init__(
        self,
        *,
        seed: int = 7,
        timeframe: str = "15m",
        symbols: Sequence[str] | None = None,
        drift_scenario: str = "none",
        drift_start: pd.Timestamp | str | None = None,
        epoch: pd.Timestamp | str = SIM_EPOCH,
        edge: float = 1.0,
        edge_after: float | None = None,
        edge_change: pd.Timestamp | str | None = None,
    ) -> None:
        if drift_scenario not in DRIFT_SCENARIOS:
            raise ValueError(f"drift_scenario {drift_scenario!r} unknown; use {DRIFT_SCENARIOS}")
        if drift_scenario != "none" and drift_start is None:
            raise ValueError(f"drift scenario {drift_scenario!r} needs a drift_start time")
        unknown = sorted({s for s in symbols or () if not is_synthetic_symbol(s)})
        if unknown:
            raise UnknownSymbolError(_unknown_message(unknown))
        if not (np.isfinite(edge) and edge >= 0):
            raise ValueError(f"edge must be a non-negative number, got {edge}")
        if (edge_after is None) != (edge_change is None):
            raise ValueError("edge_after and edge_change go together (the new edge and its time)")
        if edge_after is not None and not (np.isfinite(edge_after) and edge_after >= 0):
            raise ValueError(f"edge_after must be a non-negative number, got {edge_after}")
        self.edge, self.edge_after = float(edge), edge_after
        self.edge_change = to_utc(edge_change) if edge_change is not None else None
        self.seed = int(seed)
        self.timeframe = timeframe
        self.bar_seconds = timeframe_seconds(timeframe)
        self.drift_scenario = drift_scenario
        self.drift_start = to_utc(drift_start) if drift_start is not None else None
        self.epoch = to_utc(epoch).floor("D")
        self._cache: dict[str, pd.DataFrame] = {}
        self._cached_days = 0
        self._shared: tuple | None = None  # (index, drift_at, market, BTC returns)

    @property
    def bars_per_day(self) -> int:
        return 86_400 // self.bar_seconds

    def fetch(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Bars with open time in [start, end)."""
        if not is_synthetic_symbol(symbol):
            raise UnknownSymbolError(_unknown_message([symbol]))
        start, end = to_utc(start), to_utc(end)
        if start < self.epoch:
            raise ValueError(
                f"synthetic market starts at {self.epoch.date()}; asked for bars from {start}"
            )
        if end <= start:
            return empty_bars()
        n_days = int(np.ceil((end - self.epoch) / pd.Timedelta(days=1)))
        if n_days > self._cached_days:  # a longer simulation: every asset is redone
            self._cache, self._shared, self._cached_days = {}, None, n_days
        frame = self._simulated(symbol)
        return frame.loc[(frame.index >= start) & (frame.index < end)].copy()

    def _simulated(self, symbol: str) -> pd.DataFrame:
        """`symbol`'s bars from the epoch for the cached number of days (simulated once)."""
        frame = self._cache.get(symbol)
        if frame is None:
            index, drift_at, market, btc_returns = self._shared_state()
            frame = self._cache.get(symbol)  # BTC is simulated with the shared state
            if frame is None:
                stream, spec = self._stream_and_spec(symbol)
                days = self._cached_days
                frame = conform_bars(
                    self._asset(stream, spec, days, index, market, btc_returns, drift_at)[0]
                )
                self._cache[symbol] = frame
        return frame

    def _shared_state(self) -> tuple:
        """What every asset of the simulation uses: the bar index, the drift's first bar,
        the market state and BTC's log returns (BTC's bars are cached on the way)."""
        if self._shared is None:
            n_days = self._cached_days
            index = pd.date_range(
                self.epoch,
                periods=n_days * self.bars_per_day,
                freq=pd.Timedelta(seconds=self.bar_seconds),
                name=INDEX_NAME,
            )
            drift_at = self._drift_index(index)
            market = self._market_state(n_days, index, drift_at)
            stream, spec = self._stream_and_spec(LEAD)
            frame, btc_returns = self._asset(stream, spec, n_days, index, market, None, drift_at)
            self._cache[LEAD] = conform_bars(frame)
            self._shared = (index, drift_at, market, btc_returns)
        return self._shared

    @staticmethod
    def _stream_and_spec(symbol: str) -> tuple[int, AssetSpec]:
        """The random stream and constants of an asset: 1..3 for the original three (their
        order in ASSETS, as before alts existed), ALT_STREAM_BASE + k for alt k."""
        if symbol in ASSETS:
            return list(ASSETS).index(symbol) + 1, ASSETS[symbol]
        number = _alt_number(symbol)
        if number is None:
            raise UnknownSymbolError(_unknown_message([symbol]))
        return ALT_STREAM_BASE + number, alt_spec(number)

    def _drift_index(self, index: pd.DatetimeIndex) -> int:
        """First bar index under drift (len(index) when there is none in range)."""
        if self.drift_scenario == "none" or self.drift_start is None:
            return len(index)
        return int(index.searchsorted(self.drift_start))

    def _market_state(self, n_days: int, index: pd.DatetimeIndex, drift_at: int) -> dict:
        """Regime, trend direction, log-volatility and seasonality shared by all assets."""
        normal, uniform, _ = _draws(self.seed, 0, 0, n_days, (4, self.bars_per_day))
        n = len(index)
        per_bar = self.bar_seconds / 900.0  # scale persistence so regimes last ~3 days
        switch = uniform[0] < min(1.0, per_bar / (96 * 3))
        switch[0] = True
        choice = np.searchsorted(np.cumsum(REGIME_WEIGHTS), uniform[1])
        direction = np.where(uniform[2] < 0.5, -1.0, 1.0)
        seg = np.cumsum(switch) - 1
        first_of_seg = np.flatnonzero(switch)
        regime = choice[first_of_seg][seg]
        trend_dir = direction[first_of_seg][seg]
        phi_h = 0.995**per_bar
        log_vol = _ar1(normal[0] * 0.35 * np.sqrt(1 - phi_h**2), phi_h)
        hour = index.hour.to_numpy() + index.minute.to_numpy() / 60.0
        season = 1.0 + 0.35 * np.sin(2 * np.pi * (hour - 8.0) / 24.0)
        flip = np.ones(n)
        vol_shock = np.ones(n)
        edge = np.full(n, self.edge)
        if self.edge_change is not None:
            edge[int(index.searchsorted(self.edge_change)) :] = self.edge_after
        if self.drift_scenario == "trend_flip":
            flip[drift_at:] = -1.0
        if self.drift_scenario == "vol_shock":
            vol_shock[drift_at:] = 5.0
        return {
            "regime": regime,
            "trend_dir": trend_dir * flip,
            "flip": flip,
            "log_vol": log_vol,
            "season": season,
            "vol_shock": vol_shock,
            "edge": edge,
        }

    def _asset(
        self,
        stream: int,
        spec: AssetSpec,
        n_days: int,
        index: pd.DatetimeIndex,
        market: dict,
        btc_returns: np.ndarray | None,
        drift_at: int,
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """One asset's bars and auxiliary series; returns (frame, log returns)."""
        normal, uniform, shocks = _draws(self.seed, stream, 0, n_days, (8, self.bars_per_day))
        regime, flip = market["regime"], market["flip"]
        scale = np.sqrt(self.bar_seconds / 900.0)
        idio_vol = _ar1(normal[0] * 0.2 * np.sqrt(1 - 0.99**2), 0.99)
        sigma = (
            BASE_VOL_15M
            * scale
            * spec.vol_scale
            * REGIME_VOL[regime]
            * np.exp(market["log_vol"] + idio_vol - 0.5 * (0.35**2 + 0.2**2))
            * np.sqrt(market["season"])
            * market["vol_shock"]
        )
        if btc_returns is not None:
            sigma = sigma * np.sqrt(1 - min(spec.beta, 0.9) ** 2 * 0.5)
        eps = sigma * shocks

        ob_imbalance = np.tanh(_ar1(normal[1] * 0.45, 0.7))
        events = uniform[0] < 0.004
        impact = _ar1(np.where(events, normal[2], 0.0), 0.9)
        confidence = np.clip(_ar1(np.where(events, 0.3 + 0.7 * uniform[1], 0.0), 0.9), 0.0, 1.0)
        faded = confidence < 1e-3  # the feed reports no news once an item has faded
        impact, confidence = np.where(faded, 0.0, impact), np.where(faded, 0.0, confidence)

        edge = market["edge"]
        past_shocks = (_lagged(eps, 1) + _lagged(eps, 2) + _lagged(eps, 3)) / 3.0
        momentum = edge * REGIME_MOMENTUM[regime] * flip * past_shocks
        drift = np.where(regime == TREND, TREND_DRIFT * sigma * market["trend_dir"], 0.0)
        order_flow = edge * ORDER_FLOW_LEAD * sigma * flip * _lagged(ob_imbalance)
        news = edge * NEWS_LEAD * sigma * flip * _lagged(impact * confidence)
        returns = momentum + drift + order_flow + news + eps
        if btc_returns is not None:
            lag = np.minimum(1.0, edge * BTC_LAG_SHARE)
            returns = returns + spec.beta * ((1 - lag) * btc_returns + lag * _lagged(btc_returns))

        close = spec.price0 * np.exp(np.cumsum(returns))
        open_ = np.concatenate([[spec.price0], close[:-1]])
        wick = 0.6 * sigma
        high = np.maximum(open_, close) * np.exp(np.abs(normal[3]) * wick)
        low = np.minimum(open_, close) * np.exp(-np.abs(normal[4]) * wick)
        volume = (
            spec.volume0
            * scale**2
            * market["season"]
            * np.exp(0.5 * market["log_vol"])
            * (1.0 + 1.5 * np.abs(shocks))
            * np.exp(0.3 * normal[5] - 0.045)
            * np.where(market["vol_shock"] > 1, 2.0, 1.0)
        )
        # funding tracks the perpetual's premium: recent (past) returns plus noise
        premium = _ar1(returns * 0.1, 0.9) / (BASE_VOL_15M * scale * spec.vol_scale)
        funding = 1e-4 + _ar1((1e-5 * premium + 2e-5 * normal[6]) * 0.1, 0.9)
        open_interest = spec.open_interest0 * np.exp(
            np.cumsum(0.002 * normal[7] * scale + 0.3 * returns)
        )
        aux = {
            "funding_rate": funding,
            "open_interest": open_interest,
            "ob_imbalance": ob_imbalance,
            "news_impact": impact,
            "news_confidence": confidence,
        }
        if self.drift_scenario == "feature_freeze":
            aux = {name: _freeze_from(values, drift_at) for name, values in aux.items()}
        frame = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": volume, **aux},
            index=index,
        )
        return frame, returns
