"""Prometheus metrics, correct under several worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``make serve`` sets it), prometheus_client's
multiprocess mode aggregates counters and histograms over workers and gauges keep the
most recent value written by any worker; without it a normal registry is used (tests).
Scrape-time gauges (staleness, kill-switch, ECE, Sharpe, ...) are refreshed by the
worker that answers the scrape. The drift series come from the newest drift report (the
checks run in other processes) through a collector, in either mode.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from levibot.online.service import PredictionService
from levibot.state.drift_log import EVENT_SEVERITIES, latest_drift, report_event_counts
from levibot.state.paths import Paths

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    return Gauge(name, doc, labels, multiprocess_mode="mostrecent")


MODEL_ECE = _gauge(
    "levibot_ml_model_ece", "Calibrated ECE of the served models", ("model", "variant")
)
STALENESS = _gauge(
    "levibot_ml_feature_staleness_seconds", "Age of the newest closed bar", ("symbol",)
)
ENSEMBLE_WEIGHT = _gauge("levibot_ensemble_weight", "Current ensemble weight", ("model",))
UNCERTAINTY = _gauge(
    "levibot_ml_uncertainty", "MC-dropout std of p_up, last prediction", ("symbol",)
)
PAPER_PNL = _gauge("levibot_paper_pnl", "Paper PnL of closed trades", ("model", "window"))
MODEL_SHARPE = _gauge("levibot_ml_model_sharpe", "Test-window Sharpe of the policy", ("model",))
MODEL_MAX_DD = _gauge("levibot_ml_model_max_dd", "Test-window max drawdown", ("model",))
KILL_SWITCH = _gauge("levibot_kill_switch", "1 while the kill-switch is on")
CONFIDENCE = Histogram(
    "levibot_ml_prediction_confidence",
    "|p_up - 0.5| of served predictions",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5),
)
PREDICTIONS = Counter(
    "levibot_predictions", "Served predictions", ("endpoint", "variant", "signal")
)
LATENCY = Histogram(
    "levibot_http_request_duration_seconds",
    "Request latency",
    ("route", "method", "status"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """One latency observation with labels from fixed sets only: the server accepts any
    method token and any path, and a label per distinct value would let an anonymous
    client grow /metrics without bound. `route` is the matched route's template (or
    'unmatched'); an unknown method is 'other', a status outside 100-599 'other'."""
    method_label = method if method in HTTP_METHODS else "other"
    status_label = str(status) if 100 <= status <= 599 else "other"
    LATENCY.labels(route, method_label, status_label).observe(seconds)


DRIFT_LEVELS = {"ok": 0, "warning": 1, "critical": 2}  # anything else (or no check): -1


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class DriftState:
    """What the newest drift report says, as exported on `/metrics`."""

    psi: dict[str, float] = field(default_factory=dict)
    psi_critical_threshold: dict[str, float] = field(default_factory=dict)
    status: int = -1
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_SEVERITIES, 0))

    @classmethod
    def read(cls, paths: Paths) -> DriftState:
        """From the latest report; none yet or unreadable: no features, status -1, 0 events."""
        latest = latest_drift(paths) or {}  # read once: every series from one report
        features = latest.get("features")
        psi: dict[str, float] = {}
        limit: dict[str, float] = {}
        for name, feature in (features if isinstance(features, dict) else {}).items():
            if not isinstance(feature, dict):
                continue
            if _finite(feature.get("psi")):
                psi[str(name)] = float(feature["psi"])
            if _finite(feature.get("psi_critical_threshold")):
                limit[str(name)] = float(feature["psi_critical_threshold"])
        status = latest.get("status")
        level = DRIFT_LEVELS.get(status, -1) if isinstance(status, str) else -1
        return cls(psi, limit, level, report_event_counts(latest))


class DriftCollector:
    """The drift series, built at scrape time from the drift log rather than kept in
    metric objects: checks run in other processes (cron, replay), so the event counter must
    be the log's count (never incremented here), and a feature gone from the newest report
    must vanish, which labelled gauges cannot do in multiprocess mode (no clear/remove)."""

    def __init__(self) -> None:
        self.state = DriftState()

    def refresh(self, paths: Paths) -> None:
        self.state = DriftState.read(paths)  # one assignment: a concurrent scrape sees one

    def describe(self) -> Iterator[Metric]:
        return self._families(DriftState(events={}))

    def collect(self) -> Iterator[Metric]:
        return self._families(self.state)

    @staticmethod
    def _families(state: DriftState) -> Iterator[Metric]:
        psi = GaugeMetricFamily(
            "levibot_ml_drift_psi", "PSI per feature from the last drift check", labels=["feature"]
        )
        for name, value in sorted(state.psi.items()):
            psi.add_metric([name], value)
        limit = GaugeMetricFamily(
            "levibot_ml_drift_psi_critical_threshold",
            "Each feature's effective critical PSI limit in the last drift check",
            labels=["feature"],
        )
        for name, value in sorted(state.psi_critical_threshold.items()):
            limit.add_metric([name], value)
        status = GaugeMetricFamily(
            "levibot_ml_drift_status",
            "Last drift check: 0 ok, 1 warning, 2 critical, -1 other or no check",
        )
        status.add_metric([], state.status)
        events = CounterMetricFamily(
            "levibot_ml_drift_events", "Drift checks at warning/critical", labels=["severity"]
        )
        for severity, count in state.events.items():
            events.add_metric([severity], count)
        yield from (psi, limit, status, events)


DRIFT = DriftCollector()
REGISTRY.register(DRIFT)  # rendered without multiprocess; render() adds it to its registry


def observe_prediction(endpoint: str, response: dict[str, Any]) -> None:
    PREDICTIONS.labels(endpoint, response["variant"], response["signal"]).inc()
    CONFIDENCE.observe(response["confidence"])
    if "epistemic" in response:
        UNCERTAINTY.labels(response["symbol"]).set(response["epistemic"])


def refresh_scrape_gauges(service: PredictionService) -> None:
    """Values read from shared state at scrape time."""
    snapshot = service.snapshot()
    for symbol, seconds in service.staleness(snapshot).items():
        STALENESS.labels(symbol).set(seconds if seconds is not None else math.inf)
    KILL_SWITCH.set(1 if service.kill_switch.is_on() else 0)
    for name, weight in snapshot.weights.items():
        ENSEMBLE_WEIGHT.labels(name).set(weight)
    for variant, release in (("prod", snapshot.prod), ("canary", snapshot.candidate)):
        if release is None:
            continue
        for kind in ("lgbm", "deep"):
            MODEL_ECE.labels(kind, variant).set(release.ece(kind))
        metrics = release.entry.models["lgbm"].metrics
        MODEL_SHARPE.labels(release.role).set(metrics.get("policy_sharpe", 0.0))
        MODEL_MAX_DD.labels(release.role).set(metrics.get("policy_max_drawdown", 0.0))
    DRIFT.refresh(service.paths)
    now = service.clock()
    trades = service.shadow.trades(since=now - pd.Timedelta(days=7))
    for role in ("prod", "candidate"):
        mine = trades[trades["model"] == role]
        for window, days in (("1d", 1), ("7d", 7)):
            recent = mine[mine["exit_time"] >= now - pd.Timedelta(days=days)]
            PAPER_PNL.labels(role, window).set(float(recent["pnl"].sum()))


def render() -> tuple[bytes, str]:
    """The exposition text (aggregated over workers in multiprocess mode)."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        ProcessCollector(registry=registry)  # RSS etc. of the worker answering the scrape
        registry.register(DRIFT)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
