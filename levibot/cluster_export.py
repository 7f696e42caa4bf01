"""The pipeline as an Argo Workflow or an Airflow DAG, written by Ploomber's own exporter.

`soopervisor add NAME --backend ...` then `soopervisor export NAME --skip-docker --mode
force` run in a scratch copy of the project named `levibot` (soopervisor names the
workflow after the folder and insists on a `requirements.lock.txt`, which is our
constraints file), so the checkout gets no `soopervisor.yaml` or environment folders.
No Docker and no network are needed. Three things soopervisor leaves wrong are set here:

- Argo refuses DAG task names with `_` or capitals (`train_lgbm`, `fetch-BTCUSDT`): the
  Argo task is named `train-lgbm`, and its `task_name` parameter keeps the Ploomber name
  that `ploomber task` runs.
- Tasks run in separate pods, so they share one volume: the `levibot-workspace` claim,
  mounted where `deploy/Dockerfile` links `data/`, `registry/` and `reports/`.
- The image is `levibot:<version>` (`docker build -f deploy/Dockerfile -t levibot:<version> .`);
  soopervisor's guess without a Docker build is an invalid tag.

The Airflow DAG uses soopervisor's `bash` preset: each task is `ploomber task NAME` on a
worker where the project is installed (`make install`), in the folder named by
`LEVIBOT_PROJECT_DIR`; data are shared through that folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from levibot.io import write_text_atomic
from levibot.operations import PIPELINE_FILE, PLOOMBER_ENV

PACKAGE = "levibot"
WORKSPACE_VOLUME = "levibot-workspace"  # deploy/Dockerfile links data/ etc. under /mnt/<this>
WORKSPACE = f"/mnt/{WORKSPACE_VOLUME}"
WORKSPACE_FOLDERS = ("data", "registry", "reports")  # the image's links into the workspace
ENV_FILE_VARIABLE = "PLOOMBER_ENV_FILENAME"
IMAGE_UID = 1000  # the image's user (deploy/Dockerfile useradd --uid)
PROJECT_FILES = (PIPELINE_FILE, "env.yaml", "notebooks")
LOCK_FILE = "requirements.lock.txt"
CONSTRAINTS = Path("requirements") / "constraints.txt"
PROJECT_DIR_VARIABLE = "LEVIBOT_PROJECT_DIR"
ARGO_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
BACKENDS = {"argo": "argo-workflows", "airflow": "airflow"}
DEFAULT_OUTPUT = Path("deploy") / "cluster"


class ExportError(RuntimeError):
    """The export could not be written (soopervisor failed, or a name clash)."""


@dataclass(frozen=True)
class Export:
    """What an export wrote: the files, and the task graph they encode."""

    files: tuple[Path, ...]
    graph: dict[str, list[str]]  # Ploomber task name -> its upstream task names


def default_image() -> str:
    return f"{PACKAGE}:{version(PACKAGE)}"


def argo_task_name(task: str) -> str:
    """A Ploomber task name as a valid Argo DAG task name (lower case, `-` for `_`)."""
    name = task.lower().replace("_", "-")
    if not ARGO_NAME.match(name):
        raise ExportError(f"task {task!r} has no valid Argo name ({name!r}); rename it")
    return name


def _stage_project(project_root: Path, scratch: Path, env_name: str | None) -> Path:
    """A copy of what rendering the DAG needs, in a folder named after the package."""
    staged = scratch / PACKAGE
    staged.mkdir()
    for name in (*PROJECT_FILES, *([env_name] if env_name else [])):
        source = project_root / name
        if source.is_dir():
            shutil.copytree(source, staged / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, staged / name)
    shutil.copy2(project_root / CONSTRAINTS, staged / LOCK_FILE)
    return staged


def _soopervisor(staged: Path, env_name: str | None, *args: str) -> None:
    executable = Path(sys.executable).with_name("soopervisor")
    if not executable.exists():
        raise ExportError("soopervisor is not installed in this environment; run make install")
    env = {**os.environ, **PLOOMBER_ENV, **_env_file_variable(env_name)}
    done = subprocess.run(
        [str(executable), *args], cwd=staged, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ExportError(f"soopervisor {' '.join(args)} failed: {tail[0]}")


def _configure(staged: Path, env_name: str, settings: dict[str, Any]) -> None:
    config_file = staged / "soopervisor.yaml"
    config = yaml.safe_load(config_file.read_text())
    config[env_name] = {**config[env_name], **settings}
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))


def _env_file_variable(env_name: str | None) -> dict[str, str]:
    """Ploomber reads another env file than env.yaml from PLOOMBER_ENV_FILENAME."""
    return {ENV_FILE_VARIABLE: env_name} if env_name else {}


def _prefix(env_name: str | None) -> str:
    """The assignments each task's command starts with: telemetry off, the env file."""
    assignments = {**PLOOMBER_ENV, **_env_file_variable(env_name)}
    return " ".join(f"{key}={value}" for key, value in assignments.items())


def _run_soopervisor(
    project_root: Path, backend: str, settings: dict[str, Any], env_name: str | None
) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="levibot-export-"))
    try:
        staged = _stage_project(project_root, scratch, env_name)
        add = ["add", backend, "--backend", BACKENDS[backend]]
        if backend == "airflow":
            add += ["--preset", "bash"]
        _soopervisor(staged, env_name, *add)
        _configure(staged, backend, settings)
        _soopervisor(staged, env_name, "export", backend, "--skip-docker", "--mode", "force")
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return staged


def _written(staged: Path, env_name: str, name: str) -> Path:
    """A file soopervisor wrote: in the environment's folder, or (argo without Docker) in
    its working directory."""
    for path in (staged / env_name / name, staged / name):
        if path.exists():
            return path
    raise ExportError(f"soopervisor wrote no {name}; install the pinned one (make install)")


def argo_graph(spec: dict[str, Any]) -> dict[str, list[str]]:
    """Ploomber task -> upstream tasks, read back from an Argo workflow spec."""
    tasks = spec["spec"]["templates"][1]["dag"]["tasks"]
    ploomber_name = {t["name"]: t["arguments"]["parameters"][0]["value"] for t in tasks}
    return {
        ploomber_name[t["name"]]: sorted(ploomber_name[d] for d in t["dependencies"]) for t in tasks
    }


def export_argo(
    project_root: Path,
    output_dir: Path,
    *,
    image: str | None = None,
    env_name: str | None = None,
) -> Export:
    """Write `<output_dir>/argo.yaml`: one DAG task per Ploomber task, on a shared volume."""
    claim = {"persistentVolumeClaim": {"claimName": WORKSPACE_VOLUME}}
    settings = {"repository": None, "mounted_volumes": [{"name": WORKSPACE_VOLUME, "spec": claim}]}
    staged = _run_soopervisor(project_root, "argo", settings, env_name)
    try:
        spec = yaml.safe_load(_written(staged, "argo", "argo.yaml").read_text())
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
    names = [t["name"] for t in spec["spec"]["templates"][1]["dag"]["tasks"]]
    argo_names = {task: argo_task_name(task) for task in names}
    if len(set(argo_names.values())) != len(argo_names):
        raise ExportError(f"two tasks map to one Argo name: {sorted(argo_names.values())}")
    for task in spec["spec"]["templates"][1]["dag"]["tasks"]:
        task["dependencies"] = [argo_names[d] for d in task["dependencies"]]
        task["name"] = argo_names[task["name"]]
    script = spec["spec"]["templates"][0]["script"]
    script["image"] = image or default_image()
    script["imagePullPolicy"] = "IfNotPresent"  # soopervisor's "Never" only suits a local image
    if script.get("workingDir") is None:  # null: the image's WORKDIR, where the project is
        script.pop("workingDir", None)
    # a new claim is empty and mounting it hides the image's folders, leaving the links to
    # data/ etc. dangling: every task creates them first, as the image's user, who owns
    # the volume's files through fsGroup
    folders = " ".join(f"{WORKSPACE}/{folder}" for folder in WORKSPACE_FOLDERS)
    script["source"] = f"mkdir -p {folders} && {_prefix(env_name)} {script['source']}"
    ids = {"runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID, "fsGroup": IMAGE_UID}
    spec["spec"]["securityContext"] = ids
    graph = argo_graph(spec)
    symbols = sorted(name.removeprefix("fetch-") for name in graph if name.startswith("fetch-"))
    spec["metadata"]["annotations"] = {  # the graph is fixed at export: re-export on a change
        f"{PACKAGE}/symbols": ",".join(symbols)
    }
    path = write_text_atomic(output_dir / "argo.yaml", yaml.safe_dump(spec, sort_keys=False))
    return Export(files=(path,), graph=graph)


def export_airflow(project_root: Path, output_dir: Path, *, env_name: str | None = None) -> Export:
    """Write `<output_dir>/airflow/levibot.py` (the DAG) and `levibot.json` (its tasks)."""
    staged = _run_soopervisor(project_root, "airflow", {}, env_name)
    try:
        dag_code = _written(staged, "airflow", f"{PACKAGE}.py").read_text()
        spec = json.loads(_written(staged, "airflow", f"{PACKAGE}.json").read_text())
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
    enter = f'cd "${{{PROJECT_DIR_VARIABLE}:?set it to the levibot checkout on this worker}}"'
    for task in spec["tasks"]:
        task["command"] = f"{enter} && {_prefix(env_name)} .venv/bin/{task['command']}"
    dag_code = airflow_dag_for_current_airflow(dag_code)
    folder = output_dir / "airflow"
    files = (
        write_text_atomic(folder / f"{PACKAGE}.json", json.dumps(spec, indent=2) + "\n"),
        write_text_atomic(folder / f"{PACKAGE}.py", dag_code),
    )
    return Export(files=files, graph={t["name"]: sorted(t["upstream"]) for t in spec["tasks"]})


AIRFLOW_EDITS = (
    # days_ago is gone in Airflow 3; a fixed start with catchup off never backfills
    ("import json\n", "import json\nfrom datetime import datetime, timezone\n"),
    ("from airflow.utils.dates import days_ago\n", ""),
    ('"start_date": days_ago(0),', '"start_date": datetime(2024, 1, 1, tzinfo=timezone.utc),'),
    # schedule_interval is gone in Airflow 3; schedule exists since 2.4
    ("    schedule_interval=None,\n", "    schedule=None,\n    catchup=False,\n"),
    # BashOperator moved to the standard provider in Airflow 3
    (
        "from airflow.operators.bash import BashOperator\n",
        "try:\n"
        "    from airflow.providers.standard.operators.bash import BashOperator\n"
        "except ImportError:  # Airflow 2\n"
        "    from airflow.operators.bash import BashOperator\n",
    ),
)


def airflow_dag_for_current_airflow(dag_code: str) -> str:
    """soopervisor's Airflow-2.0-era DAG file, made to load on Airflow 2.4+ and 3."""
    for old, new in AIRFLOW_EDITS:
        if old not in dag_code:
            raise ExportError(f"soopervisor's Airflow DAG changed (no {old.strip()!r}); pin 0.9.3")
        dag_code = dag_code.replace(old, new)
    return dag_code


def export_workflow(
    backend: str,
    project_root: Path,
    output_dir: Path,
    *,
    image: str | None = None,
    env_file: str | None = None,
) -> Export:
    """`argo` or `airflow`: the current `pipeline.yaml` as that backend's workflow.

    `env_file` (default env.yaml) must sit next to pipeline.yaml: the tasks read it by
    name from PLOOMBER_ENV_FILENAME where they run (the image, or the worker's checkout)."""
    if backend not in BACKENDS:
        raise ExportError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
    missing = [name for name in PROJECT_FILES if not (project_root / name).exists()]
    if missing:
        raise ExportError(f"no {', '.join(missing)} here; run the export from the project root")
    env_name = None
    if env_file is not None:
        name = Path(env_file).name
        if Path(env_file).parent != Path(".") or not (project_root / name).is_file():
            raise ExportError(
                f"--env-file {env_file}: an export needs an env file next to pipeline.yaml, "
                "by name (e.g. env.prod.yaml), so the cluster's tasks find it too"
            )
        env_name = None if name == "env.yaml" else name
    if backend == "argo":
        return export_argo(project_root, output_dir, image=image, env_name=env_name)
    return export_airflow(project_root, output_dir, env_name=env_name)
