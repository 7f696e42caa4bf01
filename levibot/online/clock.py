"""Where the serving logic gets "now" from: the system clock, or a replay clock.

Replay mode lets `levibot marathon replay` drive a real server through historical
bars: the server reads "now" from a clock file the replay advances bar by bar, so
staleness and guards behave exactly as they would live. It cannot be switched on by
accident: it needs BOTH ``LEVIBOT_CLOCK=replay`` in the server's environment AND the
replay marker file (`Paths.replay_marker`) in the served data directory (only a replay
workspace has one); either alone is refused at start-up. ``make serve`` sets neither.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from levibot.io import read_json, write_json_atomic, write_text_atomic
from levibot.state.paths import Paths
from levibot.timeframe import utc_now

Clock = Callable[[], pd.Timestamp]
CLOCK_ENV = "LEVIBOT_CLOCK"
system_clock: Clock = utc_now  # the real UTC time (live mode)


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


def mark_replay_workspace(paths: Paths) -> None:
    """Allow a replay clock on this data folder (only a replay workspace is marked)."""
    write_text_atomic(paths.replay_marker, "replay workspace: the server may use a replay clock\n")


def set_replay_time(paths: Paths, now: pd.Timestamp) -> None:
    """Advance the replay clock (atomically: a server never reads half a time)."""
    write_json_atomic(paths.replay_clock, {"now": pd.Timestamp(now).isoformat()})


def clock_for(paths: Paths, environ: dict[str, str] | None = None) -> tuple[Clock, str]:
    """The clock a server on `paths` must use, and its mode ('live' or 'replay')."""
    environ = dict(os.environ if environ is None else environ)
    wants_replay = environ.get(CLOCK_ENV, "").strip().lower() == "replay"
    if not wants_replay:
        return system_clock, "live"
    if not paths.replay_marker.exists():
        raise RuntimeError(
            f"{CLOCK_ENV}=replay but {paths.data_dir} has no replay marker: replay mode "
            "only runs on a replay workspace (levibot marathon replay creates one)"
        )
    clock_file = paths.replay_clock
    if not clock_file.exists():
        raise RuntimeError(f"replay mode needs the clock file {clock_file}")
    return ReplayClock(clock_file), "replay"
