"""Operator commands: promote / rollback / canary, retrain (no real build), schedule."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from levibot.cli import build_parser, main
from levibot.online.audit import AuditLog
from levibot.operations import cron_jobs
from levibot.registry import (
    bootstrap_prod,
    load_canary_policy,
    load_registry,
    register_candidate,
    update_canary_policy,
)
from tests.factories import make_entry

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "ops" / "cron" / "levibot.cron.template"
BIN = Path(sys.executable).absolute().parent


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (with a space in its name) holding env.yaml, pipeline.yaml and a
    registry with prod p1, candidate c1 and the canary on at 20%."""
    for name in list(os.environ):
        if name.startswith("LEVIBOT_"):
            monkeypatch.delenv(name)
    root = tmp_path / "my project"
    root.mkdir()
    (root / "env.yaml").write_text("registry_dir: registry\ndata_dir: data\nsymbols: BTCUSDT\n")
    (root / "pipeline.yaml").write_text("tasks: []\n")
    reg = root / "registry" / "model_registry.json"
    bootstrap_prod(reg, make_entry(reg.parent, "p1"), reason="first")
    register_candidate(reg, make_entry(reg.parent, "c1"), reason="retrain")
    update_canary_policy(reg.with_name("canary_policy.json"), enabled=True, fraction=0.2)
    return root


def _env(project: Path) -> list[str]:
    return ["--env-file", str(project / "env.yaml")]


def _registry(project: Path):
    return load_registry(project / "registry" / "model_registry.json")


def _canary(project: Path):
    return load_canary_policy(project / "registry" / "canary_policy.json")


def _audit(project: Path) -> list[dict]:
    return AuditLog(project / "data" / "serving" / "audit.jsonl").entries()


def _one_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), err
    for needle in needles:
        assert needle in lines[-1]
    return err


# -------------------------------------------------------------- promote / rollback


def test_promote_moves_candidate_disables_canary_and_audits(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["promote", "--reason", "marathon 48h: PROMOTE", *_env(project)]) == 0
    out = capsys.readouterr().out
    assert "promoted c1 to prod (previous prod: p1)" in out and "canary disabled" in out
    registry = _registry(project)
    assert registry.prod.id == "c1" and registry.candidate is None
    assert registry.events[-1].action == "promote"
    assert registry.events[-1].reason == "marathon 48h: PROMOTE"
    assert [a.entry.id for a in registry.archive] == ["p1"]
    policy = _canary(project)
    assert policy.enabled is False and policy.fraction == pytest.approx(0.2)
    (entry,) = _audit(project)
    assert entry["action"] == "promote" and entry["actor"].startswith("cli")
    assert entry["details"] == {
        "model_id": "c1",
        "previous_prod": "p1",
        "reason": "marathon 48h: PROMOTE",
        "canary_enabled": False,
    }


def test_promote_errors_change_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["promote", *_env(project)]) == 2  # --reason is required
    assert "--reason" in capsys.readouterr().err
    assert main(["promote", "--reason", "  ", *_env(project)]) == 2
    _one_error(capsys, "--reason")
    assert main(["promote", "--reason", "ok", *_env(project)]) == 0
    capsys.readouterr()
    update_canary_policy(project / "registry" / "canary_policy.json", enabled=True)
    before = _registry(project)
    assert main(["promote", "--reason", "again", *_env(project)]) == 2
    _one_error(capsys, "no candidate to promote")
    assert _registry(project) == before
    assert _canary(project).enabled is True  # the failed promote left the canary alone
    assert [e["action"] for e in _audit(project)] == ["promote"]


def test_promote_refuses_a_corrupted_artifact(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "registry" / "models" / "c1" / "lgbm.bin").write_bytes(b"tampered")
    assert main(["promote", "--reason", "go", *_env(project)]) == 2
    _one_error(capsys, "sha256 mismatch")
    assert _registry(project).prod.id == "p1" and _canary(project).enabled is True
    assert _audit(project) == []


def test_rollback_restores_previous_prod(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["promote", "--reason", "go", *_env(project)]) == 0
    assert main(["rollback", *_env(project)]) == 0
    assert "rolled back: prod is p1 (was c1)" in capsys.readouterr().out
    registry = _registry(project)
    assert registry.prod.id == "p1"
    assert registry.events[-1].action == "rollback"
    assert registry.events[-1].reason == "manual rollback"
    assert registry.archive[-1].entry.id == "c1" and registry.archive[-1].rolled_back
    entry = _audit(project)[-1]
    assert entry["action"] == "rollback"
    assert entry["details"] == {
        "model_id": "p1",
        "previous_prod": "c1",
        "reason": "manual rollback",
    }
    assert main(["rollback", "--reason", "again", *_env(project)]) == 2
    _one_error(capsys, "archive has no previous prod")
    assert [e["action"] for e in _audit(project)] == ["promote", "rollback"]


def test_rollback_reason_and_registry_option(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = project / "registry" / "model_registry.json"
    assert main(["promote", "--reason", "go", *_env(project)]) == 0
    code = main(["--registry", str(reg), "rollback", "--reason", "drawdown", *_env(project)])
    assert code == 0
    assert _registry(project).events[-1].reason == "drawdown"
    assert _audit(project)[-1]["details"]["reason"] == "drawdown"


# -------------------------------------------------------------------------- canary


def test_canary_disable_enable(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["canary", "disable", *_env(project)]) == 0
    assert "canary disabled, fraction 0.2" in capsys.readouterr().out
    assert _canary(project).enabled is False
    assert main(["canary", "enable", "--fraction", "0.1", *_env(project)]) == 0
    out = capsys.readouterr().out
    assert "canary enabled, fraction 0.1" in out and "no candidate" not in out
    policy = _canary(project)
    assert policy.enabled is True and policy.fraction == pytest.approx(0.1)
    assert main(["canary", "disable", *_env(project)]) == 0
    assert main(["canary", "enable", *_env(project)]) == 0  # keeps the fraction
    assert _canary(project).fraction == pytest.approx(0.1)
    actions = [(e["action"], e["details"]) for e in _audit(project)]
    assert actions == [
        ("canary", {"enabled": False, "fraction": 0.2}),
        ("canary", {"enabled": True, "fraction": 0.1}),
        ("canary", {"enabled": False, "fraction": 0.1}),
        ("canary", {"enabled": True, "fraction": 0.1}),
    ]
    # the thresholds and the rest of the policy survive the edits
    assert _canary(project).thresholds.ece.tighten == pytest.approx(0.07)


def test_canary_bad_fraction_and_no_candidate(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["canary", "enable", "--fraction", "1.5", *_env(project)]) == 2
    assert "fraction must be in [0, 1]" in capsys.readouterr().err
    assert main(["canary", *_env(project)]) == 2  # an action is required
    capsys.readouterr()
    assert main(["promote", "--reason", "go", *_env(project)]) == 0
    assert main(["canary", "enable", *_env(project)]) == 0
    assert "no candidate in the registry" in capsys.readouterr().out


# ------------------------------------------------------------------------- retrain


class FakeRun:
    """Stands in for subprocess.run: records the call, optionally registers a candidate."""

    def __init__(self, project: Path, *, returncode: int = 0, output: str = "", new_id=None):
        self.project, self.returncode, self.output, self.new_id = (
            project, returncode, output, new_id,
        )  # fmt: skip
        self.calls: list[dict] = []

    def __call__(self, argv, **kwargs):
        self.calls.append({"argv": list(argv), **kwargs})
        if self.new_id is not None:
            reg = self.project / "registry" / "model_registry.json"
            register_candidate(reg, make_entry(reg.parent, self.new_id), reason="pipeline")
        return subprocess.CompletedProcess(argv, self.returncode, stdout=self.output)


def test_retrain_runs_the_partial_build_and_prints_the_candidate(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRun(project, output="name  Ran?\ncalibrate_and_sweep  True\n", new_id="c2")
    monkeypatch.setattr(subprocess, "run", fake)
    monkeypatch.setenv("PLOOMBER_STATS_ENABLED", "true")  # must be overridden
    args = ["retrain", "--symbol", "BTCUSDT", "--symbol", "ethusdt,SOLUSDT", "--days", "60"]
    assert main([*args, *_env(project)]) == 0
    (call,) = fake.calls
    assert call["argv"] == [
        str(BIN / "ploomber"), "build", "--partially", "calibrate_and_sweep", "--force",
        "--env--symbols", "BTCUSDT,ETHUSDT,SOLUSDT", "--env--days", "60",
    ]  # fmt: skip
    assert Path(call["cwd"]) == project.resolve()
    env = call["env"]
    assert env["PLOOMBER_STATS_ENABLED"] == "false"
    assert env["PLOOMBER_VERSION_CHECK_DISABLED"] == "1"
    assert env["PLOOMBER_ENV_FILENAME"] == "env.yaml"
    assert env["PATH"] == os.environ["PATH"]  # the rest of the environment is passed on
    assert call["stderr"] == subprocess.STDOUT and call["text"] is True
    out = capsys.readouterr().out
    assert "new candidate: c2 (previous: c1)" in out and "calibrate_and_sweep  True" in out
    assert _registry(project).candidate.id == "c2"
    entry = _audit(project)[-1]
    assert entry["action"] == "retrain"
    assert entry["details"] == {
        "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
        "days": 60.0,
        "candidate": "c2",
        "previous_candidate": "c1",
    }


def test_retrain_defaults_come_from_the_env_file(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRun(project)  # the build registers nothing new
    monkeypatch.setattr(subprocess, "run", fake)
    assert main(["retrain", *_env(project)]) == 0
    assert fake.calls[0]["argv"][1:] == ["build", "--partially", "calibrate_and_sweep", "--force"]
    assert "warning: no new candidate registered (candidate: c1)" in capsys.readouterr().out
    assert _audit(project)[-1]["details"]["symbols"] == ["BTCUSDT"]


def test_retrain_failure_shows_the_last_lines(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    output = "\n".join(f"line {i}" for i in range(60)) + "\nValueError: ingest failed\n"
    monkeypatch.setattr(subprocess, "run", FakeRun(project, returncode=1, output=output))
    assert main(["retrain", "--days", "60", *_env(project)]) == 2
    err = _one_error(capsys, "ploomber build failed (exit 1)")
    assert "ValueError: ingest failed" in err and "line 59" in err and "line 0\n" not in err
    assert _registry(project).candidate.id == "c1"
    assert _audit(project) == []


def test_retrain_timeout_and_bad_input(
    project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def slow(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"], output="still training\n")

    monkeypatch.setattr(subprocess, "run", slow)
    assert main(["retrain", "--timeout", "5", *_env(project)]) == 2
    err = _one_error(capsys, "did not finish within 5 s")
    assert "still training" in err
    monkeypatch.setattr(subprocess, "run", FakeRun(project))
    assert main(["retrain", "--symbol", "BTC-USD", *_env(project)]) == 2
    _one_error(capsys, "not a symbol")
    assert main(["retrain", "--days", "0", *_env(project)]) == 2
    _one_error(capsys, "--days must be positive")
    elsewhere = tmp_path / "no_pipeline"
    elsewhere.mkdir()
    (elsewhere / "env.yaml").write_text("registry_dir: registry\n")
    assert main(["retrain", "--env-file", str(elsewhere / "env.yaml")]) == 2
    _one_error(capsys, "no pipeline.yaml")


# ------------------------------------------------------------------------ schedule

SCHEDULES = {
    "drift": ("*/15 * * * *", "levibot --env-file env.yaml drift"),
    "tune": ("5 * * * *", "levibot --env-file env.yaml tune"),
    "ingest": ("0 */6 * * *", "ploomber build --partially ingest --force"),
    "marathon_check": ("30 */6 * * *", "levibot --env-file env.yaml marathon check"),
    "retrain": ("0 3 * * 0", "levibot --env-file env.yaml retrain"),
}


def test_schedule_writes_the_five_jobs_with_real_paths(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", *_env(project)]) == 0
    out_file = project / "ops" / "cron" / "levibot.cron"
    assert f"wrote {out_file} (5 jobs)" in capsys.readouterr().out
    text = out_file.read_text()
    assert "{{" not in text and "}}" not in text
    jobs = cron_jobs(text)
    assert len(jobs) == len(SCHEDULES)
    root, logs = project.resolve(), project.resolve() / "data" / "serving" / "cron"
    assert logs.is_dir()
    for job, (log, (when, command)) in zip(jobs, SCHEDULES.items(), strict=True):
        assert job.startswith(when + " "), job
        words = shlex.split(job[len(when) :])
        assert words[:2] == ["cd", str(root)], job
        assert words[-3:] == [">>", str(logs / f"{log}.log"), "2>&1"], job
        program = next(w for w in words if w.startswith(str(BIN)))
        assert Path(program).parent == BIN
        assert command in " ".join([Path(program).name, *words[words.index(program) + 1 : -3]])
        if log == "ingest":
            assert "PLOOMBER_STATS_ENABLED=false" in words
            assert "PLOOMBER_VERSION_CHECK_DISABLED=1" in words
        else:  # the levibot arguments parse with the real CLI
            build_parser().parse_args(words[words.index(program) + 1 : -3])


def test_schedule_output_option(project: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "my.cron"
    assert main(["schedule", "--output", str(target), *_env(project)]) == 0
    assert len(cron_jobs(target.read_text())) == 5
    assert not (project / "ops" / "cron" / "levibot.cron").exists()


def test_template_has_placeholders_and_no_real_path() -> None:
    text = TEMPLATE.read_text()
    jobs = cron_jobs(text)
    assert len(jobs) == 5
    assert all(job.count("{{PROJECT}}") == 1 for job in jobs)
    assert all("{{BIN}}/" in job and "{{LOGS}}/" in job for job in jobs)
    assert str(ROOT) not in text and str(BIN) not in text
    assert "ops/cron/levibot.cron" in (ROOT / ".gitignore").read_text().splitlines()
