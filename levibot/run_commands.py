"""`levibot runs list` and `levibot runs compare A B`: the run history on the command line."""

from __future__ import annotations

import argparse
import json

from levibot.cli_args import EXIT_OK, paths_of
from levibot.run_history import compare_runs, find_run, list_runs


def _cmd_list(args: argparse.Namespace) -> int:
    runs = list_runs(paths_of(args))
    if args.json:
        print(json.dumps(runs, indent=2, sort_keys=True))
        return EXIT_OK
    if not runs:
        print("no runs recorded yet: `make run` records one per build that reaches the evaluation")
    for run in runs:
        candidate = (run.get("models") or {}).get("candidate")
        print(f"{run['run_id']}  {run.get('decision')!s:8s}  {run.get('checks_passed')}/5 checks"
              f"  candidate {candidate}  git {run.get('git')}")  # fmt: skip
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    rows = compare_runs(find_run(paths, args.a), find_run(paths, args.b))
    if args.json:
        print(json.dumps([{"what": w, "a": a, "b": b} for w, a, b in rows], indent=2))
        return EXIT_OK
    width = max(len(what) for what, _, _ in rows)
    for what, a, b in rows:
        mark = " " if a == b else "*"
        print(f"{mark} {what:{width}s}  {a:<40s}  {b}")
    return EXIT_OK


def add_runs(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    runs = sub.add_parser(
        "runs", parents=[common], help="the run history: builds that reached the evaluation"
    )
    verbs = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    listing = verbs.add_parser("list", parents=[common], help="recorded runs, newest first")
    listing.add_argument("--json", action="store_true", help="print the records as JSON")
    listing.set_defaults(handler=_cmd_list)
    compare = verbs.add_parser(
        "compare", parents=[common],
        help="two runs side by side (* marks a difference); ids may be prefixes or 'latest'",
    )  # fmt: skip
    compare.add_argument("a", help="first run id (or a unique prefix, or 'latest')")
    compare.add_argument("b", help="second run id (or a unique prefix, or 'latest')")
    compare.add_argument("--json", action="store_true", help="print the rows as JSON")
    compare.set_defaults(handler=_cmd_compare)
