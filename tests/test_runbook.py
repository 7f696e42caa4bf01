"""docs/runbook.md stays true: every documented command parses against the real CLI.

Each `levibot ...` / `.venv/bin/levibot ...` line inside a fenced code block, and each
inline `levibot ...` code span of the prose and tables, is split like a shell would and
parsed by `levibot.cli.build_parser()` (placeholders such as <...> or ... filled in);
`ploomber build` lines may only name tasks of pipeline.yaml and parameters of env.yaml;
the "Expected results" table must equal `levibot.marathon.decision.EXPECTED`.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from levibot.cli import build_parser
from levibot.marathon.decision import EXPECTED

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "docs" / "runbook.md"
PREFIXES = ("levibot ", ".venv/bin/levibot ")
PLACEHOLDERS = {  # sensible values for <...> placeholders, by the option before them
    "--reason": "why",
    "--symbol": "BTCUSDT",
    "--days": "60",
    "--fraction": "0.1",
    "--delta": "0.01",
    "--hours": "48",
}


def code_lines() -> list[str]:
    """Lines inside ``` fences, stripped."""
    lines, inside = [], False
    for line in RUNBOOK.read_text().splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if inside and line.strip():
            lines.append(line.strip())
    assert not inside, "unclosed code fence in the runbook"
    return lines


def levibot_commands() -> list[list[str]]:
    commands = []
    for line in code_lines():
        if line.startswith(PREFIXES):
            commands.append(shlex.split(line, comments=True)[1:])
    for span in re.findall(r"`((?:\.venv/bin/)?levibot [^`]+)`", RUNBOOK.read_text()):
        words = shlex.split(span)[1:]
        if words not in commands:
            commands.append(words)
    return commands


def fill(args: list[str]) -> list[str]:
    out = []
    for i, word in enumerate(args):
        if re.fullmatch(r"<[^>]+>|\.\.\.", word):
            option = args[i - 1] if i else ""
            word = PLACEHOLDERS.get(option, "x")
        out.append(word)
    return out


COMMANDS = levibot_commands()


def test_the_runbook_documents_the_operator_commands() -> None:
    documented = {" ".join(c[:2]) for c in COMMANDS} | {c[0] for c in COMMANDS}
    for needed in (
        "promote", "rollback", "canary disable", "canary enable", "retrain", "schedule",
        "drift", "marathon start", "marathon check", "marathon evaluate", "marathon replay",
        "marathon summary", "registry tighten-policy", "registry show",
    ):  # fmt: skip
        assert needed in documented, f"runbook lacks `levibot {needed}`"
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_documented_command_parses(args: list[str]) -> None:
    parsed = build_parser().parse_args(fill(args))
    assert callable(parsed.handler)


def test_ploomber_lines_name_real_tasks_and_parameters() -> None:
    tasks = {t["name"] for t in yaml.safe_load((ROOT / "pipeline.yaml").read_text())["tasks"]}
    params = set(yaml.safe_load((ROOT / "env.yaml").read_text()))
    lines = [line for line in code_lines() if line.startswith(".venv/bin/ploomber build")]
    assert len(lines) >= 2
    for line in lines:
        words = shlex.split(line, comments=True)
        for i, word in enumerate(words):
            if word == "--partially":
                assert words[i + 1] in tasks, line
            if word.startswith("--env--"):
                assert word.removeprefix("--env--") in params, line


def test_kill_switch_commands_are_exact() -> None:
    text = RUNBOOK.read_text()
    auth = 'curl -X POST -H "Authorization: Bearer $LEVIBOT_ADMIN_TOKEN" '
    assert auth + "'127.0.0.1:8000/ml/kill?enabled=true'" in text
    assert auth + "'127.0.0.1:8000/ml/kill?enabled=false'" in text


def _number(cell: str) -> float:
    value = float(re.search(r"[\d.]+", cell).group())
    return value / 100 if "%" in cell else value


def test_expected_results_match_the_evaluation() -> None:
    text = RUNBOOK.read_text().split("## 7. Expected results", 1)[1]
    rows = {
        cells[0]: tuple(_number(c) for c in cells[1:4])
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith(("| metric", "|---"))
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    names = {
        "Sharpe (annualised)": "sharpe",
        "win rate": "win_rate",
        "max drawdown": "max_drawdown",
        "average trade return": "avg_trade_return",
        "realised ECE": "ece",
    }
    assert set(rows) == set(names)
    for label, metric in names.items():
        assert rows[label] == pytest.approx(EXPECTED[metric]), label
