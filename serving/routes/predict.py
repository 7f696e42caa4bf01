"""Prediction endpoints: a query, one call into the service, a typed answer.

The service is synchronous (LightGBM, torch, file locks and appends). A request whose
answer is already in memory (this bar's outputs cached, both paper books done with the
bar, no registry or feature file changed) is answered on the event loop: it costs a few
stats and one log append, less than the thread hop (measured: a hop cost ~190 us of a
~400 us request). Anything else -- a file read, a registry load, a model call, a book
acting under its lock -- runs in a worker thread, never on the loop, so a slow
MC-dropout draw or a lock wait cannot stall `/ping`, `/healthz` or other clients. Two
capacity limits keep the kinds apart: deep and ensemble calls hold at most `MC_THREADS`
threads (the draws themselves are limited further inside the service), so a flood of
them, or one stuck on a paper book's lock, cannot take the LightGBM route's threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from levibot.online.readiness import NeedsWork
from serving import metrics
from serving.deps import get_service
from serving.params import CLIENT_ID, N_SAMPLES, SYMBOL, openapi_parameters
from serving.schemas import DeepPrediction, EnsemblePrediction, Prediction, errors

FAST_THREADS = 16  # LightGBM: microseconds of model work, mostly file appends
MC_THREADS = 8  # deep/ensemble: waits (locks, the service's draw slots) must not queue all


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


async def _serve(request: Request, endpoint: str, kind: str, n_samples: int = 20) -> JSONResponse:
    """Returned as a ready JSONResponse: the dict is built by the service to the schema
    (tests check it), and skipping a second validation pass keeps the hot path cheap."""
    service = await get_service(request)
    symbol, client_id = SYMBOL.read(request), CLIENT_ID.read(request)
    call = partial(service.predict, symbol.upper(), kind, client_id=client_id, n_samples=n_samples)
    try:
        response = call(ready_only=True)  # from memory: cheaper than a thread hop
    except NeedsWork:
        limiter = request.app.state.limits.for_kind(kind)
        response = await anyio.to_thread.run_sync(call, limiter=limiter)
    metrics.observe_prediction(endpoint, response)
    return JSONResponse(response)


@router.get(
    "/predict", response_model=Prediction,
    openapi_extra=openapi_parameters(SYMBOL, CLIENT_ID),
)  # fmt: skip
async def predict(request: Request) -> JSONResponse:
    """LightGBM, calibrated."""
    return await _serve(request, "/ml/predict", "lgbm")


@router.get(
    "/predict_deep", response_model=DeepPrediction,
    openapi_extra=openapi_parameters(SYMBOL, N_SAMPLES, CLIENT_ID),
)  # fmt: skip
async def predict_deep(request: Request) -> JSONResponse:
    """Transformer with MC-dropout: p_up, mu and the epistemic/aleatoric split."""
    return await _serve(request, "/ml/predict_deep", "deep", N_SAMPLES.read(request))


@router.get(
    "/predict_ensemble", response_model=EnsemblePrediction,
    openapi_extra=openapi_parameters(SYMBOL, CLIENT_ID),
)  # fmt: skip
async def predict_ensemble(request: Request) -> JSONResponse:
    """Weighted by the current ensemble weights (hot-reloaded)."""
    return await _serve(request, "/ml/predict_ensemble", "ensemble")
