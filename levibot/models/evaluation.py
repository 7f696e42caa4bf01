"""Classification metrics for P(up), always reported with the window they came from."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, Brier and log-loss; AUC is NaN when the window holds a single class."""
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    if len(y) == 0:
        raise ValueError("no rows to score")
    both = len(np.unique(y)) == 2
    return {
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "n": len(y),
        "base_rate": float(np.mean(y)),
    }


def uncertainty_table(
    y: np.ndarray, p: np.ndarray, uncertainty: np.ndarray, bins: int = 5
) -> pd.DataFrame:
    """Brier score and hit rate per uncertainty quintile: does more doubt mean more error?"""
    frame = pd.DataFrame({"y": y, "p": p, "u": uncertainty}).dropna()
    if frame.empty:
        return pd.DataFrame(columns=["bin", "mean_uncertainty", "brier", "hit_rate", "count"])
    frame["bin"] = pd.qcut(frame["u"].rank(method="first"), q=min(bins, len(frame)), labels=False)
    frame["sq_err"] = (frame["p"] - frame["y"]) ** 2
    frame["hit"] = ((frame["p"] > 0.5) == (frame["y"] > 0.5)).astype(float)
    grouped = frame.groupby("bin")
    return pd.DataFrame(
        {
            "mean_uncertainty": grouped["u"].mean(),
            "brier": grouped["sq_err"].mean(),
            "hit_rate": grouped["hit"].mean(),
            "count": grouped.size(),
        }
    ).reset_index()
