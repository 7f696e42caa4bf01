"""Serving benchmark (a script, not a test): `make bench`.

Starts one uvicorn worker on a copy of the project's data and registry (so the real
store is never touched), then measures with a keep-alive client:

* requests/s and p50/p99 latency of the trivial `/ping` (the baseline, same run),
  `/ml/predict` and `/ml/predict_ensemble` served from the per-bar cache;
* p50/p99 of the first `/ml/predict_ensemble` after a new bar appears (20 MC samples,
  both releases computed: served + shadow);
* the server's resident memory.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd

from levibot.data.store import FeatureStore
from levibot.marathon.replay import workspace_settings
from levibot.marathon.server import start_server
from levibot.settings import load_settings, save_settings
from levibot.state.paths import Paths, Workspace


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def hammer(base: str, path: str, params: dict, *, seconds: float, threads: int) -> dict:
    """Closed-loop load for `seconds` with `threads` keep-alive clients."""
    deadline = time.perf_counter() + seconds

    def worker(_: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=base, timeout=30) as client:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = client.get(path, params=params)
                response.raise_for_status()
                latencies.append(time.perf_counter() - start)
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        latencies = [x for part in pool.map(worker, range(threads)) for x in part]
    elapsed = time.perf_counter() - started
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "n": len(latencies),
    }


def append_bar(store: FeatureStore, symbol: str) -> None:
    """A new bar (a copy of the last one, one bar later): makes every cache entry stale."""
    frame = store.read(symbol)
    new = frame.iloc[[-1]].copy()
    new.index = new.index + store.bar_length
    new.index.name = "timestamp"
    store.write(symbol, pd.concat([frame, new]))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env-file", default="env.yaml")
    parser.add_argument("--seconds", type=float, default=3.0, help="per endpoint and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--new-bars", type=int, default=30)
    args = parser.parse_args()

    settings = load_settings(args.env_file)
    origin = Paths.of(settings)
    if not origin.registry.exists():
        print("no trained registry: run `make run` first", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="levibot-bench-"))
    bench = workspace_settings(settings, work)  # the layout of a replay workspace
    shutil.copytree(origin.store_root, Paths.of(bench).store_root)
    shutil.copytree(origin.registry_dir, bench.registry_dir)
    env_file = save_settings(Workspace(work).settings_file, bench)
    server = start_server(env_file, workers=1, log_path=Workspace(work).server_log)
    base = server.base_url
    try:
        server.wait_healthy()
        symbol = settings.symbols[0]
        query = {"symbol": symbol}
        for path in ("/ml/predict", "/ml/predict_ensemble"):
            httpx.get(f"{base}{path}", params=query, timeout=60).raise_for_status()  # warm
        load = {"seconds": args.seconds, "threads": args.threads}
        targets = {
            "/ping (baseline)": ("/ping", {}),
            "/ml/predict (cached)": ("/ml/predict", query),
            "/ml/predict_ensemble (cached)": ("/ml/predict_ensemble", query),
        }
        # interleaved rounds, median per endpoint: a noisy moment hits every endpoint alike
        rounds = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (path, params) in targets.items():
                rounds[name].append(hammer(base, path, params, **load))
        rows = {
            name: sorted(results, key=lambda r: r["rps"])[len(results) // 2]
            for name, results in rounds.items()
        }
        store = Paths.of(bench).store()
        first = []
        with httpx.Client(base_url=base, timeout=60) as client:
            for _ in range(args.new_bars):
                append_bar(store, symbol)
                start = time.perf_counter()
                client.get("/ml/predict_ensemble", params=query).raise_for_status()
                first.append(time.perf_counter() - start)
        rows["/ml/predict_ensemble (first after new bar)"] = {
            "rps": float("nan"), "p50_ms": 1000 * statistics.median(first),
            "p99_ms": 1000 * percentile(first, 0.99), "n": len(first),
        }  # fmt: skip
        memory = rss_mb(server.process.pid)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    baseline = rows["/ping (baseline)"]["rps"]
    print(
        f"serving benchmark: 1 uvicorn worker, {args.threads} client threads, median of "
        f"{args.rounds} interleaved rounds of {args.seconds:.0f} s per endpoint"
    )
    print(f"{'endpoint':44s} {'req/s':>8s} {'vs ping':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'n':>6s}")
    for name, row in rows.items():
        ratio = row["rps"] / baseline if row["rps"] == row["rps"] else float("nan")
        figures = f"{row['rps']:8.0f} {ratio:8.0%} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f}"
        print(f"{name:44s} {figures} {row['n']:6d}")
    print(f"server RSS after the run: {memory:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
