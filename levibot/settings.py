"""One typed settings object shared by notebooks, the CLI and the server.

Precedence, highest first: explicit keyword overrides (a notebook's parameters cell,
i.e. ``env.yaml`` plus the build's ``--env--`` overrides as Ploomber rendered them),
environment variables ``LEVIBOT_<FIELD>``, the ``env.yaml`` file, then the defaults
below. Relative paths are resolved against the project root (the env file's folder),
so a notebook executed from any working directory writes to the same places.

Every parameter of the pipeline is a field here, so the CLI, cron and the server see the
same values as the pipeline; an unknown key in a settings file is an error, not ignored.
A run records the settings it used (`save_settings`): the replay workspace's ``env.yaml``
and a live marathon's start snapshot, and the commands that judge a run read those.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from levibot.io import format_errors, read_json, write_text_atomic
from levibot.symbols import parse_symbols
from levibot.timeframe import floor_to_bar, timeframe_seconds, to_utc, utc_now

DEFAULT_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
DEFAULT_ENV_FILE = "env.yaml"
DriftScenario = Literal["none", "vol_shock", "trend_flip", "feature_freeze"]
PATH_FIELDS = ("data_dir", "registry_dir", "reports_dir", "csv_path")


class SettingsError(ValueError):
    """Settings could not be read or are invalid; the message names the file and field."""


class Settings(BaseSettings):
    """Everything a run needs to know: market, window, seed, paths."""

    model_config = SettingsConfigDict(env_prefix="LEVIBOT_", extra="forbid", frozen=True)

    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    timeframe: str = "15m"
    source: Literal["synthetic", "csv", "exchange"] = "synthetic"
    days: float = Field(default=120.0, gt=0, description="length of the ingest window")
    end: datetime | None = Field(
        default=None, description="window end (exclusive); None = the current bar boundary"
    )
    seed: int = 7
    drift_scenario: DriftScenario = "none"
    drift_start: datetime | None = Field(
        default=None, description="when the drift scenario begins; None = 2 days before end"
    )
    sim_edge: float = Field(
        default=1.0, ge=0, description="synthetic: scale of every predictive effect (0 = none)"
    )
    sim_edge_after: float | None = Field(
        default=None, ge=0, description="synthetic: the edge scale from sim_edge_change on"
    )
    sim_edge_change: datetime | None = Field(
        default=None, description="synthetic: when the edge changes to sim_edge_after"
    )
    csv_path: Path | None = None
    timestamp_format: str | None = Field(
        default=None,
        description="csv: strptime format of the timestamp text (e.g. '%d.%m.%Y %H:%M:%S.%f'); "
        "without it the day/month order is inferred from the whole column",
    )
    exchange_id: str = "binance"
    data_dir: Path = Path("data")
    registry_dir: Path = Path("registry")
    reports_dir: Path = Path("reports")
    horizon: int = Field(default=3, ge=1, description="label horizon in bars")
    market_calendar: Literal["24/7", "fx"] = Field(
        default="24/7", description="when the market trades: staleness counts open time only"
    )
    max_bad_fraction: float = Field(default=0.01, ge=0, le=1)
    holdout_hours: float = Field(
        default=72.0,
        ge=0,
        description="newest data kept out of every train/calibration/test window",
    )
    prod_lag_days: float = Field(
        default=7.0,
        ge=0,
        description="on an empty registry, prod trains on data ending this much earlier",
    )
    lgbm_num_boost_round: int = Field(default=600, ge=1)
    lgbm_early_stopping_rounds: int = Field(default=50, ge=1)
    deep_seq_len: int = Field(default=64, ge=8, description="bars per sequence, a multiple of 8")
    deep_epochs: int = Field(default=10, ge=1)
    deep_n_samples: int = Field(default=20, ge=1, le=200, description="MC-dropout samples")
    fee_bps: float = Field(default=10.0, ge=0, description="per side, on every position change")
    slippage_bps: float = Field(default=5.0, ge=0)
    drift_current_hours: float = Field(
        default=24.0, gt=0, description="drift: newest window compared with the reference"
    )
    tuning_days: float = Field(default=3.0, gt=0, description="ensemble tuning: days of logs")
    replay_requests_per_bar: int = Field(
        default=12, ge=1, description="marathon replay: requests sent per bar"
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        """Accept 'BTCUSDT,ETHUSDT' (CLI / env var) as well as a YAML list."""
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        return value

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        symbols = parse_symbols(value)
        if not symbols:
            raise ValueError("symbols names no symbol; list at least one, e.g. BTCUSDT,ETHUSDT")
        return symbols

    @field_validator("deep_seq_len")
    @classmethod
    def _whole_patches(cls, value: int) -> int:
        if value % 8:
            raise ValueError(
                f"deep_seq_len must be a multiple of 8 (the patch length), got {value}"
            )
        return value

    @field_validator("timestamp_format", mode="before")
    @classmethod
    def _check_timestamp_format(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null")):
            return None  # an unset env variable or a rendered null
        if not isinstance(value, str) or "%" not in value:
            raise ValueError(
                f"timestamp_format {value!r} has no % directive: give a strptime format "
                "such as '%d.%m.%Y %H:%M:%S' (day first) or '%m/%d/%Y %H:%M' (month first)"
            )
        return value

    @field_validator("timeframe")
    @classmethod
    def _check_timeframe(cls, value: str) -> str:
        timeframe_seconds(value)
        return value

    @field_validator("drift_scenario", mode="before")
    @classmethod
    def _none_scenario(cls, value: Any) -> Any:
        """Ploomber renders the YAML word `none` as Python None."""
        return "none" if value is None else value

    @field_validator("end", "drift_start", "sim_edge_change", "sim_edge_after", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value in ("", "none", "None", "null") else value

    @model_validator(mode="after")
    def _utc_times(self) -> Settings:
        if (self.sim_edge_after is None) != (self.sim_edge_change is None):
            raise ValueError("sim_edge_after and sim_edge_change go together (new edge and time)")
        for name in ("end", "drift_start", "sim_edge_change"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, to_utc(value).to_pydatetime())
        return self

    def window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """[start, end) of the ingest window, both on the bar grid, in UTC."""
        import pandas as pd

        end = floor_to_bar(self.end if self.end is not None else now or utc_now(), self.timeframe)
        start = floor_to_bar(end - pd.Timedelta(days=self.days), self.timeframe)
        return start.to_pydatetime(), end.to_pydatetime()

    def resolved(self, root: Path) -> Settings:
        """A copy whose relative paths are made absolute under `root`."""
        updates = {}
        for name in PATH_FIELDS:
            value = getattr(self, name)
            if value is not None and not Path(value).is_absolute():
                updates[name] = (Path(root) / value).resolve()
        return self.model_copy(update=updates)


def read_env_yaml(env_file: Path) -> dict[str, Any]:
    """The plain key/values of an env.yaml; Ploomber-only placeholders are skipped."""
    try:
        raw = yaml.safe_load(Path(env_file).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read settings file {env_file}: {exc}") from exc
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise SettingsError(f"settings file {env_file} must hold a mapping, got {kind}")
    return {k: v for k, v in raw.items() if not (isinstance(v, str) and "{{" in v)}


def load_settings(
    env_file: Path | str | None = DEFAULT_ENV_FILE,
    *,
    root: Path | str | None = None,
    required: bool = False,
    **overrides: Any,
) -> Settings:
    """Settings from env file + environment + overrides, paths resolved under `root`.

    `root` defaults to the env file's folder (or the working directory without one).
    A missing env file means the defaults unless `required` (a file the user named);
    an unreadable or invalid one is always an error.
    """
    file_values: dict[str, Any] = {}
    env_path = Path(env_file) if env_file else None
    if env_path is not None and not env_path.exists() and required:
        raise SettingsError(
            f"settings file {env_path} not found: pass an existing --env-file "
            f"(the project's {DEFAULT_ENV_FILE})"
        )
    if env_path is not None and env_path.exists():
        file_values = read_env_yaml(env_path)
    base = Path(root) if root else (env_path.parent if env_path else Path.cwd())
    try:
        from_env = Settings()  # environment variables over defaults
        env_set = from_env.model_fields_set
        merged = {k: v for k, v in file_values.items() if k not in env_set}
        merged.update({k: getattr(from_env, k) for k in env_set})
        merged.update(overrides)
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        source = env_path if env_path else "environment/overrides"
        raise SettingsError(f"invalid settings (from {source}): {format_errors(exc)}") from exc
    return settings.resolved(base.resolve())


def settings_payload(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON/YAML values (what a run records)."""
    return settings.model_dump(mode="json")


def save_settings(path: Path | str, settings: Settings) -> Path:
    """Record the whole settings as a YAML settings file (a replay's or a server's).

    Paths are written absolute (relative ones resolved against the working directory),
    so the file means the same folders wherever it is read from.
    """
    absolute = settings.resolved(Path.cwd())
    text = yaml.safe_dump(settings_payload(absolute), sort_keys=True)
    return write_text_atomic(path, text)


def load_recorded_settings(path: Path | str) -> Settings:
    """A run's recorded settings file, as recorded: environment variables do not apply
    (a stray LEVIBOT_HORIZON must not change how a finished run is judged)."""
    return settings_from_record(read_env_yaml(Path(path)), source=str(path)).resolved(
        Path(path).parent.resolve()
    )


def settings_from_record(payload: dict[str, Any], *, source: str) -> Settings:
    """Settings a run recorded (`settings_payload`); an invalid record names `source`."""
    try:
        return Settings.model_validate(payload)
    except ValidationError as exc:
        raise SettingsError(f"invalid settings recorded in {source}: {format_errors(exc)}") from exc


def task_settings(manifest: Path | str, **params: Any) -> Settings:
    """A pipeline task's settings: the ingest's recorded ones plus the task's own parameters.

    Each task receives only the parameters it uses (so Ploomber re-runs exactly the tasks
    a changed parameter affects); market and path settings come from the ingest manifest.
    Relative paths in `params` resolve under the project root the ingest recorded.
    """
    record = read_json(manifest)
    base = settings_payload(settings_from_record(record["settings"], source=str(manifest)))
    try:
        merged = Settings.model_validate({**base, **params})
    except ValidationError as exc:
        raise SettingsError(f"invalid task parameters: {format_errors(exc)}") from exc
    return merged.resolved(Path(record.get("project_root") or Path(manifest).parent))
