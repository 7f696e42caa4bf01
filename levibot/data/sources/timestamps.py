"""Timestamps of text files: epoch numbers (s/ms/us/ns told apart by magnitude) or dates.

What cannot be parsed becomes NaT (the caller counts and reports it), never a guess.

Numeric dates such as ``01.02.2017 00:00`` are day-first in some files and month-first
in others, and a parser that decides per value (pandas' ``format="mixed"``) reads
``01.02`` as 2 January and ``13.02`` as 13 February in the same file. The order is
therefore decided once for the whole column: a first field above 12 means day-first, a
second field above 12 month-first; when every field is 12 or less, the reading whose
times run in order (either direction) wins. Both fields above 12 in one file, or both
readings in order (or neither), is refused with `TimestampFormatError`, which names the
`timestamp_format` setting that says the format outright.
"""

from __future__ import annotations

import re
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


class TimestampFormatError(ValueError):
    """The column's date order cannot be told, or contradicts itself: the user must say."""


# 01.02.2017, 1/2/17 13:00, 01-02-2017 00:00:00.000, 05/02/2017 12:00:00,5 AM, ... UTC
_NUMERIC_DATE = re.compile(
    r"^(?P<a>\d{1,2})(?P<sep>[./-])(?P<b>\d{1,2})(?P=sep)(?P<year>\d{4}|\d{2})"
    r"(?:(?P<tsep>[ T])(?P<hm>\d{1,2}:\d{2})(?P<s>:\d{2})?(?P<frac>[.,]\d{1,9})?"
    r"(?P<ampm>\s?[AaPp][Mm])?)?"
    r"(?P<tz>\s?(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT))?$"
)
_LOOKS_NUMERIC_DATE = re.compile(r"^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")
MINORITY = 0.05  # rows that contradict the column's order, or cannot tell it, at most this
FORMAT_HINT = (
    "set timestamp_format to the file's format, e.g. timestamp_format: '%d.%m.%Y %H:%M:%S.%f'"
    " (day first) or '%m/%d/%Y %H:%M' (month first)"
)


def _formats(parts: pd.DataFrame, day_first: bool) -> pd.Series:
    """An explicit strptime format per row of `_NUMERIC_DATE` matches."""
    first, second = ("%d", "%m") if day_first else ("%m", "%d")
    year = parts["year"].str.len().map({4: "%Y", 2: "%y"})
    date = first + parts["sep"] + second + parts["sep"] + year
    hour = parts["ampm"].notna().map({True: "%I:%M", False: "%H:%M"})  # AM/PM: 12-hour
    clock = (parts["tsep"].fillna("") + hour).where(parts["hm"].notna(), "")
    clock += parts["s"].notna().map({True: ":%S", False: ""})
    clock += parts["frac"].fillna("").str[:1] + parts["frac"].notna().map({True: "%f", False: ""})
    clock += parts["ampm"].fillna("").str.replace(r"[AaPp][Mm]", "%p", regex=True)
    zone = parts["tz"].fillna("")
    named = zone.str.strip().isin(["UTC", "GMT"])
    zone = zone.where(named, zone.str.replace(r"(Z|[+-]\d{2}:?\d{2})", "%z", regex=True))
    return date + clock + zone


def _parse_by_format(text: pd.Series, formats: pd.Series) -> pd.Series:
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    for fmt, rows in formats.groupby(formats).groups.items():
        out[rows] = pd.to_datetime(text[rows], format=fmt, utc=True, errors="coerce")
    return out


def _in_order(times: pd.Series) -> bool:
    valid = times.dropna()
    return valid.is_monotonic_increasing or valid.is_monotonic_decreasing


def _largest_gap(times: pd.Series) -> pd.Timedelta:
    valid = times.dropna()
    return valid.diff().abs().max() if len(valid) > 1 else pd.Timedelta(0)


def _order_from_times(readings: dict[bool, pd.Series], label: str) -> bool:
    """Day-first (True) or month-first, when no field tells: the reading in time order;
    if both are, the one without month-sized jumps (its largest gap under half the
    other's); otherwise refused."""
    ordered = {o: t for o, t in readings.items() if _in_order(t)}
    if len(ordered) == 2:
        gaps = {o: _largest_gap(t) for o, t in ordered.items()}
        ordered = {o: t for o, t in ordered.items() if gaps[o] * 2 < gaps[not o]}
    if len(ordered) != 1:
        raise TimestampFormatError(
            f"{label}: every day and month is 12 or less, and day-first and month-first "
            f"read the rows equally well, so the date order cannot be told; {FORMAT_HINT}"
        )
    return next(iter(ordered))


def numeric_dates(
    text: pd.Series, label: str = "timestamps", total: int | None = None
) -> pd.Series | None:
    """Day/month/year texts parsed with one order for the whole column (module doc), or
    None when no value has that shape. Other values are NaT.

    A few rows that contradict the majority's order (at most MINORITY of them), or a few
    such dates among `total` values of another kind whose order cannot be told, become
    NaT: the caller counts them as unparseable, like any bad row, instead of one stray
    row refusing the whole file."""
    parts = text.str.extract(_NUMERIC_DATE)
    shaped = parts["a"].notna()
    if not shaped.any():
        return None
    parts = parts[shaped]
    a, b = parts["a"].astype(int), parts["b"].astype(int)
    examples = text[shaped]
    keep = pd.Series(True, index=parts.index)
    if (a > 12).any() and (b > 12).any():
        day_first = bool((a > 12).sum() >= (b > 12).sum())
        against = (b > 12) if day_first else (a > 12)
        if against.mean() > MINORITY:
            raise TimestampFormatError(
                f"{label}: dates {examples[a > 12].iloc[0]!r} and {examples[b > 12].iloc[0]!r} "
                f"cannot share one day/month order; {FORMAT_HINT}"
            )
        keep = ~against
    elif (a > 12).any() or (b > 12).any():
        day_first = bool((a > 12).any())
    else:
        try:
            day_first = _order_from_times(
                {o: _parse_by_format(examples, _formats(parts, o)) for o in (True, False)}, label
            )
        except TimestampFormatError:
            if len(examples) > MINORITY * (total or len(text)):
                raise
            return pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    parsed = _parse_by_format(examples, _formats(parts, day_first)).where(keep)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    out[shaped] = parsed
    return out


def _date_strings(text: pd.Series, label: str, timestamp_format: str | None) -> np.ndarray:
    """ISO (fast path), explicit-format, numeric day/month or other date strings as UTC
    datetime64[ns]; NaT where unparseable. Naive strings are taken to be UTC."""
    if timestamp_format:
        parsed = pd.to_datetime(text, utc=True, format=timestamp_format, errors="coerce")
    else:
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        parsed = parsed.astype("datetime64[ns, UTC]")  # pandas may infer seconds
        retry = parsed.isna().to_numpy() & text.str.contains(r"\d", regex=True).to_numpy(dtype=bool)
        if retry.any():
            numeric = numeric_dates(text[retry], label, total=len(text))
            rest = text[retry] if numeric is None else text[retry][numeric.isna()]
            if numeric is not None:
                parsed[numeric.index] = numeric
            # month names and the like have no day/month order to decide; a day/month
            # text the shapes above did not take is left unparsed, never guessed per value
            rest = rest[~rest.str.contains(_LOOKS_NUMERIC_DATE)]
            if len(rest):
                parsed[rest.index] = pd.to_datetime(rest, utc=True, format="mixed", errors="coerce")
    naive = parsed.dt.tz_localize(None).to_numpy()
    lo, hi = pd.Timestamp.min.to_datetime64(), pd.Timestamp.max.to_datetime64()
    fits = ~np.isnat(naive) & (naive >= lo) & (naive <= hi)
    out = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[fits] = naive[fits].astype("datetime64[ns]")
    return out


def parse_timestamps(
    values: Sequence[str], *, label: str = "timestamps", timestamp_format: str | None = None
) -> pd.DatetimeIndex:
    """UTC open times from epoch numbers or date strings; NaT where unparseable.

    `timestamp_format` (strptime) is used for every non-numeric value when given."""
    text = pd.Series(list(values), dtype=object).astype(str).str.strip()
    nanos, numeric = epoch_nanos(text)
    if timestamp_format and "%s" not in timestamp_format:
        numeric[:] = False  # '20170102' with '%Y%m%d' is a date, not an epoch number
    out = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[numeric] = nanos[numeric].view("datetime64[ns]")
    if (~numeric).any():
        out[~numeric] = _date_strings(text[~numeric], label, timestamp_format)
    return pd.DatetimeIndex(out, name=INDEX_NAME).tz_localize("UTC")
