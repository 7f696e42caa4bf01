"""The `levibot` console script: registry subcommands, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from levibot.cli import main
from levibot.registry import (
    bootstrap_prod,
    load_registry,
    register_candidate,
)
from tests.factories import make_entry


@pytest.fixture
def reg_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry" / "model_registry.json"
    bootstrap_prod(path, make_entry(path.parent, "p1"), reason="first")
    return path


def _assert_clean_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def test_show(reg_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "show", "--registry", str(reg_file)]) == 0
    out = capsys.readouterr().out
    assert "p1" in out and "bootstrap_prod" in out


def test_show_json_with_option_before_subcommand(
    reg_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--registry", str(reg_file), "registry", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["prod"]["id"] == "p1" and data["schema_version"] == 1


def test_registry_from_env_file(
    tmp_path: Path, reg_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("LEVIBOT_")]:
        monkeypatch.delenv(name)
    env = tmp_path / "env.yaml"
    env.write_text("registry_dir: registry\n")
    assert main(["registry", "show", "--env-file", str(env)]) == 0
    assert "p1" in capsys.readouterr().out
    env.write_text("days: -1\n")
    assert main(["--env-file", str(env), "registry", "show"]) == 2
    _assert_clean_error(capsys, "env.yaml")


def test_promote_without_candidate(reg_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["registry", "promote", "--reason", "try", "--registry", str(reg_file)])
    assert code == 2
    _assert_clean_error(capsys, "no candidate to promote", str(reg_file))


def test_promote_rollback_tighten(reg_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    register_candidate(reg_file, make_entry(reg_file.parent, "c1"), reason="retrain")
    common = ["--registry", str(reg_file)]
    assert main(["registry", "tighten-policy", "--reason", "ECE 0.08", *common]) == 0
    assert "entry 0.55 -> 0.56" in capsys.readouterr().out
    assert main(["registry", "promote", "--reason", "canary ok", *common]) == 0
    assert "promoted c1" in capsys.readouterr().out
    args = ["registry", "tighten-policy", "--delta", "0.02", "--target", "prod"]
    assert main([*args, "--reason", "ECE", *common]) == 0
    assert load_registry(reg_file).prod.policy.exit_threshold == pytest.approx(0.42)
    assert main(["registry", "rollback", "--reason", "bad live", *common]) == 0
    assert "prod is p1" in capsys.readouterr().out
    assert main(["registry", "rollback", "--reason", "again", *common]) == 2
    _assert_clean_error(capsys, "archive has no previous prod")
    actions = [e.action for e in load_registry(reg_file).events]
    assert actions[-4:] == ["tighten_policy", "promote", "tighten_policy", "rollback"]


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    assert main(["registry", "show", "--registry", str(missing)]) == 2
    _assert_clean_error(capsys, "nope.json", "file not found")
    corrupt = tmp_path / "bad.json"
    corrupt.write_text("{")
    assert main(["registry", "show", "--registry", str(corrupt)]) == 2
    _assert_clean_error(capsys, "bad.json", "not valid JSON")
    corrupt.write_text('{"prod": {"id": "x"}}')
    assert main(["registry", "show", "--registry", str(corrupt)]) == 2
    _assert_clean_error(capsys, "bad.json", "prod.models")


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "promote"]) == 2  # --reason is required
    assert "--reason" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["--help"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 done; 2 a usage error or an expected error" in printed
    assert "marathon evaluate (0 PROMOTE, 1 EXTEND, 3 ROLLBACK)" in printed


def test_a_missing_env_file_is_one_error_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--env-file", str(tmp_path / "nope.yaml"), "registry", "show"]) == 2
    _assert_clean_error(capsys, "nope.yaml", "not found")
    bad = tmp_path / "bad.yaml"
    bad.write_text("horizon: 0\n")
    assert main(["registry", "show", "--env-file", str(bad)]) == 2
    _assert_clean_error(capsys, "horizon")


def test_registry_promote_is_the_audited_promote_that_disables_the_canary(
    reg_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    from levibot.online.audit import AuditLog
    from levibot.registry import load_canary_policy, update_canary_policy
    from levibot.settings import load_settings
    from levibot.state.paths import Paths

    monkeypatch.chdir(tmp_path)  # the audit log goes to this project's data folder
    register_candidate(reg_file, make_entry(reg_file.parent, "c1"), reason="trained")
    paths = Paths.of(load_settings(None, root=tmp_path), registry=reg_file)
    update_canary_policy(paths.canary_policy, enabled=True)
    args = ["registry", "promote", "--registry", str(reg_file), "--reason", "passed"]
    assert main(args) == 0
    registry = load_registry(reg_file)
    assert registry.prod.id == "c1" and registry.archive[-1].entry.id == "p1"
    assert load_canary_policy(paths.canary_policy).enabled is False
    assert AuditLog(paths.audit).entries()[-1]["action"] == "promote"
    assert main(["registry", "rollback", "--registry", str(reg_file)]) == 0
    assert load_registry(reg_file).prod.id == "p1"
    assert AuditLog(paths.audit).entries()[-1]["action"] == "rollback"


def _command_paths(parser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every (sub)command reachable from `parser`, depth first."""
    import argparse

    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _command_paths(sub, (*prefix, name))
    return paths


def test_every_command_has_help_that_renders(capsys: pytest.CaptureFixture[str]) -> None:
    """A '%' in a help string crashed `levibot marathon --help` once (argparse formats it)."""
    from levibot.cli import build_parser

    commands = _command_paths(build_parser())
    assert len(commands) > 15
    for command in commands:
        assert main([*command, "--help"]) == 0, command
        out = capsys.readouterr().out
        assert out.startswith("usage:"), command


def test_marathon_summary_in_lines_and_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from levibot.io import write_json_atomic
    from levibot.settings import load_settings
    from levibot.state.paths import Paths

    env = tmp_path / "env.yaml"
    env.write_text(f"data_dir: {tmp_path / 'data'}\nregistry_dir: {tmp_path / 'registry'}\n")
    paths = Paths.of(load_settings(env))
    write_json_atomic(paths.evaluation, {
        "decision": "ROLLBACK", "decision_text": "ROLLBACK: worse", "_equity": "private",
        "checks": [{"name": "ece", "status": "fail", "detail": "realised ECE 0.09 > 0.06"}],
    })  # fmt: skip
    assert main(["--env-file", str(env), "marathon", "summary"]) == 3
    out = capsys.readouterr().out
    assert "[ ] ece: realised ECE 0.09 > 0.06" in out and "reports:" in out
    assert main(["--env-file", str(env), "marathon", "summary", "--json"]) == 3
    payload = json.loads(capsys.readouterr().out)
    assert payload["decision"] == "ROLLBACK" and "_equity" not in payload
    assert payload["reports"].endswith("index.html")
