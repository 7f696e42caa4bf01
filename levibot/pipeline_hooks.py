"""Ploomber hooks (pipeline.yaml): parameters checked before any task runs (`on_render`),
and the run recorded after a build that reached the evaluation (`on_finish`).

A bad value (`ploomber build --env--timeframe 7m`, `--env--days -5`) used to fail inside
the first notebook, as a 50-70 line traceback printed twice with the useful line near
the bottom, and leave a partial `reports/ingest.ipynb`. Checked at render time, before
any task runs, it is one line naming the task, the parameter, the problem and the fix,
and the build stops with exit status 2 having written nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from levibot.io import format_errors
from levibot.settings import Settings

EXIT_BAD_PARAMETER = 2


def parameter_problems(dag: Any) -> list[str]:
    """One message per task whose settings parameters do not validate."""
    fields = set(Settings.model_fields)
    problems = []
    for name in dag:
        params = dag[name].params.to_dict()
        ours = {key: value for key, value in params.items() if key in fields}
        try:
            Settings.model_validate(ours)
        except ValidationError as exc:
            problems.append(f"task {name}: {format_errors(exc)}")
    return problems


def check_parameters(dag: Any) -> None:
    """Stop the build with one line when a parameter is invalid (see module doc)."""
    problems = parameter_problems(dag)
    if problems:
        first = problems[0]  # later tasks repeat the same env value
        print(
            f"ploomber build: invalid parameter, nothing was run: {first}; "
            "fix it in env.yaml or in the --env--<name> override",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_BAD_PARAMETER)


EVALUATION_TASK = "evaluate_marathon"


def build_tasks(report: Any) -> list[dict[str, Any]]:
    """Per task, in build order: ran in this build or not, and how long it took."""
    table = report.to_dict()
    names = table.get("name", [])
    ran = table.get("Ran?", [False] * len(names))
    seconds = table.get("Elapsed (s)", [0.0] * len(names))
    return [
        {"name": str(n), "ran": bool(r), "seconds": float(s or 0.0)}
        for n, r, s in zip(names, ran, seconds, strict=False)
    ]


def record_build(dag: Any, report: Any) -> None:
    """After a build whose evaluation ran: keep the run (`levibot.run_history`) and write
    the decision-first index page with the earlier runs."""
    from levibot.io import read_json
    from levibot.run_history import git_revision, list_runs, make_record, save_run
    from levibot.run_page import write_run_page
    from levibot.settings import task_settings
    from levibot.state.paths import Paths

    tasks = build_tasks(report)
    for task in tasks:  # the report file each task writes (not always named after it)
        product = dag[task["name"]].product
        task["report"] = Path(str(product["nb"])).name
    if not any(t["name"] == EVALUATION_TASK and t["ran"] for t in tasks):
        return  # nothing new was decided: the latest run stays the latest
    manifest = dag["ingest"].product["manifest"]
    paths = Paths.of(task_settings(str(manifest)))
    evaluation = read_json(paths.evaluation)
    record = make_record(evaluation, tasks=tasks, revision=git_revision(paths.reports_dir))
    save_run(paths, record)
    earlier = [r for r in list_runs(paths) if r["run_id"] != record["run_id"]]
    write_run_page(paths.report_index, record, earlier=earlier)
