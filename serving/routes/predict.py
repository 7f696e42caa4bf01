"""Prediction endpoints: a query, one call into the service, a typed answer.

The service is synchronous (LightGBM, torch, file locks and appends), so each call runs
in a worker thread, never on the event loop: a slow MC-dropout draw must not stall
`/ping`, `/healthz` or the LightGBM route. Two capacity limits keep the kinds apart:
MC-dropout calls (deep, ensemble) can occupy at most `MC_THREADS` threads, so a flood
of them queues behind its own limit while LightGBM predictions keep their threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from levibot.online.service import MAX_N_SAMPLES, PredictionService
from serving import metrics
from serving.deps import get_service
from serving.schemas import DeepPrediction, EnsemblePrediction, Prediction, errors

FAST_THREADS = 16  # LightGBM: microseconds of model work, mostly file appends
MC_THREADS = 2  # MC-dropout: CPU-bound torch work, one per core of the target machine


@dataclass
class PredictionLimits:
    """Per-app thread limits (created with the app, used on its event loop)."""

    fast: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(FAST_THREADS))
    mc: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(MC_THREADS))

    def for_kind(self, kind: str) -> anyio.CapacityLimiter:
        return self.fast if kind == "lgbm" else self.mc


router = APIRouter(
    prefix="/ml",
    tags=["predictions"],
    responses=errors(**{
        "404": "unknown symbol", "409": "the registry or a state file is unusable",
        "422": "invalid parameter", "503": "no prod model, no features or no closed bar yet",
    }),
)  # fmt: skip
Symbol = Annotated[
    str,
    Query(
        min_length=2,
        max_length=24,
        pattern=r"^[A-Za-z0-9]+$",
        description="a symbol served by the registry, e.g. BTCUSDT",
    ),
]
ClientId = Annotated[str | None, Header(alias="X-Client-Id", max_length=128)]
Service = Annotated[PredictionService, Depends(get_service)]


async def _serve(
    request: Request,
    service: PredictionService,
    endpoint: str,
    kind: str,
    symbol: str,
    client_id: str | None,
    n_samples: int = 20,
) -> JSONResponse:
    """Returned as a ready JSONResponse: the dict is built by the service to the schema
    (tests check it), and skipping a second validation pass keeps the hot path cheap."""
    call = partial(service.predict, symbol.upper(), kind, client_id=client_id, n_samples=n_samples)
    limiter = request.app.state.limits.for_kind(kind)
    response = await anyio.to_thread.run_sync(call, limiter=limiter)
    metrics.observe_prediction(endpoint, response)
    return JSONResponse(response)


@router.get("/predict", response_model=Prediction)
async def predict(
    request: Request, service: Service, symbol: Symbol, client_id: ClientId = None
) -> JSONResponse:
    """LightGBM, calibrated."""
    return await _serve(request, service, "/ml/predict", "lgbm", symbol, client_id)


@router.get("/predict_deep", response_model=DeepPrediction)
async def predict_deep(
    request: Request,
    service: Service,
    symbol: Symbol,
    n_samples: Annotated[int, Query(ge=1, le=MAX_N_SAMPLES)] = 20,
    client_id: ClientId = None,
) -> JSONResponse:
    """Transformer with MC-dropout: p_up, mu and the epistemic/aleatoric split."""
    return await _serve(request, service, "/ml/predict_deep", "deep", symbol, client_id, n_samples)


@router.get("/predict_ensemble", response_model=EnsemblePrediction)
async def predict_ensemble(
    request: Request, service: Service, symbol: Symbol, client_id: ClientId = None
) -> JSONResponse:
    """Weighted by the current ensemble weights (hot-reloaded)."""
    return await _serve(request, service, "/ml/predict_ensemble", "ensemble", symbol, client_id)
