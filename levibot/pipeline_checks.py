"""What Ploomber runs before any task (`on_render` in pipeline.yaml): the parameters.

A bad value (`ploomber build --env--timeframe 7m`, `--env--days -5`) used to fail inside
the first notebook, as a 50-70 line traceback printed twice with the useful line near
the bottom, and leave a partial `reports/ingest.ipynb`. Checked at render time, before
any task runs, it is one line naming the task, the parameter, the problem and the fix,
and the build stops with exit status 2 having written nothing.
"""

from __future__ import annotations

import sys
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
