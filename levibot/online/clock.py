"""Where the serving logic gets "now" from: the system clock, or a replay clock.

Replay mode lets `levibot marathon replay` drive a real server through historical
bars: the server reads "now" from a clock file the replay advances bar by bar, so
staleness and guards behave exactly as they would live. It cannot be switched on by
accident: it needs BOTH ``LEVIBOT_CLOCK=replay`` in the server's environment AND a
``REPLAY`` marker file in the served data directory (only the replay workspace has
one); either alone is refused at start-up. ``make serve`` sets neither.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from levibot.io import read_json, write_json_atomic

Clock = Callable[[], pd.Timestamp]
CLOCK_ENV = "LEVIBOT_CLOCK"
REPLAY_MARKER = "REPLAY"
CLOCK_FILE = "replay_clock.json"


def system_clock() -> pd.Timestamp:
    """The real UTC time (live mode)."""
    return pd.Timestamp.now("UTC")


class ReplayClock:
    """ "now" read from a JSON file ({"now": ISO time}), re-read only when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._key: tuple[int, int] | None = None
        self._now: pd.Timestamp | None = None

    def __call__(self) -> pd.Timestamp:
        stat = os.stat(self.path)
        key = (stat.st_mtime_ns, stat.st_size)
        if key != self._key or self._now is None:
            self._now = pd.Timestamp(read_json(self.path)["now"])
            self._key = key
        return self._now


def set_replay_time(data_dir: Path, now: pd.Timestamp) -> None:
    """Advance the replay clock (atomically: a server never reads half a time)."""
    write_json_atomic(Path(data_dir) / CLOCK_FILE, {"now": pd.Timestamp(now).isoformat()})


def clock_for(data_dir: Path, environ: dict[str, str] | None = None) -> tuple[Clock, str]:
    """The clock a server on `data_dir` must use, and its mode ('live' or 'replay')."""
    environ = dict(os.environ if environ is None else environ)
    wants_replay = environ.get(CLOCK_ENV, "").strip().lower() == "replay"
    marker = Path(data_dir) / REPLAY_MARKER
    if not wants_replay:
        return system_clock, "live"
    if not marker.exists():
        raise RuntimeError(
            f"{CLOCK_ENV}=replay but {data_dir} has no {REPLAY_MARKER} marker: replay mode "
            "only runs on a replay workspace (levibot marathon replay creates one)"
        )
    clock_file = Path(data_dir) / CLOCK_FILE
    if not clock_file.exists():
        raise RuntimeError(f"replay mode needs the clock file {clock_file}")
    return ReplayClock(clock_file), "replay"
