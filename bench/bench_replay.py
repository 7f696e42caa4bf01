"""Marathon replay benchmark (a script, not a test): the same 48 h replay of the project's
held-out bars in-process (`PredictionService`, no HTTP) and over HTTP (a real uvicorn
worker), with the default request mix, drift check every bar and hourly tuning, and the
decision-benchmark configuration (one bar-close request per symbol, drift hourly, no
tuning). Prints wall seconds; the HTTP / in-process ratio is the cost of the transport.
Needs a trained project (`make run`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from levibot.io import without_fsync
from levibot.marathon.replay import ReplayConfig, run_replay
from levibot.settings import load_settings


def main() -> None:
    settings = load_settings()
    base = ReplayConfig.from_settings(settings)
    lean = {"requests_per_bar": 0, "tune_every_bars": 0, "drift_every_bars": 4}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, changes, relaxed in (
            ("in-process, default mix", {"transport": "inprocess"}, False),
            ("HTTP, default mix", {"transport": "http"}, False),
            ("in-process, simulate config", {"transport": "inprocess", **lean}, True),
        ):
            config = ReplayConfig(**{**base.__dict__, **changes})
            if relaxed:
                with without_fsync():
                    outcome = run_replay(settings, Path(tmp) / "ws", config)
            else:
                outcome = run_replay(settings, Path(tmp) / "ws", config)
            rows.append((label, outcome.summary["wall_seconds"], outcome.summary["requests"]))
    symbols = len(settings.symbols)
    print(f"\nmarathon replay: {base.hours:g} h x {symbols} symbols")
    print("| replay | wall s | requests |")
    print("|---|---|---|")
    for label, seconds, requests in rows:
        print(f"| {label} | {seconds:.1f} | {requests} |")
    print(f"HTTP / in-process (default mix): {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
