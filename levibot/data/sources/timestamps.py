"""Timestamps of text files: epoch numbers (s/ms/us/ns told apart by magnitude) or dates.

What cannot be parsed becomes NaT (the caller counts and reports it), never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from levibot.data.schema import INDEX_NAME

_INT64_MAX = str(np.iinfo(np.int64).max)
# epoch magnitude -> nanoseconds per unit: s below 1e11, ms below 1e14, us below 1e17
_EPOCH_UNITS = ((1e11, 10**9), (1e14, 10**6), (1e17, 10**3), (np.inf, 1))


def _integers(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer strings as exact int64 (float64 would blur nanoseconds), and where they were."""
    is_int = (
        text.str.fullmatch(r"-?\d{1,18}") | (text.str.fullmatch(r"\d{19}") & (text <= _INT64_MAX))
    ).to_numpy(dtype=bool)
    ints = np.zeros(len(text), dtype="int64")
    ints[is_int] = text[is_int].astype("int64").to_numpy()
    floats = pd.to_numeric(text.mask(is_int, ""), errors="coerce").to_numpy(dtype="float64")
    whole = ~is_int & np.isfinite(floats) & (np.abs(floats) < 2.0**53)
    whole &= floats == np.trunc(np.where(whole, floats, 0.0))
    ints[whole] = floats[whole].astype("int64")
    return ints, is_int | whole


def epoch_nanos(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Epoch numbers as int64 ns, the unit (s, ms, us, ns) told by magnitude, and where
    that worked; a number beyond the representable range counts as unparseable."""
    ints, is_int = _integers(text)
    floats = pd.to_numeric(text.mask(is_int, ""), errors="coerce").to_numpy(dtype="float64")
    is_float = ~is_int & np.isfinite(floats)
    magnitude = np.where(is_int, np.abs(ints).astype("float64"), np.abs(np.nan_to_num(floats)))
    nanos = np.zeros(len(text), dtype="int64")
    ok = np.zeros(len(text), dtype=bool)
    lower = 0.0
    for upper, per_unit in _EPOCH_UNITS:
        band = (magnitude >= lower) & (magnitude < upper)
        lower = upper
        limit = np.iinfo(np.int64).max // per_unit
        exact = band & is_int & (np.abs(ints) <= limit)
        nanos[exact] = ints[exact] * per_unit
        approx = band & is_float & (magnitude <= limit)
        nanos[approx] = np.round(floats[approx] * per_unit).astype("int64")
        ok |= exact | approx
    return nanos, ok


def _date_strings(text: pd.Series) -> np.ndarray:
    """ISO (fast path) or other date strings as UTC datetime64[ns]; NaT where unparseable.

    Naive strings are taken to be UTC."""
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    retry = parsed.isna().to_numpy() & text.str.contains(r"\d", regex=True).to_numpy(dtype=bool)
    if retry.any():
        parsed[retry] = pd.to_datetime(text[retry], utc=True, format="mixed", errors="coerce")
    naive = parsed.dt.tz_localize(None).to_numpy()
    lo, hi = pd.Timestamp.min.to_datetime64(), pd.Timestamp.max.to_datetime64()
    fits = ~np.isnat(naive) & (naive >= lo) & (naive <= hi)
    out = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[fits] = naive[fits].astype("datetime64[ns]")
    return out


def parse_timestamps(values: Sequence[str]) -> pd.DatetimeIndex:
    """UTC open times from epoch numbers or date strings; NaT where unparseable."""
    text = pd.Series(list(values), dtype=object).astype(str).str.strip()
    nanos, numeric = epoch_nanos(text)
    out = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[numeric] = nanos[numeric].view("datetime64[ns]")
    if (~numeric).any():
        out[~numeric] = _date_strings(text[~numeric])
    return pd.DatetimeIndex(out, name=INDEX_NAME).tz_localize("UTC")
