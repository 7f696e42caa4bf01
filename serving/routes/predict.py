"""Prediction endpoints: a query, one call into the service, a typed answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse

from levibot.online.service import MAX_N_SAMPLES, PredictionService
from serving import metrics
from serving.deps import get_service
from serving.schemas import DeepPrediction, EnsemblePrediction, Prediction

router = APIRouter(prefix="/ml", tags=["predictions"])
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


def _serve(service: PredictionService, endpoint: str, kind: str, symbol: str,
           client_id: str | None, n_samples: int = 20) -> JSONResponse:  # fmt: skip
    """Returned as a ready JSONResponse: the dict is built by the service to the schema
    (tests check it), and skipping a second validation pass keeps the hot path cheap."""
    response = service.predict(symbol.upper(), kind, client_id=client_id, n_samples=n_samples)
    metrics.observe_prediction(endpoint, response)
    return JSONResponse(response)


@router.get("/predict", response_model=Prediction)
async def predict(service: Service, symbol: Symbol, client_id: ClientId = None) -> JSONResponse:
    """LightGBM, calibrated."""
    return _serve(service, "/ml/predict", "lgbm", symbol, client_id)


@router.get("/predict_deep", response_model=DeepPrediction)
async def predict_deep(
    service: Service,
    symbol: Symbol,
    n_samples: Annotated[int, Query(ge=1, le=MAX_N_SAMPLES)] = 20,
    client_id: ClientId = None,
) -> JSONResponse:
    """Transformer with MC-dropout: p_up, mu and the epistemic/aleatoric split."""
    return _serve(service, "/ml/predict_deep", "deep", symbol, client_id, n_samples)


@router.get("/predict_ensemble", response_model=EnsemblePrediction)
async def predict_ensemble(
    service: Service, symbol: Symbol, client_id: ClientId = None
) -> JSONResponse:
    """Weighted by the current ensemble weights (hot-reloaded)."""
    return _serve(service, "/ml/predict_ensemble", "ensemble", symbol, client_id)
