"""Typed dependencies: the per-process service the app holds in its state.

`async` on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread
hop per request for what is an attribute look-up.
"""

from __future__ import annotations

from fastapi import Request

from levibot.online.service import PredictionService


async def get_service(request: Request) -> PredictionService:
    return request.app.state.service
