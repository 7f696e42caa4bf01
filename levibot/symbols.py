"""Symbols: the one pattern, parser and 'unknown symbol' error the whole project shares.

A symbol names files (``BTCUSDT_15m.parquet``), so it is letters and digits only and can
never escape a folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SYMBOL_PATTERN = r"^[A-Z0-9]{2,24}$"
_SYMBOL = re.compile(SYMBOL_PATTERN)


class UnknownSymbolError(LookupError):
    """A source or a model has no data for the symbol asked for."""


def check_symbol(symbol: str) -> str:
    """`symbol` itself when it is a valid symbol; ValueError naming it otherwise."""
    if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
        raise ValueError(f"invalid symbol {symbol!r}: letters and digits only, e.g. BTCUSDT")
    return symbol


def parse_symbols(values: str | Iterable[str] | None, *, dedupe: bool = False) -> list[str]:
    """'BTCUSDT,ethusdt' or ['BTCUSDT', 'ETHUSDT ETH2'] -> checked upper-case symbols.

    Duplicates are an error (a typo in a settings file), or dropped with `dedupe` (a
    repeated command-line flag).
    """
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    symbols: list[str] = []
    for item in items:
        for part in str(item).replace(" ", ",").split(","):
            symbol = part.strip().upper()
            if not symbol:
                continue
            if not _SYMBOL.match(symbol):
                raise ValueError(f"not a symbol like BTCUSDT: {part.strip()!r}")
            if symbol in symbols:
                if dedupe:
                    continue
                raise ValueError(f"symbols contain duplicates: {symbol!r} in {values!r}")
            symbols.append(symbol)
    return symbols
