"""Typed dependencies: the per-process service the app holds in its state."""

from __future__ import annotations

from fastapi import Request

from levibot.online.service import PredictionService


def get_service(request: Request) -> PredictionService:
    return request.app.state.service
