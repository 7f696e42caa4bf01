"""Drift benchmark (a script, not a test).

* `fit_reference` on 1,000,000 x 20 reference rows with its ordinary-window noise
  (one-off, at training time);
* `save_reference` / `load_reference` of that reference (.npz, compressed) and its size;
* `check_drift` of 250,000 x 20 current rows against it: median of 5 runs, and its
  ratio to the 1 s budget (the reference is precomputed, as in production).

The data mix the shapes real features have: Gaussian, heavy-tailed, skewed, a
discrete feature with heavy ties and 1 % NaN; the current window is shifted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from levibot.drift import MONITORED_FEATURES as FEATURES
from levibot.drift import check_drift, fit_reference, load_reference, save_reference

BUDGET_SEC = 1.0
WINDOW_BARS = 1440  # the ordinary windows the noise is measured on (a day of 1 m bars)


def make_frame(n: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {}
    for j, name in enumerate(FEATURES):
        kind = j % 4
        if kind == 0:
            values = rng.normal(shift, 1.0 + shift, n)
        elif kind == 1:
            values = rng.standard_t(4, n) * (1.0 + shift)
        elif kind == 2:
            values = rng.lognormal(shift, 1.0, n)
        else:
            values = rng.integers(0, 5, n).astype(float) + (rng.random(n) < shift)
        values[rng.random(n) < 0.01] = np.nan
        columns[name] = values
    index = pd.date_range("2020-01-01", periods=n, freq="min", tz="UTC", name="timestamp")
    return pd.DataFrame(columns, index=index)


def timed(func, *args, **kwargs):
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--current-rows", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    reference_frame = make_frame(args.reference_rows, seed=1)
    current_frame = make_frame(args.current_rows, seed=2, shift=0.2)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    shape = f"{args.reference_rows:,} x {len(FEATURES)}"
    print(f"cores available: {cores}")

    fit_sec, reference = timed(fit_reference, reference_frame, FEATURES, window_bars=WINDOW_BARS)
    print(f"fit_reference      {shape:>18}: {fit_sec:6.2f} s (one-off, training time)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.npz"
        save_sec, _ = timed(save_reference, path, reference)
        load_sec, reference = timed(load_reference, path)
        size_mb = path.stat().st_size / 1e6
    print(f"save_reference: {save_sec:.2f} s, load_reference: {load_sec:.2f} s, {size_mb:.0f} MB")

    runs = []
    for _ in range(args.repeats):
        seconds, result = timed(check_drift, reference, current_frame)
        runs.append(seconds)
    median = statistics.median(runs)
    shape = f"{args.current_rows:,} x {len(FEATURES)}"
    print(
        f"check_drift        {shape:>18}: {median:6.2f} s median of {args.repeats} "
        f"(min {min(runs):.2f}, max {max(runs):.2f}); status {result.status}"
    )
    print(f"budget {BUDGET_SEC:.0f} s: median uses {median / BUDGET_SEC:.0%} of it")


if __name__ == "__main__":
    main()
