"""What the prediction endpoints are called (their file locations are `levibot.state`).

Kept free of heavy imports (no torch, no models) so the tuner, the drift check and the
marathon tools can name the endpoints without loading the models.
"""

from __future__ import annotations

ENDPOINTS = {"lgbm": "/ml/predict", "deep": "/ml/predict_deep", "ensemble": "/ml/predict_ensemble"}
