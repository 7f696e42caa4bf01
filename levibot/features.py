"""The model's features and labels -- one module, pure and strictly causal.

Every feature at bar t uses bars up to and including t only (rolling windows and
``ewm(adjust=False)`` look backwards), so it is known at t's close. Labels look
forward and are therefore NaN for the last ``horizon`` bars. Price features are
scale-free (returns, ratios to close), so one model can serve BTC at 100k and SOL
at 150. The same functions build training data and the server's live rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

FEATURES = [
    "ret_1",
    "ret_3",
    "ret_6",
    "rsi_14",
    "ema_20",
    "ema_50",
    "ema_200",
    "bbp",
    "atr_14",
    "vol_14",
    "zscore_20",
    "regime_trend",
    "regime_vol",
    "fund_rate",
    "oi_chg_3",
    "ob_imb",
    "snews_impact",
    "snews_conf",
]
CROSS_ASSET_FEATURES = ["btc_ret_1", "btc_rel_ret_6"]
LEAD_SYMBOL = "BTCUSDT"
LABEL_RETURN = "fwd_ret"
LABEL_DIRECTION = "label_direction"
REGIME_VOL_WINDOW = 96 * 7  # bars in the slow volatility baseline (a week of 15m bars)


def _wilder(series: pd.Series, span: int) -> pd.Series:
    """Wilder's smoothing (the RSI/ATR convention), causal."""
    return series.ewm(alpha=1.0 / span, adjust=False, min_periods=span).mean()


def _ema(series: pd.Series, span: int) -> pd.Series:
    return series.ewm(span=span, adjust=False, min_periods=span).mean()


def rsi(close: pd.Series, span: int = 14) -> pd.Series:
    """Relative strength index in [0, 100]."""
    change = close.diff()
    gain = _wilder(change.clip(lower=0), span)
    loss = _wilder(-change.clip(upper=0), span)
    total = gain + loss
    return (100.0 * gain / total).where(total > 0, 50.0).where(gain.notna())


def average_true_range(bars: pd.DataFrame, span: int = 14) -> pd.Series:
    """ATR in price units (Wilder)."""
    prev_close = bars["close"].shift(1)
    true_range = pd.concat(
        [
            bars["high"] - bars["low"],
            (bars["high"] - prev_close).abs(),
            (bars["low"] - prev_close).abs(),
        ],
        axis=1,
    ).max(axis=1, skipna=False)
    return _wilder(true_range, span)


def compute_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The 18 model features for one symbol's bar frame (same index).

    Auxiliary series that a source does not have stay NaN here; LightGBM and the
    transformer's normaliser handle NaN explicitly rather than trusting fake zeros.
    """
    close = bars["close"]
    log_close = np.log(close)
    ret_1 = log_close.diff(1)
    mean_20 = close.rolling(20, min_periods=20).mean()
    std_20 = close.rolling(20, min_periods=20).std(ddof=0)
    ema_20, ema_50 = _ema(close, 20), _ema(close, 50)
    atr = average_true_range(bars)
    vol_14 = ret_1.rolling(14, min_periods=14).std()
    vol_baseline = vol_14.rolling(REGIME_VOL_WINDOW, min_periods=96).mean()
    band = (4.0 * std_20).where(std_20 > 0)
    features = pd.DataFrame(
        {
            "ret_1": ret_1,
            "ret_3": log_close.diff(3),
            "ret_6": log_close.diff(6),
            "rsi_14": rsi(close),
            "ema_20": close / ema_20 - 1.0,
            "ema_50": close / ema_50 - 1.0,
            "ema_200": close / _ema(close, 200) - 1.0,
            "bbp": (close - (mean_20 - 2.0 * std_20)) / band,
            "atr_14": atr / close,
            "vol_14": vol_14,
            "zscore_20": (close - mean_20) / std_20.where(std_20 > 0),
            "regime_trend": np.tanh((ema_20 - ema_50) / atr.where(atr > 0)),
            "regime_vol": vol_14 / vol_baseline.where(vol_baseline > 0),
            "fund_rate": bars["funding_rate"],
            "oi_chg_3": np.log(bars["open_interest"]).diff(3),
            "ob_imb": bars["ob_imbalance"],
            "snews_impact": bars["news_impact"],
            "snews_conf": bars["news_confidence"],
        },
        index=bars.index,
    )
    return features.replace([np.inf, -np.inf], np.nan)[FEATURES]


def cross_asset_features(features: pd.DataFrame, lead: pd.DataFrame | None) -> pd.DataFrame:
    """BTC's last return and the symbol's 6-bar return relative to BTC, aligned by time.

    BTC leads alts by about a bar, so its return at t helps predict an alt at t+1.
    Without a BTC series (a user's own instrument) both columns are NaN, not zero.
    """
    if lead is None:
        nan = pd.Series(np.nan, index=features.index)
        return pd.DataFrame({"btc_ret_1": nan, "btc_rel_ret_6": nan})
    aligned = lead.reindex(features.index)
    return pd.DataFrame(
        {
            "btc_ret_1": aligned["ret_1"],
            "btc_rel_ret_6": features["ret_6"] - aligned["ret_6"],
        },
        index=features.index,
    )


def compute_feature_panel(bars_by_symbol: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Features (18 + cross-asset) for every symbol; BTC is the lead when present."""
    base = {symbol: compute_features(bars) for symbol, bars in bars_by_symbol.items()}
    lead = base.get(LEAD_SYMBOL)
    return {
        symbol: pd.concat([features, cross_asset_features(features, lead)], axis=1)
        for symbol, features in base.items()
    }


def make_labels(bars: pd.DataFrame, horizon: int = 3) -> pd.DataFrame:
    """Forward log-return over `horizon` bars and its direction (1 up, 0 not up).

    Both are NaN where the future is not yet known (the last `horizon` bars), so no
    row ever trains on a label it could not have had.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 bar, got {horizon}")
    log_close = np.log(bars["close"])
    forward = log_close.shift(-horizon) - log_close
    direction = (forward > 0).astype("float64").where(forward.notna())
    return pd.DataFrame({LABEL_RETURN: forward, LABEL_DIRECTION: direction}, index=bars.index)
