"""Read-only status endpoints (open, no token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from levibot.online.service import PredictionService
from levibot.state.drift_log import latest_drift_status
from levibot.state.records import read_marathon
from levibot.timeframe import to_utc
from serving import metrics
from serving.deps import get_service
from serving.errors import clip, redact_paths, roots_of
from serving.schemas import AutomationStatus, Health, ModelStatus, errors

router = APIRouter(tags=["status"], responses=errors(**{"503": "server state unavailable"}))
Service = Annotated[PredictionService, Depends(get_service)]


@router.get("/healthz", response_model=Health)
def healthz(service: Service) -> dict:
    """Always 200 with a body: `status` says ok / degraded / unavailable and `problems` why.
    File-system paths in the reasons are reduced to file names."""
    health, roots = service.health(), roots_of(service)
    health["problems"] = [redact_paths(p, roots) for p in health["problems"]]
    health["registry_status"] = redact_paths(health["registry_status"], roots)
    return health


@router.get("/ml/model/status", response_model=ModelStatus)
def model_status(service: Service) -> dict:
    snapshot = service.snapshot()

    def info(release) -> dict | None:
        if release is None:
            return None
        entry = release.entry
        return {
            "model_id": entry.id,
            "role": release.role,
            "trained_at": entry.trained_at.isoformat(),
            "policy": entry.policy.model_dump(),
            "calibration": {
                k: m.calibration.model_dump(exclude={"artifact"}) for k, m in entry.models.items()
            },
            "metrics": {k: m.metrics for k, m in entry.models.items()},
        }

    return {
        "prod": info(snapshot.prod),
        "candidate": info(snapshot.candidate),
        "registry_status": redact_paths(service.watcher.status, roots_of(service)),
        "ensemble_weights": snapshot.weights,
    }


@router.get("/automation/status", response_model=AutomationStatus)
def automation_status(service: Service) -> dict:
    snapshot = service.snapshot()
    try:
        marathon = read_marathon(service.paths) or {}
    except ValueError:  # a damaged snapshot: no marathon to report
        marathon = {}
    started = marathon.get("started_at")
    started = str(started) if started is not None else None
    elapsed = None
    if started is not None:
        try:
            elapsed = (service.clock() - to_utc(started)).total_seconds() / 3600
        except (TypeError, ValueError):
            started = None
    drift = latest_drift_status(service.paths)
    counts = service.shadow.counts()
    return {
        "marathon_running": started is not None,
        "marathon_started_at": started,
        "elapsed_hours": elapsed,
        "canary_fraction": snapshot.canary.fraction if snapshot.canary.enabled else 0.0,
        "predictions_logged": counts.get("predictions", {}),
        "paper_trades_logged": counts.get("trades", {}),
        "last_drift_status": clip(drift, 64) if isinstance(drift, str) else None,
        "ensemble_weights": snapshot.weights,
    }


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(service: Service) -> Response:
    metrics.refresh_scrape_gauges(service)
    body, content_type = metrics.render()
    return Response(content=body, media_type=content_type)


@router.get("/ping", include_in_schema=False)
async def ping() -> dict:
    """Trivial endpoint: the baseline `make bench` compares predictions against."""
    return {"ok": True}
