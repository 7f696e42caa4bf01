"""The ensemble weights file (`Paths.ensemble_weights`): its only reader and writer.

The server serves ``weights`` ({lgbm, deep}, normalised to sum 1); the tuner writes them
with its reasons and a bounded history. Every number must be finite and non-negative
with a positive sum: a file that is not is refused like a corrupt registry (the server
keeps its last good snapshot), never served as NaN.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from levibot.io import CorruptFileError, read_json, write_json_atomic

DEFAULT_WEIGHTS = {"lgbm": 0.5, "deep": 0.5}
HISTORY_LENGTH = 30


class WeightsFileError(CorruptFileError):
    """The weights file exists but does not hold usable weights."""


def weights_of(payload: Any, path: Path | str) -> dict[str, float]:
    """{lgbm, deep} normalised to sum 1; WeightsFileError naming `path` otherwise."""
    weights = payload.get("weights", payload) if isinstance(payload, dict) else None
    try:
        values = {k: float(weights[k]) for k in DEFAULT_WEIGHTS}
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsFileError(
            f"{path}: weights must hold numbers for lgbm and deep ({exc})"
        ) from exc
    total = sum(values.values())
    finite = all(math.isfinite(v) and v >= 0 for v in values.values())
    if not finite or not math.isfinite(total) or total <= 0:
        raise WeightsFileError(
            f"{path}: weights must be finite, non-negative, with a positive sum, got {values}"
        )
    return {k: v / total for k, v in values.items()}


def read_weights_file(path: Path | str) -> dict[str, Any] | None:
    """The whole payload (weights checked), or None when there is no file yet."""
    path = Path(path)
    if not path.exists():
        return None
    payload = read_json(path)  # CorruptFileError names the file
    if not isinstance(payload, dict):
        raise WeightsFileError(f"{path}: expected a JSON object, got {type(payload).__name__}")
    weights_of(payload, path)
    if not isinstance(payload.get("history", []), list):
        raise WeightsFileError(f"{path}: 'history' must be a list")
    return payload


def load_weights(path: Path | str) -> dict[str, float]:
    """The weights to serve: the file's, or the 0.5 / 0.5 defaults without a file."""
    payload = read_weights_file(path)
    return dict(DEFAULT_WEIGHTS) if payload is None else weights_of(payload, path)


def current_weights(path: Path | str) -> dict[str, float] | None:
    """The weights in the file, or None without one (the tuner's 'previous')."""
    payload = read_weights_file(path)
    return None if payload is None else weights_of(payload, path)


def append_weights(path: Path | str, record: dict[str, Any], history_entry: dict[str, Any]) -> Path:
    """Write a new weights record, carrying the last `HISTORY_LENGTH` history entries over.

    The caller holds ``file_lock(path)`` around its whole read-tune-write cycle, so a
    concurrent tuning run cannot lose history.
    """
    path = Path(path)
    weights_of(record, path)
    previous = read_weights_file(path)
    history = list(previous.get("history", [])) if previous else []
    history.append(history_entry)
    return write_json_atomic(path, {**record, "history": history[-HISTORY_LENGTH:]})
