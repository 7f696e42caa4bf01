"""Signals and paper books agree, across workers, under the kill-switch and bad files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from levibot.data.store import FeatureStore
from levibot.online.service import PredictionService


def fix_p(service: PredictionService, p_up: float) -> None:
    """Make both releases' calibrated LightGBM say `p_up` (the paper books' model)."""
    for release in (service.snapshot().prod, service.snapshot().candidate):
        release.predict_lgbm = lambda rows, p=p_up: p


def next_bar(project, clock) -> None:
    store = FeatureStore(project.data_dir / "store", "15m")
    for symbol in project.symbols:
        frame = store.read(symbol)
        new = frame.iloc[[-1]].copy()
        new.index = new.index + pd.Timedelta(minutes=15)
        new.index.name = "timestamp"
        store.write(symbol, pd.concat([frame, new]))
    clock.now += pd.Timedelta(minutes=15)


def book(project, role: str = "prod") -> dict:
    return json.loads((project.data_dir / "serving" / "paper" / f"{role}.json").read_text())


@pytest.fixture
def services(project, clock):
    """Two services on the same files: two workers."""
    return PredictionService(project, clock=clock), PredictionService(project, clock=clock)


def test_signal_matches_what_the_book_did_across_workers(services, project, clock):
    one, two = services
    fix_p(one, 0.99)
    assert one.predict("BTCUSDT", "lgbm")["signal"] == "ENTRY"
    assert "BTCUSDT" in book(project)["positions"]
    next_bar(project, clock)
    fix_p(two, 0.01)  # the other worker never saw the entry in its own memory
    answer = two.predict("BTCUSDT", "lgbm")
    assert answer["signal"] == "EXIT"
    assert "BTCUSDT" not in book(project)["positions"]
    assert len(two.shadow.trades()) >= 1


def test_kill_switch_blocks_entries_but_lets_positions_exit(services, project, clock):
    one, _ = services
    fix_p(one, 0.99)
    one.predict("ETHUSDT", "lgbm")
    one.kill_switch.set(True, actor="test", reason="drill")
    next_bar(project, clock)
    fix_p(one, 0.01)
    answer = one.predict("ETHUSDT", "lgbm")
    assert (answer["signal"], answer["reason"]) == ("EXIT", None)
    assert "ETHUSDT" not in book(project)["positions"]
    next_bar(project, clock)
    fix_p(one, 0.99)
    answer = one.predict("ETHUSDT", "lgbm")
    assert (answer["signal"], answer["reason"]) == ("HOLD", "kill_switch")
    assert "ETHUSDT" not in book(project)["positions"]


def test_a_corrupt_paper_book_does_not_stop_predictions(services, project):
    one, _ = services
    path = project.data_dir / "serving" / "paper" / "prod.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{half a book")
    assert one.predict("BTCUSDT", "lgbm")["p_up"] >= 0
    assert path.read_text() == "{half a book"  # never reset: positions would be lost


def test_a_bar_is_not_served_before_it_closes(services, clock):
    one, _ = services
    clock.now -= pd.Timedelta(minutes=10)  # inside the newest bar
    assert one.predict("BTCUSDT", "lgbm")["bar_time"] == "2026-01-14T23:30:00+00:00"
