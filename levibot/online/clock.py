"""Where the serving logic gets "now" from: the system clock, or an injected one."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

Clock = Callable[[], pd.Timestamp]


def system_clock() -> pd.Timestamp:
    """The real UTC time (live mode)."""
    return pd.Timestamp.now("UTC")
