"""Operator commands: promote / rollback / canary switches, retrain, and the cron schedule.

Every registry or canary change goes through the locked, atomic writers of
`levibot.registry`, so a running server picks it up through its hot reload (no
restart), and each action is appended to the serving audit log next to the API's own
admin actions. These are the only promote and rollback paths: `levibot promote` and
`levibot registry promote` (an alias) both land here.

`retrain` runs ``ploomber build --partially calibrate_and_sweep --force`` in the project
folder (the env file's folder): ingest, both trainings and calibrate-and-sweep, with
their reports, ending with a new candidate in the registry. ``--force`` is deliberate:
Ploomber skips a task whose code and parameters are unchanged, and with ``end: null`` a
weekly retrain has the same parameters every week, so without it nothing would retrain.

`write_schedule` fills ``ops/cron/levibot.cron.template`` with this checkout's real
paths, resolved when it runs; the generated file is git-ignored.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from levibot.online.audit import AuditLog
from levibot.registry import (
    CanaryPolicy,
    Registry,
    RegistryError,
    load_canary_policy,
    load_registry,
    promote,
    rollback,
    update_canary_policy,
)
from levibot.settings import Settings
from levibot.state.paths import Paths

PLOOMBER_ENV = {"PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "1"}
PIPELINE_FILE = "pipeline.yaml"  # the Ploomber entry point, in the project root
RETRAIN_TARGET = "calibrate_and_sweep"
TAIL_LINES = 25
TEMPLATE_NAME = "levibot.cron.template"
SCHEDULE_NAME = "levibot.cron"
PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


class OperationError(RuntimeError):
    """An operator command could not run; the message says what to do."""


class BuildFailed(OperationError):
    """The ploomber build failed or timed out; `tail` holds its last output lines."""

    def __init__(self, message: str, tail: str) -> None:
        super().__init__(message)
        self.tail = tail


def default_actor() -> str:
    """'cli:<user>' for the audit log (just 'cli' when the user cannot be determined)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


# --------------------------------------------------------------- registry / canary


def promote_candidate(
    paths: Paths, *, reason: str, actor: str | None = None
) -> tuple[Registry, CanaryPolicy]:
    """Candidate -> prod (artifacts verified; the old prod is archived), then the canary
    off, as the go-live guide says: there is nothing left to canary."""
    if not reason or not reason.strip():
        raise RegistryError("--reason must say why the candidate is promoted")
    registry = promote(paths.registry, reason=reason.strip())
    policy = update_canary_policy(paths.canary_policy, enabled=False)
    assert registry.prod is not None
    previous = registry.events[-1].details.get("previous_prod")
    AuditLog(paths.audit).record(
        actor or default_actor(),
        "promote",
        model_id=registry.prod.id,
        previous_prod=previous,
        reason=reason.strip(),
        canary_enabled=policy.enabled,
    )
    return registry, policy


def rollback_prod(paths: Paths, *, reason: str | None = None, actor: str | None = None) -> Registry:
    """Restore the previous prod; the current one is archived as rolled back."""
    reason = (reason or "").strip() or "manual rollback"
    registry = rollback(paths.registry, reason=reason)
    assert registry.prod is not None
    AuditLog(paths.audit).record(
        actor or default_actor(),
        "rollback",
        model_id=registry.prod.id,
        previous_prod=registry.events[-1].details.get("previous_prod"),
        reason=reason,
    )
    return registry


def set_canary(
    paths: Paths,
    *,
    enabled: bool,
    fraction: float | None = None,
    actor: str | None = None,
) -> CanaryPolicy:
    """Switch the canary on/off (and set its traffic fraction) in the canary policy file."""
    changes: dict[str, Any] = {"enabled": enabled}
    if fraction is not None:
        changes["fraction"] = fraction
    policy = update_canary_policy(paths.canary_policy, **changes)
    AuditLog(paths.audit).record(
        actor or default_actor(), "canary", enabled=policy.enabled, fraction=policy.fraction
    )
    return policy


def current_candidate(path: Path) -> str | None:
    """The candidate's id, or None (also when the registry does not exist yet)."""
    candidate = load_registry(path, missing_ok=True).candidate
    return candidate.id if candidate is not None else None


def canary_summary(paths: Paths) -> str:
    policy = load_canary_policy(paths.canary_policy)
    state = "enabled" if policy.enabled else "disabled"
    return f"canary {state}, fraction {policy.fraction:g} ({paths.canary_policy})"


# -------------------------------------------------------------------------- retrain


def project_root(env_file: Path | str) -> Path:
    """The project folder: the env file's folder, resolved; it must hold pipeline.yaml."""
    root = Path(env_file).resolve().parent
    if not (root / PIPELINE_FILE).is_file():
        raise OperationError(
            f"no pipeline.yaml in {root}: run from the project folder or pass --env-file"
        )
    return root


def bin_dir() -> Path:
    """The virtualenv's bin folder (where `levibot` and `ploomber` live)."""
    return Path(sys.executable).absolute().parent


@dataclass(frozen=True)
class BuildCommand:
    argv: list[str]
    cwd: Path
    env: dict[str, str]


def retrain_command(
    env_file: Path | str,
    *,
    symbols: Sequence[str] = (),
    days: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> BuildCommand:
    """The ploomber build that ingests, trains, calibrates and registers a candidate."""
    if days is not None and not days > 0:
        raise OperationError(f"--days must be positive, got {days:g}")
    root = project_root(env_file)
    argv = [str(bin_dir() / "ploomber"), "build", "--partially", RETRAIN_TARGET, "--force"]
    if symbols:
        argv += ["--env--symbols", ",".join(symbols)]
    if days is not None:
        argv += ["--env--days", f"{days:g}"]
    env = dict(os.environ if environ is None else environ)
    env.update(PLOOMBER_ENV)
    env["PLOOMBER_ENV_FILENAME"] = Path(env_file).name
    return BuildCommand(argv=argv, cwd=root, env=env)


@dataclass(frozen=True)
class RetrainResult:
    candidate: str | None
    previous_candidate: str | None
    command: BuildCommand
    output: str = ""

    @property
    def output_tail(self) -> str:
        return _tail(self.output)

    @property
    def new_candidate(self) -> bool:
        return self.candidate is not None and self.candidate != self.previous_candidate


def _tail(text: str | None, lines: int = TAIL_LINES) -> str:
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def run_retrain(
    env_file: Path | str,
    settings: Settings,
    *,
    symbols: Sequence[str] = (),
    days: float | None = None,
    registry: Path | str | None = None,
    timeout: float | None = None,
    actor: str | None = None,
) -> RetrainResult:
    """Run the build; raise OperationError with its last lines when it fails."""
    command = retrain_command(env_file, symbols=symbols, days=days)
    paths = Paths.of(settings, registry=registry)
    before = current_candidate(paths.registry)
    try:
        done = subprocess.run(
            command.argv,
            cwd=command.cwd,
            env=command.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else None
        raise BuildFailed(
            f"ploomber build did not finish within {timeout:g} s", _tail(output)
        ) from exc
    except FileNotFoundError as exc:
        raise OperationError(f"{command.argv[0]} not found: run `make install` first") from exc
    if done.returncode != 0:
        raise BuildFailed(
            f"ploomber build failed (exit {done.returncode}) in {command.cwd}", _tail(done.stdout)
        )
    after = current_candidate(paths.registry)
    AuditLog(paths.audit).record(
        actor or default_actor(),
        "retrain",
        symbols=list(symbols) or list(settings.symbols),
        days=days if days is not None else settings.days,
        candidate=after,
        previous_candidate=before,
    )
    return RetrainResult(
        candidate=after, previous_candidate=before, command=command, output=done.stdout or ""
    )


# ------------------------------------------------------------------------- schedule


def template_path(root: Path) -> Path:
    """The committed cron template (the project's, else the one beside this package)."""
    for base in (root, Path(__file__).resolve().parents[1]):
        candidate = base / "ops" / "cron" / TEMPLATE_NAME
        if candidate.is_file():
            return candidate
    raise OperationError(f"cron template ops/cron/{TEMPLATE_NAME} not found under {root}")


def render_schedule(template: str, values: Mapping[str, str]) -> str:
    """Fill every {{NAME}}; an unknown placeholder is an error, not a silent blank."""
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise OperationError(f"cron template has unknown placeholders: {missing}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def schedule_values(env_file: Path | str, settings: Settings) -> dict[str, str]:
    """Real, shell-quoted paths of this checkout, resolved now."""
    root = project_root(env_file)
    logs = Paths.of(settings).cron_logs
    return {
        "PROJECT": shlex.quote(str(root)),
        "BIN": shlex.quote(str(bin_dir())),
        "ENV_FILE": shlex.quote(Path(env_file).name),
        "LOGS": shlex.quote(str(logs)),
    }


def write_schedule(
    env_file: Path | str, settings: Settings, output: Path | str | None = None
) -> Path:
    """Write the crontab for this checkout (default <project>/ops/cron/levibot.cron)."""
    root = project_root(env_file)
    text = render_schedule(template_path(root).read_text(), schedule_values(env_file, settings))
    out = Path(output) if output is not None else root / "ops" / "cron" / SCHEDULE_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    Paths.of(settings).cron_logs.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def cron_jobs(text: str) -> list[str]:
    """The job lines of a crontab (no comments, blanks or variable assignments)."""
    jobs = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", stripped):
            continue
        jobs.append(stripped)
    return jobs
