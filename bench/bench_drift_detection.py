"""Drift detection benchmark (a script, not a test): how often the check fires.

* synthetic marathons per scenario (none, vol_shock, feature_freeze, dead_feed): the
  share with a critical check, its 95% Wilson interval and the time from onset to the
  first critical check (`levibot.drift.benchmark`);
* real bars: the share of critical checks over the held-out part of hourly EURUSD
  (tests/fixtures/EURUSD_1h.csv) and daily GOOG (tests/fixtures/GOOG_1d.csv).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from levibot.calendar import calendar_named
from levibot.drift.benchmark import format_table, real_market_rate, run_benchmark

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def _bars(name: str) -> pd.DataFrame:
    frame = pd.read_csv(FIXTURES / name, index_col="timestamp")
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="marathons per scenario")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = run_benchmark(Path(tmp), args.runs, progress=print)
    report["real"] = {
        "EURUSD 1h": real_market_rate(
            _bars("EURUSD_1h.csv"), bar=pd.Timedelta(hours=1), calendar=calendar_named("fx")
        ),
        "GOOG 1d": real_market_rate(_bars("GOOG_1d.csv"), bar=pd.Timedelta(days=1)),
    }
    print(format_table(report))
    for name, row in report["real"].items():
        low, high = row["critical_share_ci_iid"]
        print(
            f"{name}: {row['critical_share']:.1%} of {row['checks']} checks critical "
            f"({low:.1%}-{high:.1%} if they were independent); "
            f"{row['blocks_with_critical_share']:.0%} of {row['blocks_48h']} 48 h blocks; "
            f"features {', '.join(row['features']) or '-'}"
        )
    print(f"took {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
