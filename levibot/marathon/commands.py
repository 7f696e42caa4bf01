"""`levibot marathon ...`: start, replay, evaluate, check, summary.

Exit codes: `evaluate` and `summary` answer 0 PROMOTE, 1 EXTEND, 3 ROLLBACK; `start` and
`check` answer 0 when every item passed and 1 otherwise; errors are 2 (the CLI's rule).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from levibot.cli_args import EXIT_CHECK_FAILED, EXIT_OK, settings_of
from levibot.registry.canary import MARATHON_FRACTION
from levibot.settings import Settings, SettingsError, settings_from_record
from levibot.state.paths import Paths
from levibot.state.records import read_evaluation, read_last_check, read_marathon, write_last_check
from levibot.timeframe import utc_now

Handler = Callable[[argparse.Namespace], int]
DECISION_CODES = {"PROMOTE": 0, "EXTEND": 1, "ROLLBACK": 3}


def _marathon_settings(args: argparse.Namespace) -> Settings:
    """The settings of a marathon command: the env file's, on its registry_dir.

    A marathon is one deployment (store, registry, serving state together), so a
    --registry elsewhere would judge one deployment's logs against another's models.
    """
    if getattr(args, "registry", None) is not None:
        raise SettingsError(
            "marathon commands use the settings' registry_dir: set registry_dir in the "
            "--env-file instead of passing --registry"
        )
    return settings_of(args)


def _running_settings(args: argparse.Namespace) -> Settings:
    """A running marathon's own settings (recorded at its start), else the env file's."""
    settings = _marathon_settings(args)
    snapshot = read_marathon(Paths.of(settings))
    if snapshot is not None and "settings" in snapshot:
        return settings_from_record(snapshot["settings"], source="the marathon snapshot")
    return settings


@contextmanager
def _bar_progress(label: str, *, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (stdout stays the command's result), fed (done, total)."""
    from tqdm import tqdm

    bar = tqdm(desc=label, unit=unit, file=sys.stderr, total=0, dynamic_ncols=True, disable=None)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def _cmd_replay(args: argparse.Namespace) -> int:
    from levibot.marathon.replay import ReplayConfig, run_replay

    settings = _marathon_settings(args)
    config = ReplayConfig.from_settings(
        settings, hours=args.hours, speed=args.speed, requests_per_bar=args.requests_per_bar
    )
    workspace = Path(args.workspace or Paths.of(settings).default_workspace)
    with _bar_progress("replay", unit="bar") as progress:
        outcome = run_replay(settings, workspace, config, progress=progress)
    summary = {k: v for k, v in outcome.summary.items() if k != "timeline"}
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from levibot.marathon.simulate import SCENARIOS, format_table, simulate

    settings = _marathon_settings(args)
    names = [n.strip() for n in args.scenarios.split(",")] if args.scenarios else list(SCENARIOS)
    report = simulate(
        settings, runs=args.runs, scenarios=names, workers=args.workers,
        progress=None if args.json else (lambda line: print(line, file=sys.stderr)),
    )  # fmt: skip
    print(json.dumps(report, indent=2, default=str) if args.json else format_table(report))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from levibot.marathon.evaluate import evaluate_marathon
    from levibot.marathon.replay import load_replay

    settings = _marathon_settings(args)
    out = Paths.of(settings).evaluation
    if args.live:
        from levibot.marathon.live import live_summary

        settings = _running_settings(args)  # judge it by its own settings
        summary = live_summary(settings, url=args.url)
        result = evaluate_marathon(settings, summary, out_path=out)
    else:
        workspace = Path(args.workspace or Paths.of(settings).default_workspace)
        replay, summary = load_replay(workspace)  # the settings the replay recorded
        result = evaluate_marathon(replay, summary, out_path=out)
    _print_decision(result, as_json=args.json)
    if args.live and result["decision"] == "EXTEND" and not args.json:
        more = result["power"].get("hours_needed")
        print(
            "the marathon keeps running (nothing was stopped); evaluate again later"
            + (f": about {more:.0f} more hours at the observed effect" if more else "")
        )
    return DECISION_CODES[result["decision"]]


def _print_decision(result: dict[str, Any], *, as_json: bool = False, **extra: Any) -> None:
    if as_json:
        public = {k: v for k, v in result.items() if not k.startswith("_")}
        print(json.dumps({**public, **extra}, indent=2, sort_keys=True, default=str))
        return
    print(result["decision_text"])
    for check in result["checks"]:
        mark = {"pass": "x", "fail": " ", "inconclusive": "?"}.get(check.get("status"), " ")
        if "status" not in check:  # an evaluation written before checks had a status
            mark = "x" if check["passed"] else " "
        print(f"  [{mark}] {check['name']}: {check['detail']}")


def _cmd_summary(args: argparse.Namespace) -> int:
    paths = Paths.of(_marathon_settings(args))
    result = read_evaluation(paths)
    if result is None:
        raise FileNotFoundError(f"no marathon evaluation at {paths.evaluation}: run `make run`")
    _print_decision(result, as_json=args.json, reports=str(paths.report_index))
    if not args.json:
        print(f"reports: {paths.report_index}")
    return DECISION_CODES[result["decision"]]


def _item(results: list[tuple[str, bool, str]], name: str, ok: bool, detail: str) -> None:
    results.append((name, ok, detail))


def _cmd_check(args: argparse.Namespace) -> int:
    """The during-marathon checklist (cron every 6-12 h)."""
    from levibot.online.shadow_log import ShadowLog
    from levibot.registry import load_canary_policy, load_registry
    from levibot.state.drift_log import latest_drift_status

    paths = Paths.of(_running_settings(args))
    limits = load_canary_policy(paths.canary_policy).thresholds
    results: list[tuple[str, bool, str]] = []
    try:
        health = httpx.get(f"{args.url}/healthz", timeout=10).json()
        _item(
            results,
            "api healthy",
            bool(health.get("ok")),
            f"{health.get('status', 'ok' if health.get('ok') else 'not ok')}"
            + "".join(f"; {p}" for p in health.get("problems", [])),
        )
        worst = health["feature_staleness_sec"]["worst"]
        _item(results, "staleness", worst is not None and worst <= limits.max_staleness_sec,
              f"worst {worst} s (limit {limits.max_staleness_sec:.0f})")  # fmt: skip
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        _item(results, "api healthy", False, f"{args.url} unreachable ({exc})")
    registry = load_registry(paths.registry)
    acceptable = limits.ece.acceptable  # the go-live guide: "ECE < 0.06" during the marathon
    for role, entry in (("prod", registry.prod), ("candidate", registry.candidate)):
        if entry is not None:
            ece = entry.models["lgbm"].calibration.ece_calibrated
            _item(results, f"{role} ECE", ece <= acceptable, f"{ece:.3f} (limit {acceptable})")
    status = latest_drift_status(paths) or "no drift check yet"
    _item(results, "drift not critical", status != "critical", str(status))
    counts = ShadowLog(paths.logs).counts()
    logged = sum(counts.get("predictions", {}).values())
    before = (read_last_check(paths) or {}).get("predictions", -1)
    _item(results, "shadow logs growing", logged > before, f"{logged} lines (last check: {before})")
    write_last_check(paths, {"predictions": logged, "at": utc_now().isoformat()})
    log_file = paths.server_log
    errors = log_file.read_text(errors="replace").count("ERROR") if log_file.exists() else 0
    _item(results, "no repeated server errors", errors < 3, f"{errors} ERROR lines in {log_file}")
    if args.json:
        items = [{"item": name, "ok": ok, "detail": detail} for name, ok, detail in results]
        print(json.dumps(items, indent=2))
    for name, ok, detail in [] if args.json else results:
        print(f"  [{'x' if ok else ' '}] {name}: {detail}")
    return EXIT_OK if all(ok for _, ok, _ in results) else EXIT_CHECK_FAILED


def _cmd_start(args: argparse.Namespace) -> int:
    from levibot.marathon.start import start_marathon

    return start_marathon(
        _marathon_settings(args), port=args.port, workers=args.workers, fraction=args.fraction
    )


def add_marathon(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register `levibot marathon <start|replay|evaluate|check|summary>`."""
    marathon = sub.add_parser("marathon", parents=[common], help="the 48h canary-paper marathon")
    commands = marathon.add_subparsers(dest="marathon_command", required=True, metavar="ACTION")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[common], help=text, description=text)
        parser.set_defaults(handler=handler)
        return parser

    start = add("start", _cmd_start, "pre-flight checks, tuning, canary on, managed API, snapshot")
    start.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    start.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    start.add_argument(
        "--fraction", type=float, default=MARATHON_FRACTION,
        help=f"the candidate's share of the traffic (default {MARATHON_FRACTION:g})",
    )  # fmt: skip
    replay = add("replay", _cmd_replay, "drive a server through held-out bars on a simulated clock")
    replay.add_argument("--hours", type=float, default=None, help="default: holdout_hours")
    replay.add_argument("--speed", type=float, default=0.0, help="x real time; 0 = fastest")
    replay.add_argument(
        "--requests-per-bar", type=int, default=None,
        help="requests per bar (default: replay_requests_per_bar)",
    )  # fmt: skip
    replay.add_argument(
        "--workspace", type=Path, default=None, help="default: <data_dir>/replay/latest"
    )
    sim = add("simulate", _cmd_simulate,
              "decision-quality benchmark: N synthetic marathons per scenario")  # fmt: skip
    sim.add_argument("--runs", type=int, default=20, help="marathons per scenario (default 20)")
    sim.add_argument("--scenarios", default=None, help="comma-separated (default: all)")
    sim.add_argument("--json", action="store_true", help="print the JSON instead of a table")
    sim.add_argument(
        "--workers", type=int, default=None, help="runs at a time (default: one per core)"
    )
    evaluate = add(
        "evaluate", _cmd_evaluate, "T+48h evaluation: PROMOTE (0) / EXTEND (1) / ROLLBACK (3)"
    )
    evaluate.add_argument("--workspace", type=Path, default=None, help="a replay (default)")
    evaluate.add_argument("--live", action="store_true", help="the running marathon instead")
    evaluate.add_argument(
        "--url", default="http://127.0.0.1:8000", help="the server, with --live (default :8000)"
    )
    check = add(
        "check",
        _cmd_check,
        f"during-marathon checklist; exit {EXIT_CHECK_FAILED} when an item fails",
    )
    check.add_argument(
        "--url", default="http://127.0.0.1:8000", help="the server (default 127.0.0.1:8000)"
    )
    summary = add(
        "summary", _cmd_summary,
        "the last evaluation's decision, each check's value against its limit, the report index",
    )  # fmt: skip
    for parser in (evaluate, check, summary):
        parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
