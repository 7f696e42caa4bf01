"""Scaling benchmark in the number of symbols (a script, not a test).

On the embedded synthetic market (BTC, ETH, SOL, then ALT001USDT, ...; the same seed and
the same `--days` window for every N, so the growth is about symbols, not history) it
measures for each N in `--symbols`:

* (a) ingest: `run_ingest` (simulate, validate, store upsert, cross-asset features,
  manifest) of every symbol;
* (a') the same ingest as the schedule runs it (ops/cron): `ploomber build --partially
  ingest --force` on a copy of pipeline.yaml, i.e. N fetch-<SYMBOL> tasks (each in a
  forked child, as Ploomber runs function tasks) and the ingest notebook with its
  report; plus `ploomber status` alone, the DAG render every `ploomber task` of a
  cluster export pays before it runs;
* (b) LightGBM training: `prepare_training` + `train_releases(.., "lgbm")`, i.e. a prod
  and a candidate release, with a FIXED number of boosting rounds (`--lgbm-rounds`, no
  early stop) so the cost per N is not blurred by where early stopping happens to fall;
* (c) one drift check: `run_drift_check` of the newest window against a stored
  reference (the reference is fitted once at training time, as in production);
* (d) the server: a real uvicorn worker (`start_server`) on that project; its RSS, and
  the first `/ml/predict_ensemble` of every symbol after a new bar for all N symbols
  (sequential requests, both releases computed; median over `--new-bars` bars).

Setup the server and the drift check need, measured and shown but not judged: the
transformer for one epoch (`--deep-seq-len`; its training is capped at 24k sequences,
only its scoring grows with N) and calibrate / sweep / register plus the drift reference.
The registration gate is relaxed to one trade (the bench measures cost, not edge).

Every stage runs in a child process of its own (this script with `--stage`), so its
peak is its own: VmHWM, reset just before the stage (`/proc/self/clear_refs`), and the
RSS at the start (imports loaded); wall time is the stage alone, imports excluded. For
the server, memory is the worker's (its process tree): RSS after the measured bars and
its peak; "start" is its RSS once healthy.

Growth exponent: the least-squares slope of log(cost) against log(N). The limit line
extrapolates each judged stage from its largest N (see `crossing`) to one machine's
24 GiB (the stage's start RSS plus its growth) and to one bar period of wall time (the
work a bar close triggers -- (a'), drift check, first-of-bar answers -- must fit in
it; for training it means "retrain between two bars"), and names what is hit first.
The verdict holds for `--days` of history: ingest, training and the drift check read
every stored bar, so their per-symbol costs grow with the window too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from benchkit import append_bar, percentile, reset_peak, status_mb, tree_mb

from levibot.data.sources.synthetic import SIM_EPOCH, synthetic_universe
from levibot.settings import Settings, load_settings
from levibot.timeframe import timeframe_seconds

STARTED = time.perf_counter()
MARKER = "BENCH_SCALING_RESULT "
JUDGED = ("ingest", "ingest_pipeline", "train_lgbm", "drift", "server")
SETUP = ("train_deep", "register")
BAR_CLOSE = ("ingest_pipeline", "drift", "server")  # what a bar close runs (ops/cron)
ORDER = ("ingest", "ingest_pipeline", "train_lgbm", "train_deep", "register", "server", "drift")
LABELS = {
    "ingest": "(a) ingest (library)",
    "ingest_pipeline": "(a') ingest as scheduled (ploomber)",
    "train_lgbm": "(b) train LightGBM",
    "drift": "(c) drift check",
    "server": "(d) server first-of-bar, all N",
    "train_deep": "setup: deep, 1 epoch",
    "register": "setup: calibrate+register",
}
MEMORY_LIMIT_MB = 24 * 1024
TIMEFRAME = "15m"
GATE = {"gate": {"min_trades": 1}}
REFERENCE_FILE = "drift_reference.npz"
FLAT = 0.05  # an exponent below this is "does not grow": no crossing extrapolated
EXTRAPOLATION_CAP = 1e6  # symbols; past this a power law fitted on 3..100 says nothing


# ---------------------------------------------------------------------- child stages


def bench_settings(root: Path, n: int, args: argparse.Namespace) -> Settings:
    """The project of one N: the first n synthetic symbols over the same window for all N
    (ending `days` + 1 days after the market's epoch, so little is simulated before it)."""
    end = SIM_EPOCH + pd.Timedelta(days=math.ceil(args.days) + 1)
    return load_settings(
        None, root=root, symbols=",".join(synthetic_universe(n)), timeframe=TIMEFRAME,
        days=args.days, end=end, seed=args.seed,
        holdout_hours=min(72.0, 6.0 * args.days), prod_lag_days=min(7.0, args.days / 4),
        lgbm_num_boost_round=args.lgbm_rounds, lgbm_early_stopping_rounds=args.lgbm_rounds,
        deep_seq_len=args.deep_seq_len, deep_epochs=1, deep_n_samples=4,
    )  # fmt: skip


def timed(stage: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `stage` with its own memory peak and wall time (see the module docstring)."""
    peak_reset = reset_peak()
    start_mb = status_mb("VmRSS")
    started = time.perf_counter()
    extra = stage()
    wall = time.perf_counter() - started
    return {
        "wall_s": wall, "peak_mb": status_mb("VmHWM"), "start_mb": start_mb,
        "peak_is_stage_only": peak_reset, **extra,
    }  # fmt: skip


def stage_ingest(settings: Settings, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from levibot.ingest import run_ingest

    def ingest() -> dict[str, Any]:
        result = run_ingest(settings, project_root=root)
        return {"rows": int(result.quality["rows_stored"].sum())}

    return timed(ingest)


def _train(settings: Settings, root: Path, kind: str) -> dict[str, Any]:
    from levibot.training import prepare_training, train_releases

    def train() -> dict[str, Any]:
        context = prepare_training(settings)
        runs = train_releases(context, kind, root / "runs" / f"{kind}.json")
        return {"releases": len(runs), "train_rows": [run["train_rows"] for run in runs]}

    return timed(train)


def stage_train_lgbm(settings: Settings, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    return _train(settings, root, "lgbm")


def stage_train_deep(settings: Settings, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    return _train(settings, root, "deep")


def stage_register(settings: Settings, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from levibot.drift import newest_reference, save_reference
    from levibot.registry import update_canary_policy
    from levibot.release import calibrate_and_register
    from levibot.state.paths import Paths

    update_canary_policy(Paths.of(settings).canary_policy, thresholds=GATE)
    runs = root / "runs"

    def register() -> dict[str, Any]:
        releases = calibrate_and_register(
            settings, runs / "lgbm.json", runs / "deep.json",
            summary_path=runs / "release.json", reports=[],
        )  # fmt: skip
        save_reference(root / REFERENCE_FILE, newest_reference(settings))
        return {"releases": [r.role for r in releases]}

    return timed(register)


def stage_drift(settings: Settings, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from levibot.drift import run_drift_check

    def check() -> dict[str, Any]:
        result = run_drift_check(settings, reference_path=root / REFERENCE_FILE)
        return {"status": result.status, "rows": result.rows}

    return timed(check)


REPO = Path(__file__).resolve().parents[1]


def _pipeline_project(settings: Settings, root: Path) -> Path:
    """A copy of pipeline.yaml + notebooks with an env.yaml holding the bench's settings
    (the repo's env.yaml, each key the bench sets replaced), in its own folder."""
    import yaml

    from levibot.settings import settings_payload

    project = root / "pipeline"
    project.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "pipeline.yaml", project / "pipeline.yaml")
    shutil.copytree(REPO / "notebooks", project / "notebooks", dirs_exist_ok=True)
    env = yaml.safe_load((REPO / "env.yaml").read_text())
    ours = {**settings_payload(settings), "symbols": ",".join(settings.symbols)}
    for key in env:
        if key in ours and key not in ("data_dir", "registry_dir", "reports_dir"):
            env[key] = ours[key]
    (project / "env.yaml").write_text(yaml.safe_dump(env))
    return project


def stage_ingest_pipeline(settings: Settings, root: Path, args: argparse.Namespace) -> dict:
    """What the scheduled ingest runs (ops/cron): `ploomber build --partially ingest
    --force`, i.e. every fetch-<SYMBOL> task then the ingest notebook with its report.
    `ploomber status` alone is the DAG render every cluster task (`ploomber task`) pays."""
    import resource

    project = _pipeline_project(settings, root)
    ploomber = str(Path(sys.executable).with_name("ploomber"))
    env = {**child_env(), "PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "1"}

    def run(*command: str) -> float:
        started = time.perf_counter()
        subprocess.run([ploomber, *command], cwd=project, env=env, check=True,
                       capture_output=True, text=True)  # fmt: skip
        return time.perf_counter() - started

    render_s = run("status")
    wall = run("build", "--partially", "ingest", "--force")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_s": wall, "peak_mb": peak, "start_mb": 0.0, "render_s": render_s,
            "peak_is_stage_only": True}  # fmt: skip


def _first_of_bar(client: Any, symbols: list[str]) -> tuple[float, list[float]]:
    """One /ml/predict_ensemble per symbol, in turn: (wall for all, each latency)."""
    latencies = []
    started = time.perf_counter()
    for symbol in symbols:
        sent = time.perf_counter()
        client.get("/ml/predict_ensemble", params={"symbol": symbol}).raise_for_status()
        latencies.append(time.perf_counter() - sent)
    return time.perf_counter() - started, latencies


def stage_server(settings: Settings, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The real server on this N's project; memory is the server's, not this process's."""
    import httpx

    from levibot.marathon.server import start_server
    from levibot.settings import save_settings
    from levibot.state.paths import Paths

    env_file = save_settings(root / "env.yaml", settings)
    prom = root / "prometheus"
    prom.mkdir(exist_ok=True)
    launched = time.perf_counter()
    server = start_server(env_file, workers=1, log_path=root / "server.log",
                          extra_env={"PROMETHEUS_MULTIPROC_DIR": str(prom)})  # fmt: skip
    store = Paths.of(settings).store()
    symbols = list(settings.symbols)
    try:
        server.wait_healthy(timeout=180)
        startup = time.perf_counter() - launched
        pid = server.process.pid
        start_mb = tree_mb(pid)
        with httpx.Client(base_url=server.base_url, timeout=300) as client:
            warm, _ = _first_of_bar(client, symbols)  # every symbol's tail read once
            loaded_mb = tree_mb(pid)
            rounds, latencies = [], []
            for _ in range(args.new_bars):
                for symbol in symbols:  # a bar close: every symbol gets its new bar
                    append_bar(store, symbol)
                wall, each = _first_of_bar(client, symbols)
                rounds.append(wall)
                latencies.extend(each)
        rss_after = tree_mb(pid)
        peak = tree_mb(pid, "VmHWM")
    finally:
        server.stop()
    return {
        "wall_s": statistics.median(rounds), "peak_mb": peak, "start_mb": start_mb,
        "rss_mb": rss_after, "rss_loaded_mb": loaded_mb, "startup_s": startup,
        "warm_round_s": warm, "rounds_s": rounds,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99), "peak_is_stage_only": False,
    }  # fmt: skip


STAGES: dict[str, Callable[[Settings, Path, argparse.Namespace], dict[str, Any]]] = {
    "ingest": stage_ingest,
    "ingest_pipeline": stage_ingest_pipeline,
    "train_lgbm": stage_train_lgbm,
    "train_deep": stage_train_deep,
    "register": stage_register,
    "server": stage_server,
    "drift": stage_drift,
}


def run_stage(args: argparse.Namespace) -> None:
    """Child mode: one stage for one N; the result is the last stdout line."""
    root = Path(args.root)
    settings = bench_settings(root, args.n, args)
    imported = time.perf_counter() - STARTED
    result = STAGES[args.stage](settings, root, args)
    result["import_s"] = imported
    print(MARKER + json.dumps(result), flush=True)


# ---------------------------------------------------------------------- parent


def child_env() -> dict[str, str]:
    """This environment without LEVIBOT_*: a stray variable must not change the project."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}


def run_child(stage: str, n: int, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--n", str(n),
        "--root", str(root), "--days", str(args.days), "--seed", str(args.seed),
        "--lgbm-rounds", str(args.lgbm_rounds), "--deep-seq-len", str(args.deep_seq_len),
        "--new-bars", str(args.new_bars),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=child_env())
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"stage {stage} at N={n} failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    result = json.loads(lines[-1][len(MARKER) :])
    result["process_s"] = time.perf_counter() - started
    return result


def exponent(ns: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) on log(N) over the positive points (NaN if < 2)."""
    points = [(n, v) for n, v in zip(ns, values, strict=True) if v > 0 and math.isfinite(v)]
    if len(points) < 2:
        return float("nan")
    x, y = (np.log([p[i] for p in points]) for i in (0, 1))
    return float(np.polyfit(x, y, 1)[0])


def crossing(ns: list[int], values: list[float], limit: float, base: float = 0.0) -> dict:
    """Where base + cost(N) reaches `limit`, extrapolated from the largest N two ways, the
    earlier one kept: a power law with the steeper of the fitted and the last segment's
    exponent, and the last segment's cost per added symbol held constant (a sub-linear
    slope on 3..100 is a fixed cost fading out, not an economy of scale)."""
    fitted, last = exponent(ns, values), exponent(ns[-2:], values[-2:])
    slopes = [k for k in (fitted, last) if math.isfinite(k)]
    k = max(slopes) if slopes else float("nan")
    top, room = values[-1], limit - base
    marginal = (values[-1] - values[-2]) / (ns[-1] - ns[-2])
    power = ns[-1] * (room / top) ** (1.0 / k) if k >= FLAT and top > 0 else math.inf
    linear = ns[-1] + (room - top) / marginal if marginal > 0 else math.inf
    n, model = min((power, "power law"), (linear, "per-symbol cost"))
    return {"n": n, "model": model, "exponent": k, "per_symbol": marginal}


def analyse(ns: list[int], results: dict[int, dict[str, dict]], bar_s: float) -> dict:
    """Exponents per stage and metric, limit crossings of the judged stages, the verdict."""
    exponents, limits = {}, {}
    for stage in (*JUDGED, *SETUP):
        rows = [results[n][stage] for n in ns]
        wall = [r["wall_s"] for r in rows]
        peak = [r["peak_mb"] for r in rows]
        delta = [r["peak_mb"] - r["start_mb"] for r in rows]
        exponents[stage] = {
            "wall_s": exponent(ns, wall), "peak_mb": exponent(ns, peak),
            "delta_mb": exponent(ns, delta),
        }  # fmt: skip
        if stage in JUDGED:
            limits[stage] = {
                "time": crossing(ns, wall, bar_s),
                "memory": crossing(ns, delta, MEMORY_LIMIT_MB, base=rows[-1]["start_mb"]),
            }
    hits = [(v["n"], stage, kind) for stage, ls in limits.items() for kind, v in ls.items()]
    n_first, stage, kind = min(hits)
    # what one bar close triggers, in sequence: ingest, the drift check, the first answers
    bar_close = [sum(results[n][s]["wall_s"] for s in BAR_CLOSE) for n in ns]
    return {"exponents": exponents, "limits": limits,
            "first": {"stage": stage, "limit": kind, "n": n_first},
            "bar_close": {"wall_s": bar_close, "time": crossing(ns, bar_close, bar_s)}}  # fmt: skip


def _fmt(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if unit == "mb":
        return f"{value:.0f}"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _n(value: float) -> str:
    if math.isinf(value):
        return "never (flat)"
    return f"~{value:,.0f}" if value <= EXTRAPOLATION_CAP else f"> {EXTRAPOLATION_CAP:,.0f}"


def _json_safe(value: Any) -> Any:
    """Infinite / NaN floats as null: strict JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def report(ns: list[int], results: dict, summary: dict, args: argparse.Namespace) -> None:
    bar_min = timeframe_seconds(TIMEFRAME) / 60
    cores = len(os.sched_getaffinity(0))
    print(
        f"scaling benchmark: synthetic market, {args.days:g} days of {TIMEFRAME} bars for every "
        f"N, seed {args.seed}; LightGBM {args.lgbm_rounds} rounds x 2 releases; {cores} cores"
    )
    head = " | ".join(f"N={n}" for n in ns)
    print(f"\n| stage | metric | {head} | exponent |")
    print("|---|---|" + "---|" * len(ns) + "---|")
    metrics = (("wall s", "wall_s", "s"), ("peak MB", "peak_mb", "mb"),
               ("Δ MB over start", "delta_mb", "mb"))  # fmt: skip
    for stage in (*JUDGED, *SETUP):
        for label, key, unit in metrics:
            values = [
                results[n][stage]["peak_mb"] - results[n][stage]["start_mb"]
                if key == "delta_mb"
                else results[n][stage][key]
                for n in ns
            ]
            cells = " | ".join(_fmt(v, unit) for v in values)
            k = summary["exponents"][stage][key]
            print(f"| {LABELS[stage]} | {label} | {cells} | {k:.2f} |")
    server = [results[n]["server"] for n in ns]
    ratio = " | ".join(f"{r['wall_s'] / server[0]['wall_s']:.1f}x" for r in server)
    print("| (d) server | RSS MB after the bars | "
          + " | ".join(f"{r['rss_mb']:.0f}" for r in server)
          + f" | {exponent(ns, [r['rss_mb'] for r in server]):.2f} |")  # fmt: skip
    print("| (d) server | first-of-bar p50 ms / request | "
          + " | ".join(f"{r['p50_ms']:.1f}" for r in server)
          + f" | {exponent(ns, [r['p50_ms'] for r in server]):.2f} |")  # fmt: skip
    print(f"| (d) server | all-N wall vs N={ns[0]} | {ratio} | |")
    render = [results[n]["ingest_pipeline"]["render_s"] for n in ns]
    print("| (a') ploomber | DAG render s (`ploomber status`; every cluster task pays it) | "
          + " | ".join(_fmt(v, "s") for v in render)
          + f" | {exponent(ns, render):.2f} |")  # fmt: skip

    gib = MEMORY_LIMIT_MB // 1024
    print(f"\nextrapolated from N={ns[-1]}: the earlier of a power law (steeper of the fitted "
          f"and last-segment exponents) and the last segment's cost per added symbol")  # fmt: skip
    print(f"| stage | s / added symbol | N at {bar_min:g} min wall | MB / added symbol "
          f"| N at {gib} GiB |")  # fmt: skip
    print("|---|---|---|---|---|")
    for stage, ls in summary["limits"].items():
        time_, memory = ls["time"], ls["memory"]
        print(f"| {LABELS[stage]} | {time_['per_symbol']:.3g} | {_n(time_['n'])} "
              f"| {memory['per_symbol']:.3g} | {_n(memory['n'])} |")  # fmt: skip
    first = summary["first"]
    stage, kind = first["stage"], first["limit"]
    row = results[ns[-1]][stage]
    hit = summary["limits"][stage][kind]
    if kind == "time":
        what = f"wall time reaches one bar period ({bar_min:g} min)"
        came = f"{row['wall_s']:.3g} s at N={ns[-1]}"
    else:
        what = f"memory reaches {MEMORY_LIMIT_MB // 1024} GiB"
        came = f"{row['peak_mb']:.0f} MB peak at N={ns[-1]}"
    how = (
        f"growth exponent {hit['exponent']:.2f}"
        if hit["model"] == "power law"
        else f"{hit['per_symbol']:.3g} {'s' if kind == 'time' else 'MB'} per added symbol"
    )
    print(f"\nfirst single-machine limit: {LABELS[stage]} -- {what} at N {_n(first['n'])} "
          f"symbols ({how}, from {came}; {args.days:g}-day window)")  # fmt: skip
    bar_close = summary["bar_close"]
    print("bar-close path (a')+(c)+(d), run in sequence: "
          + ", ".join(f"{w:.3g} s" for w in bar_close["wall_s"])
          + f" at N={','.join(map(str, ns))}; one bar period at N "
          f"{_n(bar_close['time']['n'])}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", default="3,10,30,100", help="the N values, e.g. 3,10,30")
    parser.add_argument("--days", type=float, default=30.0, help="window, the same for all N")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lgbm-rounds", type=int, default=200)
    parser.add_argument("--deep-seq-len", type=int, default=64)
    parser.add_argument("--new-bars", type=int, default=3, help="measured bars per N")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_stage(args)
        return 0
    ns = sorted({int(part) for part in args.symbols.split(",") if part.strip()})
    if len(ns) < 2:
        parser.error("--symbols needs at least two N values for an exponent")
    for n in ns:
        synthetic_universe(n)  # a clear error for an N the market cannot give

    work = Path(tempfile.mkdtemp(prefix="levibot-scaling-"))
    results: dict[int, dict[str, dict]] = {}
    try:
        for n in ns:
            results[n] = {}
            for stage in ORDER:
                results[n][stage] = run_child(stage, n, work / f"n{n}", args)
                if not args.json:
                    print(f"  N={n:<4d} {stage:11s} {results[n][stage]['wall_s']:8.2f} s",
                          file=sys.stderr, flush=True)  # fmt: skip
    finally:
        if args.keep:
            print(f"projects kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    summary = analyse(ns, results, float(timeframe_seconds(TIMEFRAME)))
    runtime = time.perf_counter() - STARTED
    if args.json:
        config = {k: v for k, v in vars(args).items() if k not in ("stage", "n", "root")}
        payload = {"config": config, "symbols": ns, "runtime_s": runtime,
                   "results": results, **summary}  # fmt: skip
        print(json.dumps(_json_safe(payload), indent=2, allow_nan=False))
    else:
        report(ns, results, summary, args)
        print(f"benchmark runtime: {runtime:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
