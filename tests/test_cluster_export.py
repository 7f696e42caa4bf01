"""`levibot export argo|airflow`: soopervisor's real exporter, offline, checked against
the Ploomber DAG it encodes."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from levibot.cli import main
from levibot.cluster_export import (
    ARGO_NAME,
    IMAGE_UID,
    WORKSPACE_FOLDERS,
    WORKSPACE_VOLUME,
    ExportError,
    airflow_dag_for_current_airflow,
    argo_graph,
    argo_task_name,
    default_image,
    export_workflow,
)
from levibot.dag_picture import pipeline_graph

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ploomber_graph() -> dict[str, list[str]]:
    """Task -> upstream tasks of pipeline.yaml, as Ploomber itself builds the DAG."""
    return pipeline_graph(ROOT / "pipeline.yaml")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cluster")
    export_workflow("argo", ROOT, out)
    export_workflow("airflow", ROOT, out)
    return out


def test_argo_workflow_has_every_task_and_edge_of_the_pipeline(exported, ploomber_graph):
    spec = yaml.safe_load((exported / "argo.yaml").read_text())
    assert spec["kind"] == "Workflow" and spec["metadata"]["generateName"] == "levibot-"
    assert argo_graph(spec) == ploomber_graph
    assert {"fetch-BTCUSDT", "fetch-ETHUSDT", "fetch-SOLUSDT"} <= set(ploomber_graph)
    assert ploomber_graph["ingest"] == ["fetch-BTCUSDT", "fetch-ETHUSDT", "fetch-SOLUSDT"]


def test_argo_names_are_valid_and_every_task_shares_the_workspace(exported):
    spec = yaml.safe_load((exported / "argo.yaml").read_text())
    tasks = spec["spec"]["templates"][1]["dag"]["tasks"]
    for task in tasks:
        assert ARGO_NAME.match(task["name"]), task["name"]
        assert all(ARGO_NAME.match(dep) for dep in task["dependencies"])
    names = {t["name"] for t in tasks}
    assert {"train-lgbm", "fetch-btcusdt", "evaluate-marathon"} <= names
    script = spec["spec"]["templates"][0]["script"]
    assert script["image"] == default_image() and default_image().startswith("levibot:")
    assert script["imagePullPolicy"] == "IfNotPresent" and "workingDir" not in script
    assert "ploomber task {{inputs.parameters.task_name}}" in script["source"]
    # an empty claim hides the image's folders: each task creates them as the image's user
    folders = " ".join(f"/mnt/{WORKSPACE_VOLUME}/{f}" for f in ("data", "registry", "reports"))
    assert script["source"].startswith(f"mkdir -p {folders} && PLOOMBER_STATS_ENABLED=false")
    assert spec["spec"]["securityContext"] == {
        "runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID, "fsGroup": IMAGE_UID,
    }  # fmt: skip
    assert spec["metadata"]["annotations"] == {"levibot/symbols": "BTCUSDT,ETHUSDT,SOLUSDT"}
    assert script["volumeMounts"] == [
        {"mountPath": f"/mnt/{WORKSPACE_VOLUME}", "name": WORKSPACE_VOLUME, "subPath": ""}
    ]
    volume = spec["spec"]["volumes"][0]
    assert volume == {
        "name": WORKSPACE_VOLUME,
        "persistentVolumeClaim": {"claimName": WORKSPACE_VOLUME},
    }


def test_the_workspace_mount_is_where_the_image_links_the_state(exported):
    """The Dockerfile links data/, registry/ and reports/ into the mounted volume."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for folder in WORKSPACE_FOLDERS:
        assert f"ln -s /mnt/{WORKSPACE_VOLUME}/{folder} /project/{folder}" in dockerfile
    assert f"useradd --uid {IMAGE_UID} " in dockerfile  # the securityContext's user
    assert "ENV PATH=/project/.venv/bin:$PATH" in dockerfile  # `ploomber task` on PATH


def test_airflow_dag_parses_and_its_tasks_are_the_pipeline(exported, ploomber_graph):
    folder = exported / "airflow"
    code = (folder / "levibot.py").read_text()
    ast.parse(code)
    assert "days_ago" not in code and "schedule_interval" not in code
    assert "schedule=None" in code and "catchup=False" in code
    tasks = json.loads((folder / "levibot.json").read_text())["tasks"]
    assert {t["name"]: sorted(t["upstream"]) for t in tasks} == ploomber_graph
    for task in tasks:
        assert task["command"].startswith('cd "${LEVIBOT_PROJECT_DIR:?')
        assert "PLOOMBER_STATS_ENABLED=false" in task["command"]
        assert re.search(
            rf"\.venv/bin/ploomber task {re.escape(task['name'])} --entry-point pipeline.yaml",
            task["command"],
        )


class _StubDAG:
    """Just enough of airflow.DAG for the exported file: tasks by id and their upstreams."""

    def __init__(self, **kwargs):
        self.kwargs, self.tasks = kwargs, {}

    def get_task(self, task_id):
        return self.tasks[task_id]


class _StubBashOperator:
    def __init__(self, *, bash_command, task_id, dag):
        self.bash_command, self.task_id, self.upstream = bash_command, task_id, set()
        dag.tasks[task_id] = self

    def set_upstream(self, other):
        self.upstream.add(other.task_id)


def test_airflow_dag_file_builds_the_pipeline_on_airflow_3s_imports(
    exported, ploomber_graph, monkeypatch
):
    """Executed against stand-ins of Airflow 3's modules (the standard provider's
    BashOperator, no airflow.utils.dates): every name the file uses must exist there."""
    import sys
    import types

    modules = {
        "airflow": types.ModuleType("airflow"),
        "airflow.providers": types.ModuleType("airflow.providers"),
        "airflow.providers.standard": types.ModuleType("airflow.providers.standard"),
        "airflow.providers.standard.operators": types.ModuleType("operators"),
        "airflow.providers.standard.operators.bash": types.ModuleType("bash"),
    }
    modules["airflow"].DAG = _StubDAG
    modules["airflow.providers.standard.operators.bash"].BashOperator = _StubBashOperator
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    dag_file = exported / "airflow" / "levibot.py"
    namespace = {"__file__": str(dag_file), "__name__": "levibot_dag"}
    exec(compile(dag_file.read_text(), str(dag_file), "exec"), namespace)
    dag = namespace["dag"]
    assert dag.kwargs["schedule"] is None and dag.kwargs["catchup"] is False
    assert dag.kwargs["default_args"]["start_date"].tzinfo is not None
    assert {t: sorted(op.upstream) for t, op in dag.tasks.items()} == ploomber_graph


def test_an_export_with_another_env_file_runs_every_task_with_it(tmp_path):
    """The graph comes from that file's symbols, and each task reads it where it runs."""
    done = export_workflow("argo", ROOT, tmp_path, env_file="env.test.yaml")
    assert {t for t in done.graph if t.startswith("fetch-")} == {"fetch-BTCUSDT", "fetch-ETHUSDT"}
    spec = yaml.safe_load((tmp_path / "argo.yaml").read_text())
    assert (
        "PLOOMBER_ENV_FILENAME=env.test.yaml ploomber task"
        in (spec["spec"]["templates"][0]["script"]["source"])
    )
    with pytest.raises(ExportError, match=r"next to pipeline\.yaml, by name"):
        export_workflow("argo", ROOT, tmp_path, env_file="config/env.yaml")
    with pytest.raises(ExportError, match=r"next to pipeline\.yaml, by name"):
        export_workflow("airflow", ROOT, tmp_path, env_file="env.missing.yaml")


def test_a_missing_soopervisor_names_the_fix(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    with pytest.raises(ExportError, match="run make install"):
        export_workflow("argo", ROOT, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_argo_task_names():
    assert argo_task_name("train_lgbm") == "train-lgbm"
    assert argo_task_name("fetch-BTCUSDT") == "fetch-btcusdt"
    with pytest.raises(ExportError, match="no valid Argo name"):
        argo_task_name("_private")


def test_a_changed_soopervisor_dag_template_is_refused():
    with pytest.raises(ExportError, match=r"pin 0\.9\.3"):
        airflow_dag_for_current_airflow("import json\n")


def test_export_refuses_an_unknown_backend_and_a_folder_without_the_pipeline(tmp_path):
    with pytest.raises(ExportError, match=r"unknown backend 'luigi'"):
        export_workflow("luigi", ROOT, tmp_path)
    with pytest.raises(ExportError, match=r"no pipeline\.yaml, env\.yaml, notebooks here"):
        export_workflow("argo", tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_writes_the_export_and_reports_errors_on_one_line(
    tmp_path, monkeypatch, capsys, ploomber_graph
):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "argo"
    assert main(["export", "argo", "--output", str(out), "--image", "levibot:candidate"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'argo.yaml'}" in printed and f"{len(ploomber_graph)} tasks" in printed
    spec = yaml.safe_load((out / "argo.yaml").read_text())
    assert spec["spec"]["templates"][0]["script"]["image"] == "levibot:candidate"
    assert main(["export", "airflow", "--output", str(out), "--image", "x"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --image applies to argo only (Airflow tasks run on the worker)"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["export", "argo"]) == 2
    assert "run the export from the project root" in capsys.readouterr().err
