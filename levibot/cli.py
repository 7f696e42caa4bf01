"""The `levibot` console script.

Each command group is added by a small ``_add_<group>`` function and each command is a
``_cmd_<name>(args) -> int`` handler, so new groups (drift, tune, marathon ...) plug in
without touching the others. Expected failures print one ``error: ...`` line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from levibot.cli_args import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_STATUS_HELP,
    iso_time,
    one_line,
    paths_of,
    settings_of,
)
from levibot.export_commands import add_export
from levibot.io import CorruptFileError
from levibot.marathon.commands import add_marathon
from levibot.registry import (
    RegistryError,
    describe,
    load_registry,
    registry_events,
    tighten_policy,
)
from levibot.run_commands import add_runs
from levibot.settings import DEFAULT_ENV_FILE, SettingsError
from levibot.symbols import parse_symbols

EXPECTED_ERRORS = (RegistryError, SettingsError, CorruptFileError, OSError, RuntimeError)

Handler = Callable[[argparse.Namespace], int]


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--env-file / --registry, accepted before or after the subcommand.

    On subparsers the defaults are SUPPRESS so they do not overwrite a value given
    before the subcommand.
    """
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--env-file",
        default=default,
        help="settings file (default: env.yaml in the working directory, if there is one; "
        "a file named here must exist)",
    )
    parser.add_argument(
        "--registry",
        default=default,
        type=Path,
        help="registry JSON (default: the settings' registry_dir); its canary policy, "
        "weights and drift results are read beside it",
    )


# ------------------------------------------------------------------------ registry


def _cmd_registry_show(args: argparse.Namespace) -> int:
    path = paths_of(args).registry
    registry = load_registry(path)
    if args.json:
        print(json.dumps(registry.model_dump(mode="json"), indent=2, sort_keys=True))
    else:
        print(describe(registry, total_events=len(registry_events(path))))
    return EXIT_OK


def _cmd_registry_tighten(args: argparse.Namespace) -> int:
    registry = tighten_policy(
        paths_of(args).registry, delta=args.delta, reason=args.reason, target=args.target
    )
    entry = getattr(registry, args.target)
    event = registry.events[-1].details
    old_entry, new_entry = event["entry_threshold"]
    old_exit, new_exit = event["exit_threshold"]
    print(
        f"tightened {args.target} {entry.id}: entry {old_entry:g} -> {new_entry:g}, "
        f"exit {old_exit:g} -> {new_exit:g}"
    )
    return EXIT_OK


def _add_registry(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("registry", help="inspect and change the model registry")
    cmds = group.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")

    show = cmds.add_parser("show", parents=[common], help="summary of prod/candidate/archive")
    show.add_argument("--json", action="store_true", help="print the raw registry JSON")
    show.set_defaults(handler=_cmd_registry_show)

    _add_promote_rollback(cmds, common)  # the same commands as `levibot promote / rollback`

    tighten = cmds.add_parser(
        "tighten-policy", parents=[common], help="raise entry / lower exit thresholds"
    )
    tighten.add_argument(
        "--delta", type=float, default=0.01, help="added to entry, taken from exit (default 0.01)"
    )
    tighten.add_argument("--reason", required=True, help="recorded in the audit log")
    tighten.add_argument("--target", choices=("candidate", "prod"), default="candidate")
    tighten.set_defaults(handler=_cmd_registry_tighten)


# ---------------------------------------------------------------------------- tune


def _cmd_tune(args: argparse.Namespace) -> int:
    from levibot.tuning import TuningError, run_tuning

    try:
        result = run_tuning(
            settings_of(args), now=args.now, days=args.days, registry_file=args.registry
        )
    except TuningError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        return EXIT_OK
    w_opt = "n/a" if result.w_opt is None else f"{result.w_opt:.2f}"
    print(f"weights: lgbm={result.weights['lgbm']:.3f} deep={result.weights['deep']:.3f}")
    print(f"w_opt: {w_opt}")
    print(f"aligned rows: {result.aligned_rows}")
    print(f"kept previous: {'yes' if result.kept_previous else 'no'}")
    print(f"reason: {result.reason}")
    return EXIT_OK


def _add_tune(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    tune = sub.add_parser(
        "tune", parents=[common], help="tune the LightGBM/transformer ensemble weights"
    )
    tune.add_argument(
        "--days", type=float, default=None, help="days of shadow logs (default: tuning_days)"
    )
    tune.add_argument("--now", type=iso_time, default=None, help="ISO end of the window")
    tune.add_argument("--json", action="store_true", help="print the result as JSON")
    tune.set_defaults(handler=_cmd_tune)


# --------------------------------------------------------------------------- drift

DRIFT_EPILOG = """\
exit codes: 0 ok, 1 warning, 2 critical (the kill switch was turned on),
3 insufficient data, 4 the reference file is unreadable (refit it). An error
prints one 'error: ...' line and also exits 2, so a script that must tell
'critical' from an error should pass --json and read "status" (an error prints
no JSON).
"""


def _cmd_drift(args: argparse.Namespace) -> int:
    from levibot.drift import DriftError, format_table, run_drift_check

    try:
        result = run_drift_check(
            settings_of(args),
            now=args.now,
            current_hours=args.hours,
            reference_path=args.reference,
            registry_file=args.registry,
        )
    except DriftError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        print(format_table(result))
    return result.exit_code


def _add_drift(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    drift = sub.add_parser(
        "drift",
        parents=[common],
        help="drift of the newest bars vs the newest release's training window (features, "
        "dead feeds, the served releases' loss)",
        description="Per-feature PSI/KS and short-window scale of the newest bars against "
        "the newest release's training window (the candidate's during a marathon), each "
        "against its own noise-calibrated limits; dead or missing feeds; the served "
        "releases' realised log loss against their test level. "
        "CRITICAL turns the kill switch on.",
        epilog=DRIFT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    drift.add_argument(
        "--hours", type=float, default=None, help="current window (default: drift_current_hours)"
    )
    drift.add_argument(
        "--now", type=iso_time, default=None, help="ISO end of the window (default: newest bar)"
    )
    drift.add_argument(
        "--reference", type=Path, default=None, help="stored reference .npz (default: fit it now)"
    )
    drift.add_argument("--json", action="store_true", help="print the result as JSON")
    drift.set_defaults(handler=_cmd_drift)


# ---------------------------------------------------------------------- operations


def _cmd_promote(args: argparse.Namespace) -> int:
    from levibot.operations import promote_candidate

    registry, policy = promote_candidate(paths_of(args), reason=args.reason)
    assert registry.prod is not None
    previous = registry.events[-1].details.get("previous_prod")
    print(f"promoted {registry.prod.id} to prod (previous prod: {previous})")
    print(f"canary disabled (no candidate left); fraction stays {policy.fraction:g}")
    return EXIT_OK


def _cmd_rollback(args: argparse.Namespace) -> int:
    from levibot.operations import rollback_prod

    registry = rollback_prod(paths_of(args), reason=args.reason)
    assert registry.prod is not None
    previous = registry.events[-1].details.get("previous_prod")
    print(f"rolled back: prod is {registry.prod.id} (was {previous})")
    return EXIT_OK


def _add_promote_rollback(sub: argparse._SubParsersAction, common: argparse.ArgumentParser):
    """promote / rollback, under `levibot` and under `levibot registry` (one implementation)."""
    promote_cmd = sub.add_parser(
        "promote", parents=[common],
        help="candidate -> prod (old prod archived), canary off; hot-reloaded, audited",
    )  # fmt: skip
    promote_cmd.add_argument(
        "--reason", required=True, help="why; recorded in the registry and the audit log"
    )
    promote_cmd.set_defaults(handler=_cmd_promote)
    rollback_cmd = sub.add_parser(
        "rollback", parents=[common], help="restore the previous prod; hot-reloaded, audited"
    )
    rollback_cmd.add_argument(
        "--reason", default=None, help="why (default: 'manual rollback'); recorded"
    )
    rollback_cmd.set_defaults(handler=_cmd_rollback)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"fraction must be in [0, 1], got {text}")
    return value


def _cmd_canary(args: argparse.Namespace) -> int:
    from levibot.operations import canary_summary, current_candidate, set_canary

    paths = paths_of(args)
    enabled = args.canary_command == "enable"
    set_canary(paths, enabled=enabled, fraction=getattr(args, "fraction", None))
    print(canary_summary(paths))
    if enabled and current_candidate(paths.registry) is None:
        print("note: no candidate in the registry, so all traffic stays on prod")
    return EXIT_OK


def _add_operations(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """`levibot promote | rollback | canary enable/disable`: hot-reloaded, audited."""
    _add_promote_rollback(sub, common)
    canary = sub.add_parser("canary", help="switch the candidate's canary traffic on or off")
    actions = canary.add_subparsers(dest="canary_command", required=True, metavar="ACTION")
    enable = actions.add_parser("enable", parents=[common], help="send --fraction to candidate")
    enable.add_argument(
        "--fraction", type=_fraction, default=None, help="in [0, 1] (default: keep current)"
    )
    enable.set_defaults(handler=_cmd_canary)
    disable = actions.add_parser("disable", parents=[common], help="all traffic to prod")
    disable.set_defaults(handler=_cmd_canary)


# ------------------------------------------------------------------------- retrain


def _cmd_retrain(args: argparse.Namespace) -> int:
    from levibot.operations import BuildFailed, run_retrain

    try:
        symbols = parse_symbols(args.symbol, dedupe=True)
    except ValueError as exc:
        raise SettingsError(f"--symbol: {exc}") from exc
    print("retraining: ploomber build --partially calibrate_and_sweep ...", flush=True)
    try:
        result = run_retrain(
            args.env_file or DEFAULT_ENV_FILE, settings_of(args), symbols=symbols, days=args.days,
            registry=args.registry, timeout=args.timeout,
        )  # fmt: skip
    except BuildFailed as exc:
        if exc.tail:
            print(exc.tail, file=sys.stderr)
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    if result.output_tail:
        print(result.output_tail)
    if result.new_candidate:
        print(f"new candidate: {result.candidate} (previous: {result.previous_candidate})")
    else:
        print(f"warning: no new candidate registered (candidate: {result.candidate})")
    return EXIT_OK


def _add_retrain(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    retrain = sub.add_parser(
        "retrain",
        parents=[common],
        help="ingest, train, calibrate and register a new candidate (ploomber build)",
    )
    retrain.add_argument(
        "--symbol", action="append", default=None, help="repeatable or comma list (default: env)"
    )
    retrain.add_argument("--days", type=float, default=None, help="window length (default: env)")
    retrain.add_argument("--timeout", type=float, default=None, help="seconds (default: none)")
    retrain.set_defaults(handler=_cmd_retrain)


# ------------------------------------------------------------------------ schedule


def _cmd_schedule(args: argparse.Namespace) -> int:
    from levibot.operations import cron_jobs, write_schedule

    out = write_schedule(args.env_file or DEFAULT_ENV_FILE, settings_of(args), args.output)
    print(f"wrote {out} ({len(cron_jobs(out.read_text()))} jobs); install with:")
    print(f"  (crontab -l 2>/dev/null; cat {out}) | crontab -")
    return EXIT_OK


def _add_schedule(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    schedule = sub.add_parser(
        "schedule", parents=[common], help="write the crontab (drift, tune, ingest, check, retrain)"
    )
    schedule.add_argument(
        "--output", type=Path, default=None, help="default: <project>/ops/cron/levibot.cron"
    )
    schedule.set_defaults(handler=_cmd_schedule)


def _cmd_dag(args: argparse.Namespace) -> int:
    from levibot.dag_picture import draw_dag, pipeline_graph
    from levibot.operations import PIPELINE_FILE

    pipeline = Path(PIPELINE_FILE)
    if not pipeline.is_file():
        raise RuntimeError(f"no {PIPELINE_FILE} here; run levibot dag from the project root")
    out = draw_dag(pipeline_graph(pipeline), args.output or paths_of(args).pipeline_picture)
    print(f"wrote {out}")
    return EXIT_OK


def _add_dag(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    dag = sub.add_parser(
        "dag", parents=[common], help="draw pipeline.yaml's task graph as a PNG (offline)"
    )
    dag.add_argument("--output", type=Path, default=None, help="default: <reports>/pipeline.png")
    dag.set_defaults(handler=_cmd_dag)


# -------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="levibot", description=__doc__.splitlines()[0], epilog=EXIT_STATUS_HELP
    )
    _common_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_registry(sub, common)
    _add_tune(sub, common)
    _add_drift(sub, common)
    add_marathon(sub, common)
    _add_operations(sub, common)
    _add_retrain(sub, common)
    _add_schedule(sub, common)
    add_runs(sub, common)
    add_export(sub, common)
    _add_dag(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 usage or expected error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error: argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        return args.handler(args)
    except EXPECTED_ERRORS as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
