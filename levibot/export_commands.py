"""`levibot export argo|airflow`: the pipeline as a cluster workflow (see cluster_export)."""

from __future__ import annotations

import argparse
from pathlib import Path

from levibot.cli_args import EXIT_OK
from levibot.cluster_export import BACKENDS, DEFAULT_OUTPUT, ExportError, export_workflow


def add_export(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    export = sub.add_parser(
        "export", parents=[common],
        help="write pipeline.yaml as an Argo Workflow or an Airflow DAG (offline, no Docker)",
    )  # fmt: skip
    export.add_argument("backend", choices=sorted(BACKENDS), help="the workflow engine")
    export.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT,
        help=f"folder to write into (default {DEFAULT_OUTPUT}/)",
    )  # fmt: skip
    export.add_argument(
        "--image", default=None,
        help="Argo only: the image every task runs (default levibot:<version>)",
    )  # fmt: skip
    export.set_defaults(handler=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    if args.image is not None and args.backend != "argo":
        raise ExportError("--image applies to argo only (Airflow tasks run on the worker)")
    env_file = getattr(args, "env_file", None)
    done = export_workflow(
        args.backend, Path.cwd(), args.output, image=args.image, env_file=env_file
    )
    for path in done.files:
        print(f"wrote {path}")
    print(f"{len(done.graph)} tasks, {sum(map(len, done.graph.values()))} dependencies")
    return EXIT_OK
