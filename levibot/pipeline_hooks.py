"""Ploomber hooks (pipeline.yaml): parameters checked before any task runs (`on_render`),
and the run recorded after a build that reached the evaluation (`on_finish`).

A bad value (`ploomber build --env--timeframe 7m`, `--env--days -5`) used to fail inside
the first notebook, as a 50-70 line traceback printed twice with the useful line near
the bottom, and leave a partial `reports/ingest.ipynb`. Checked at render time, before
any task runs, it is one line naming the task, the parameter, the problem and the fix,
and the build stops with exit status 2 having written nothing.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from levibot.io import format_errors
from levibot.pipeline_tasks import INVALID_SYMBOLS
from levibot.settings import Settings

EXIT_BAD_PARAMETER = 2
log = logging.getLogger("levibot.pipeline")


def parameter_problems(dag: Any) -> list[str]:
    """One message per task whose settings parameters do not validate."""
    fields = set(Settings.model_fields)
    problems = []
    for name in dag:
        if INVALID_SYMBOLS in name:  # the grid's stand-in: the ingest task reports it
            continue
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
REPORT_PRODUCT = "nb"  # a notebook task's rendered report (pipeline.yaml)


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
    the decision-first index page with the earlier runs.

    Bookkeeping must never turn a finished build into a failed one: a problem here is
    logged as one line and the build's products stay as they are."""
    try:
        _record_build(dag, report)
    except Exception as exc:
        log.warning("the run could not be recorded (the build itself succeeded): %s", exc)


def task_reports(dag: Any) -> dict[str, str | None]:
    """Task -> the file name of its HTML report, in pipeline order (the build report lists
    skipped tasks last); None for a function task (`fetch-<SYMBOL>`), which has none."""
    reports: dict[str, str | None] = {}
    for name in dag:
        products = dag[name].product.to_json_serializable()
        report = products.get(REPORT_PRODUCT) if isinstance(products, dict) else None
        reports[name] = Path(report).name if report else None
    return reports


def _record_build(dag: Any, report: Any) -> None:
    from levibot.dag_picture import dag_graph, draw_dag
    from levibot.io import read_json
    from levibot.run_history import git_revision, list_runs, make_record, save_run
    from levibot.run_page import write_run_page
    from levibot.settings import task_settings
    from levibot.state.paths import Paths

    ran = {t["name"]: t for t in build_tasks(report)}
    if not ran.get(EVALUATION_TASK, {}).get("ran"):
        return  # nothing new was decided: the latest run stays the latest
    tasks = [
        {**ran.get(name, {"name": name, "ran": False, "seconds": 0.0}), "report": report}
        for name, report in task_reports(dag).items()
    ]
    products = dag[EVALUATION_TASK].product  # where this build wrote them, overrides included
    evaluation_file = Path(str(products["evaluation"])).resolve()
    reports_dir = Path(str(products["nb"])).resolve().parent
    settings = task_settings(
        str(dag["ingest"].product["manifest"]),
        registry_dir=evaluation_file.parent.parent, reports_dir=reports_dir,
    )  # fmt: skip
    paths = Paths.of(settings)
    if paths.evaluation != evaluation_file:
        raise ValueError(f"the evaluation was written to {evaluation_file}, not {paths.evaluation}")
    record = make_record(
        read_json(evaluation_file), tasks=tasks, revision=git_revision(reports_dir)
    )
    save_run(paths, record)
    try:  # the task graph linked from the run page; a drawing problem must not cost the page
        draw_dag(dag_graph(dag), paths.pipeline_picture)
    except Exception as exc:
        log.warning("the task graph could not be drawn: %s", exc)
    earlier = [r for r in list_runs(paths) if r["run_id"] != record["run_id"]]
    write_run_page(paths.report_index, record, earlier=earlier, picture=paths.pipeline_picture)
