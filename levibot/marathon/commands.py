"""`levibot marathon ...`: start, replay, evaluate, check, summary.

Exit codes: `evaluate` and `summary` answer 0 PROMOTE, 1 EXTEND, 3 ROLLBACK; `start` and
`check` answer 0 when every item passed and 1 otherwise; errors are 2 (the CLI's rule).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from levibot.io import read_json, write_json_atomic
from levibot.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace], int]
DECISION_CODES = {"PROMOTE": 0, "EXTEND": 1, "ROLLBACK": 3}


def evaluation_path(settings: Settings) -> Path:
    return settings.registry_dir / "runs" / "marathon_evaluation.json"


def default_workspace(settings: Settings) -> Path:
    return settings.data_dir / "replay" / "latest"


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.env_file)


def _cmd_replay(args: argparse.Namespace) -> int:
    from levibot.marathon.replay import ReplayConfig, run_replay

    settings = _settings(args)
    config = ReplayConfig(
        hours=args.hours or settings.holdout_hours, speed=args.speed,
        requests_per_bar=args.requests_per_bar, seed=settings.seed,
    )  # fmt: skip
    outcome = run_replay(settings, Path(args.workspace or default_workspace(settings)), config)
    summary = {k: v for k, v in outcome.summary.items() if k != "timeline"}
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from levibot.marathon.evaluate import evaluate_marathon
    from levibot.marathon.replay import load_replay

    settings = _settings(args)
    if args.live:
        from levibot.marathon.evaluate import live_summary

        summary = live_summary(settings, url=args.url)
        result = evaluate_marathon(settings, summary, out_path=evaluation_path(settings))
    else:
        workspace = Path(args.workspace or default_workspace(settings))
        replay, summary = load_replay(workspace, settings)
        result = evaluate_marathon(replay, summary, out_path=evaluation_path(settings))
    _print_decision(result)
    return DECISION_CODES[result["decision"]]


def _print_decision(result: dict[str, Any]) -> None:
    print(result["decision_text"])
    for check in result["checks"]:
        print(f"  [{'x' if check['passed'] else ' '}] {check['name']}: {check['detail']}")


def _cmd_summary(args: argparse.Namespace) -> int:
    settings = _settings(args)
    path = evaluation_path(settings)
    if not path.exists():
        raise FileNotFoundError(f"no marathon evaluation at {path}: run `make run` first")
    result = read_json(path)
    _print_decision(result)
    index = settings.reports_dir / "index.html"
    print(f"reports: {index}")
    return DECISION_CODES[result["decision"]]


def _item(results: list[tuple[str, bool, str]], name: str, ok: bool, detail: str) -> None:
    results.append((name, ok, detail))
    print(f"  [{'x' if ok else ' '}] {name}: {detail}")


def _cmd_check(args: argparse.Namespace) -> int:
    """The during-marathon checklist (cron every 6-12 h)."""
    from levibot.drift import drift_dir
    from levibot.online.layout import ServingPaths
    from levibot.online.shadow_log import ShadowLog
    from levibot.registry import (
        canary_policy_path,
        load_canary_policy,
        load_registry,
        registry_path,
    )

    settings = _settings(args)
    paths = ServingPaths.for_settings(settings)
    guards = load_canary_policy(canary_policy_path(settings)).guards
    results: list[tuple[str, bool, str]] = []
    try:
        health = httpx.get(f"{args.url}/healthz", timeout=10).json()
        _item(
            results,
            "api healthy",
            bool(health.get("ok")),
            f"registry {health.get('registry_status')}",
        )
        worst = health["feature_staleness_sec"]["worst"]
        _item(results, "staleness", worst is not None and worst <= guards.max_staleness_sec,
              f"worst {worst} s (limit {guards.max_staleness_sec:.0f})")  # fmt: skip
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        _item(results, "api healthy", False, f"{args.url} unreachable ({exc})")
    registry = load_registry(registry_path(settings))
    for role, entry in (("prod", registry.prod), ("candidate", registry.candidate)):
        if entry is not None:
            ece = entry.models["lgbm"].calibration.ece_calibrated
            _item(
                results, f"{role} ECE", ece <= guards.max_ece, f"{ece:.3f} (limit {guards.max_ece})"
            )
    latest = drift_dir(settings) / "latest.json"
    status = read_json(latest)["status"] if latest.exists() else "no drift check yet"
    _item(results, "drift not critical", status != "critical", str(status))
    counts = ShadowLog(paths.logs).counts()
    logged = sum(counts.get("predictions", {}).values())
    state_file = paths.root / "last_check.json"
    before = read_json(state_file).get("predictions", -1) if state_file.exists() else -1
    _item(results, "shadow logs growing", logged > before, f"{logged} lines (last check: {before})")
    write_json_atomic(
        state_file, {"predictions": logged, "at": pd.Timestamp.now("UTC").isoformat()}
    )
    log_file = paths.root / "server.log"
    errors = log_file.read_text(errors="replace").count("ERROR") if log_file.exists() else 0
    _item(results, "no repeated server errors", errors < 3, f"{errors} ERROR lines in {log_file}")
    return 0 if all(ok for _, ok, _ in results) else 1


def _cmd_start(args: argparse.Namespace) -> int:
    from levibot.marathon.start import start_marathon

    return start_marathon(load_settings(args.env_file), port=args.port, workers=args.workers)


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

    start = add(
        "start", _cmd_start, "pre-flight checks, tuning, canary at 10%, managed API, snapshot"
    )
    start.add_argument("--port", type=int, default=8000)
    start.add_argument("--workers", type=int, default=2)
    replay = add("replay", _cmd_replay, "drive a server through held-out bars on a simulated clock")
    replay.add_argument("--hours", type=float, default=None, help="default: holdout_hours")
    replay.add_argument("--speed", type=float, default=0.0, help="x real time; 0 = fastest")
    replay.add_argument("--requests-per-bar", type=int, default=12)
    replay.add_argument("--workspace", type=Path, default=None)
    evaluate = add(
        "evaluate", _cmd_evaluate, "T+48h evaluation: PROMOTE (0) / EXTEND (1) / ROLLBACK (3)"
    )
    evaluate.add_argument("--workspace", type=Path, default=None, help="a replay (default)")
    evaluate.add_argument("--live", action="store_true", help="the running marathon instead")
    evaluate.add_argument("--url", default="http://127.0.0.1:8000", help="with --live")
    check = add("check", _cmd_check, "during-marathon checklist; non-zero when an item fails")
    check.add_argument("--url", default="http://127.0.0.1:8000")
    add("summary", _cmd_summary, "print the last evaluation's decision and the report index")
