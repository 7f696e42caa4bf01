from pathlib import Path

import pandas as pd
import pytest

from levibot.settings import SettingsError, load_settings


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
