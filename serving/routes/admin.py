"""State-changing endpoints, all behind the bearer token and written to the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from levibot.online.service import PredictionService
from serving.auth import require_admin
from serving.deps import get_service
from serving.errors import redact_paths, roots_of
from serving.schemas import CanarySettings, KillSwitchState, ReloadResult, errors

router = APIRouter(
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=errors(**{
        "401": "missing or wrong bearer token",
        "409": "the registry, canary policy or a state file is unusable",
        "422": "invalid parameter",
        "503": "admin endpoints disabled (no token configured) or state unavailable",
    }),
)  # fmt: skip
Service = Annotated[PredictionService, Depends(get_service)]
Actor = Annotated[str, Depends(require_admin)]


@router.post("/ml/kill", response_model=KillSwitchState)
def kill(service: Service, actor: Actor, enabled: Annotated[bool, Query()]) -> dict:
    """While on, every prediction says HOLD (reason kill_switch) and no paper position opens."""
    return service.set_kill_switch(enabled, actor=actor)


@router.post("/canary", response_model=CanarySettings)
def canary(
    service: Service,
    actor: Actor,
    enabled: Annotated[bool | None, Query()] = None,
    fraction: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
) -> dict:
    """Enable/disable the canary and set the candidate's traffic fraction in [0, 1]."""
    return service.set_canary(enabled=enabled, fraction=fraction, actor=actor)


@router.post("/registry/reload", response_model=ReloadResult)
def reload(service: Service, actor: Actor) -> dict:
    result = service.reload(actor=actor)
    return {"registry_status": redact_paths(result["registry_status"], roots_of(service))}
