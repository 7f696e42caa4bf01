from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from levibot.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("LEVIBOT_"):
            monkeypatch.delenv(name)


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path):
    settings = load_settings(None, root=tmp_path)
    assert settings.symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert settings.timeframe == "15m"
    assert settings.data_dir == tmp_path.resolve() / "data"


def test_precedence_overrides_over_env_vars_over_file(tmp_path, monkeypatch):
    env = write_env(tmp_path, "days: 30\nseed: 1\ntimeframe: 1h\n")
    monkeypatch.setenv("LEVIBOT_SEED", "2")
    monkeypatch.setenv("LEVIBOT_SYMBOLS", "btcusdt, ethusdt")
    settings = load_settings(env, days=9)
    assert settings.days == 9  # override beats file
    assert settings.seed == 2  # env var beats file
    assert settings.timeframe == "1h"  # file beats default
    assert settings.symbols == ["BTCUSDT", "ETHUSDT"]


def test_ploomber_placeholders_and_none_words_are_tolerated(tmp_path):
    env = write_env(tmp_path, "data_dir: '{{here}}/x'\ndrift_scenario: none\nend: null\n")
    settings = load_settings(env, drift_scenario=None)
    assert settings.drift_scenario == "none"
    assert settings.data_dir == tmp_path.resolve() / "data"  # placeholder skipped


def test_window_is_on_the_bar_grid_and_ends_at_end(tmp_path):
    settings = load_settings(None, root=tmp_path, end="2026-01-10 00:07", days=1)
    start, end = settings.window()
    assert pd.Timestamp(end) == pd.Timestamp("2026-01-10", tz="UTC")
    assert pd.Timestamp(start) == pd.Timestamp("2026-01-09", tz="UTC")


def test_default_window_ends_at_the_current_bar(tmp_path):
    settings = load_settings(None, root=tmp_path)
    now = pd.Timestamp("2026-03-01 10:20", tz="UTC")
    assert pd.Timestamp(settings.window(now)[1]) == pd.Timestamp("2026-03-01 10:15", tz="UTC")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("symbols", "BTC/USDT"),
        ("symbols", ""),
        ("timeframe", "7m"),
        ("days", -1),
        ("source", "ftp"),
    ],
)
def test_invalid_values_raise_a_settings_error(tmp_path, field, value):
    with pytest.raises(SettingsError, match=field):
        load_settings(None, root=tmp_path, **{field: value})


def test_corrupt_env_file_names_the_file(tmp_path):
    env = write_env(tmp_path, "days: [unclosed\n")
    with pytest.raises(SettingsError, match=str(env)):
        load_settings(env)
    env.write_text("- just\n- a list\n")
    with pytest.raises(SettingsError, match="mapping"):
        load_settings(env)


def test_an_unknown_key_in_the_file_is_an_error_naming_it(tmp_path):
    env = write_env(tmp_path, "days: 30\nholdout_hour: 24\n")  # a typo, not a default
    with pytest.raises(SettingsError, match="holdout_hour"):
        load_settings(env)


def test_a_named_file_must_exist_but_the_default_may_be_absent(tmp_path):
    with pytest.raises(SettingsError, match=r"nope\.yaml not found"):
        load_settings(tmp_path / "nope.yaml", required=True)
    assert load_settings(tmp_path / "env.yaml").days == 120  # default file absent: defaults


def test_every_setting_is_in_env_yaml_and_every_env_key_is_a_setting():
    """One source: what the pipeline is given, the CLI, cron and the server see too."""
    import yaml

    from levibot.settings import Settings

    root = Path(__file__).resolve().parents[1]
    for name in ("env.yaml", "env.test.yaml"):
        keys = set(yaml.safe_load((root / name).read_text()))
        assert keys <= set(Settings.model_fields), (name, keys - set(Settings.model_fields))
    documented = set(yaml.safe_load((root / "env.yaml").read_text()))
    assert set(Settings.model_fields) - documented <= {"reports_dir"}


def test_saved_settings_load_back_identical(tmp_path):
    from levibot.settings import save_settings

    settings = load_settings(
        None, root=tmp_path, horizon=5, end="2026-01-02T00:00:00Z", tuning_days=1.5
    )
    path = save_settings(tmp_path / "run" / "env.yaml", settings)
    assert load_settings(path, required=True) == settings


def test_task_settings_are_the_ingest_record_plus_the_task_parameters(tmp_path):
    from levibot.ingest import run_ingest
    from levibot.settings import task_settings
    from levibot.state.paths import Paths

    ingest = load_settings(None, root=tmp_path, symbols="BTCUSDT", days=2, end="2026-01-05")
    run_ingest(ingest, project_root=tmp_path)
    task = task_settings(Paths.of(ingest).manifest, horizon=5, registry_dir="reg2")
    assert task.horizon == 5 and task.symbols == ["BTCUSDT"] and task.days == 2
    assert task.registry_dir == tmp_path.resolve() / "reg2"  # under the recorded root
    with pytest.raises(SettingsError, match="horizon"):
        task_settings(Paths.of(ingest).manifest, horizon=0)


def test_a_recorded_run_is_read_as_recorded(tmp_path, monkeypatch):
    """Environment variables must not change how a finished run is judged, and relative
    folders are saved as the absolute folders they meant."""
    from levibot.settings import load_recorded_settings, save_settings

    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, horizon=5).model_copy(
        update={"data_dir": Path("ws/data"), "registry_dir": Path("ws/registry")}
    )
    path = save_settings(tmp_path / "ws" / "env.yaml", settings)
    monkeypatch.setenv("LEVIBOT_HORIZON", "9")
    monkeypatch.setenv("LEVIBOT_DATA_DIR", "/somewhere/else")
    loaded = load_recorded_settings(path)
    assert loaded.horizon == 5
    assert loaded.data_dir == (tmp_path / "ws" / "data").resolve()
    assert load_settings(path).horizon == 9  # a settings file the operator edits: env wins


@pytest.mark.parametrize("blank", ["", "None", "null", None])
def test_a_blank_timestamp_format_means_inferred(blank):
    assert Settings(timestamp_format=blank).timestamp_format is None


def test_a_timestamp_format_without_a_directive_is_refused():
    with pytest.raises(ValidationError, match="no % directive"):
        Settings(timestamp_format="dd.mm.yyyy")
