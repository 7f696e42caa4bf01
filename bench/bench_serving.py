"""Serving benchmark (a script, not a test): `make bench`.

Starts one uvicorn worker on a copy of the project's data and registry (the real store is
never touched) and, beside it, a bare FastAPI app (`bench/bare_app.py`) under the same
uvicorn settings: the baseline measured in the same run. The load comes from `wrk`, a
compiled client (Debian package `wrk`), so the client does not eat the server's core.

* throughput and p50/p99 at 16 connections, in interleaved rounds (median round): the
  bare endpoint, the app's `/ping`, `/ml/predict` and `/ml/predict_ensemble` (per-bar
  cache); targets: predict >= 0.7 x bare throughput, p99 <= 2 x bare p99;
* `/ping` p99 while two clients sweep `/ml/predict_deep?n_samples=200..1` (target:
  <= 1.5 x its idle p99);
* the `/metrics` size after one request of every kind, and again after 500 requests with
  junk method tokens and the mixed load (target: the same size);
* p50/p99 of the first `/ml/predict_ensemble` after a new bar (both releases computed);
* the worker's RSS after 60 s of mixed load with both releases loaded (target: <= 500 MB).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from benchkit import append_bar, percentile, rss_mb

from levibot.marathon.replay import workspace_settings
from levibot.marathon.server import free_port, start_server
from levibot.settings import load_settings, save_settings
from levibot.state.paths import Paths, Workspace

CONNECTIONS = 16
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}
SWEEP_LUA = """
local n = 0
request = function()
  n = n % 200 + 1
  return wrk.format("GET", "/ml/predict_deep?symbol={symbol}&n_samples=" .. n)
end
"""
MIXED_LUA = """
local paths = {{"/ml/predict", "/ml/predict_deep", "/ml/predict_ensemble"}}
local symbols = {{{symbols}}}
local i = 0
request = function()
  i = i + 1
  local path = paths[i % 3 + 1] .. "?symbol=" .. symbols[i % #symbols + 1]
  return wrk.format("GET", path, {{["X-Client-Id"] = "client-" .. (i % 97)}})
end
"""


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNIT[unit]


def wrk(url: str, *, seconds: float, connections: int = CONNECTIONS, script: Path | None = None):
    """One wrk run: requests/s, p50/p99 in ms, requests, non-2xx and socket errors."""
    duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds
    command = ["wrk", "-t1", f"-c{connections}", duration, "--latency", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    errors = re.search(r"Socket errors: (.*)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "n": int(re.search(r"(\d+) requests in", out).group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def start_bare(log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(Path(__file__).parent),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{base}/ping", timeout=1).raise_for_status()
            return process, base
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("the bare FastAPI app did not start")


UNUSUAL_METHODS = ("PROPFIND", "MKCOL", "PURGE", "SEARCH", "UNLOCK", "REPORT", "LINK")


def junk_methods(base: str, n: int) -> None:
    """Requests with odd method tokens, raw over a socket: made-up ones (h11 accepts any,
    httptools refuses them) and the parser's extra methods (WebDAV etc., which reach the app)."""
    url = urlsplit(base)
    for i in range(n):
        method = f"Q{i:05d}X" if i % 2 else UNUSUAL_METHODS[i // 2 % len(UNUSUAL_METHODS)]
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            sock.sendall(f"{method} /ml/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         .encode())  # fmt: skip
            while sock.recv(65536):
                pass


def scrape(base: str) -> tuple[int, int]:
    """(bytes, series) of one /metrics scrape."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return len(text.encode()), sum(1 for line in text.splitlines() if not line.startswith("#"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env-file", default="env.yaml")
    parser.add_argument("--seconds", type=float, default=5.0, help="per endpoint and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mixed-seconds", type=float, default=60.0)
    parser.add_argument("--new-bars", type=int, default=30)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: `apt-get install wrk` (the load generator)", file=sys.stderr)
        return 2

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
    prom = work / "prometheus"
    prom.mkdir()
    server = start_server(env_file, workers=1, log_path=Workspace(work).server_log,
                          extra_env={"PROMETHEUS_MULTIPROC_DIR": str(prom)})  # fmt: skip
    bare, bare_base = start_bare(work / "bare.log")
    base = server.base_url
    symbol = settings.symbols[0]
    sweep = work / "sweep.lua"
    sweep.write_text(SWEEP_LUA.format(symbol=symbol))
    mixed = work / "mixed.lua"
    mixed.write_text(MIXED_LUA.format(symbols=", ".join(f'"{s}"' for s in settings.symbols)))
    try:
        server.wait_healthy()
        for path in ("/ml/predict", "/ml/predict_ensemble"):  # warm the per-bar cache
            httpx.get(f"{base}{path}", params={"symbol": symbol}, timeout=60).raise_for_status()
        targets = {
            "bare FastAPI /ping (baseline)": f"{bare_base}/ping",
            "app /ping": f"{base}/ping",
            "/ml/predict (cached)": f"{base}/ml/predict?symbol={symbol}",
            "/ml/predict_ensemble (cached)": f"{base}/ml/predict_ensemble?symbol={symbol}",
        }
        # interleaved rounds, median per endpoint: a noisy moment hits every endpoint alike
        rounds: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, url in targets.items():
                rounds[name].append(wrk(url, seconds=args.seconds))
        rows = {name: sorted(r, key=lambda x: x["rps"])[len(r) // 2] for name, r in rounds.items()}

        sweep_for = f"-d{round(args.seconds) + 2}s"
        sweep_command = ["wrk", "-t1", "-c1", sweep_for, "-s", str(sweep), base]
        sweepers = [subprocess.Popen(sweep_command, stdout=subprocess.DEVNULL) for _ in range(2)]
        time.sleep(1.0)
        swept = wrk(f"{base}/ping", seconds=args.seconds / 2)
        rows["app /ping while 2 clients sweep n_samples"] = swept
        rows["/ml/predict while 2 clients sweep n_samples"] = wrk(
            f"{base}/ml/predict?symbol={symbol}", seconds=args.seconds / 2
        )
        for process in sweepers:
            process.wait()

        # every kind of request once, so the bounded set of series exists; from here on
        # the size must not depend on what clients send
        for path in ("/ml/predict", "/ml/predict_deep", "/ml/predict_ensemble"):
            for name in settings.symbols:
                httpx.get(f"{base}{path}", params={"symbol": name}, timeout=60)
        junk_methods(base, 2)
        httpx.get(f"{base}/no/such/path", timeout=10)
        scrape(base)  # the scrape's own latency series
        metrics_before = scrape(base)
        junk_methods(base, 500)
        rows["mixed predict/deep/ensemble (60 s)"] = wrk(
            base, seconds=args.mixed_seconds, script=mixed
        )
        memory = rss_mb(server.process.pid)
        metrics_after = scrape(base)

        store = Paths.of(bench).store()
        first = []
        with httpx.Client(base_url=base, timeout=60) as client:
            for _ in range(args.new_bars):
                append_bar(store, symbol)
                start = time.perf_counter()
                client.get("/ml/predict_ensemble", params={"symbol": symbol}).raise_for_status()
                first.append(time.perf_counter() - start)
        rows["/ml/predict_ensemble (first after new bar)"] = {
            "rps": float("nan"), "p50_ms": 1000 * statistics.median(first),
            "p99_ms": 1000 * percentile(first, 0.99), "n": len(first), "non_2xx": 0,
        }  # fmt: skip
    finally:
        server.stop()
        bare.terminate()
        bare.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)

    report(rows, args, memory, metrics_before, metrics_after)
    return 0


def report(
    rows: dict, args: argparse.Namespace, memory: float, before: tuple, after: tuple
) -> None:
    bare = rows["bare FastAPI /ping (baseline)"]
    idle_ping = rows["app /ping"]
    print(
        f"serving benchmark: 1 uvicorn worker, wrk with {CONNECTIONS} connections, median of "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s; {os.cpu_count()} cores"
    )
    header = f"{'endpoint':44s} {'req/s':>8s} {'vs bare':>8s} {'p50 ms':>8s} {'p99 ms':>8s}"
    print(f"{header} {'p99/bare':>9s} {'n':>7s} {'non-2xx':>8s}")
    for name, row in rows.items():
        ratio = row["rps"] / bare["rps"] if row["rps"] == row["rps"] else float("nan")
        p99 = row["p99_ms"] / bare["p99_ms"]
        print(f"{name:44s} {row['rps']:8.0f} {ratio:8.2f} {row['p50_ms']:8.2f} "
              f"{row['p99_ms']:8.2f} {p99:9.2f} {row['n']:7d} {row['non_2xx']:8d}")  # fmt: skip
    predict = rows["/ml/predict (cached)"]
    swept = rows["app /ping while 2 clients sweep n_samples"]
    checks = {
        "/ml/predict throughput >= 0.7 x bare": predict["rps"] >= 0.7 * bare["rps"],
        "/ml/predict p99 <= 2 x bare p99": predict["p99_ms"] <= 2 * bare["p99_ms"],
        "/ping p99 under the sweep <= 1.5 x idle": swept["p99_ms"] <= 1.5 * idle_ping["p99_ms"],
        "/metrics series unchanged by the mix": after[1] == before[1],
        "worker RSS <= 500 MB after the mixed load": memory <= 500,
    }
    print(f"/metrics: {before[0] / 1024:.1f} KB, {before[1]} series after one request of each "
          f"kind; {after[0] / 1024:.1f} KB, {after[1]} series after 500 junk-method requests "
          f"and {args.mixed_seconds:g} s of mixed load")  # fmt: skip
    print(f"worker RSS after the mixed load: {memory:.0f} MB (both releases loaded)")
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'MISSED'}] {name}")


if __name__ == "__main__":
    raise SystemExit(main())
