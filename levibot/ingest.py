"""The ingest step: fetch -> validate/quarantine -> upsert bars -> features -> manifest.

Every symbol is fetched and validated before anything is written, so a source that
fails validation for one symbol leaves the whole store as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from levibot.data.schema import BAR_COLUMNS
from levibot.data.sources import MarketSource, make_source
from levibot.data.store import upsert_frames
from levibot.data.validate import (
    REASON_COLUMN,
    DataValidationError,
    ValidationResult,
    validate_bars,
)
from levibot.features import compute_feature_panel
from levibot.io import sha256_file, write_csv_atomic, write_json_atomic
from levibot.settings import Settings, settings_payload
from levibot.state.paths import Paths
from levibot.timeframe import timeframe_delta, to_utc, utc_now

QUALITY_COLUMNS = [
    "symbol", "rows_fetched", "rows_clean", "quarantined", "unparseable",
    "incomplete_bars_dropped", "gaps", "missing_bars", "first_bar", "last_bar", "rows_stored",
]  # fmt: skip


@dataclass
class IngestResult:
    """What one ingest run fetched, set aside and stored."""

    window: tuple[pd.Timestamp, pd.Timestamp]
    quality: pd.DataFrame
    quarantine: dict[str, pd.DataFrame]
    features: dict[str, pd.DataFrame]
    manifest_path: Path


def _fetch_and_validate(
    source: MarketSource, settings: Settings, symbol: str, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[ValidationResult, dict]:
    """Validated bars of one symbol plus the source's own report (rows it could not place)."""
    raw = source.fetch(symbol, start, end)
    report = dict(getattr(source, "last_report", {}) or {})
    unparseable = int(report.get("unparseable_timestamps", 0))
    label = f"{source.name} source, symbol {symbol}"
    if raw.empty:
        covered = getattr(source, "coverage", lambda _: None)(symbol)
        held = f"; the data covers {covered[0]} .. {covered[1]}" if covered else ""
        raise DataValidationError(
            f"{label}: no bars between {start} and {end}{held}; set end and days to a window "
            "inside it (end: null means the last bar of a CSV, or now for other sources)"
        )
    result = validate_bars(
        raw, timeframe=settings.timeframe, source=label, max_bad_fraction=settings.max_bad_fraction
    )
    total = len(raw) + unparseable
    if total and (len(result.quarantine) + unparseable) / total > settings.max_bad_fraction:
        raise DataValidationError(
            f"{label}: {unparseable} rows have unparseable timestamps "
            f"(examples: {report.get('unparseable_rows', [])[:3]})"
        )
    return result, report


def _save_quarantine(settings: Settings, symbol: str, rows: pd.DataFrame, run_at: str) -> None:
    """Append this run's bad rows to the symbol's quarantine CSV (deduplicated)."""
    path = Paths.of(settings).quarantine(symbol)
    rows = rows.assign(quarantined_at=run_at)
    if path.exists():
        old = pd.read_csv(path, index_col=0, parse_dates=[0])
        rows = pd.concat([old, rows.reset_index().set_index(old.index.name)])
        key = rows.index.astype(str) + "|" + rows[REASON_COLUMN].astype(str)
        rows = rows[~key.duplicated(keep="last")]
    write_csv_atomic(path, rows)


def _data_end(source: MarketSource, settings: Settings) -> pd.Timestamp | None:
    """For a file source, `end: null` means "up to the file's last bar": the close of the
    newest last bar over the symbols (a file does not grow with the wall clock)."""
    coverage = getattr(source, "coverage", None)
    if coverage is None:
        return None
    ends = [c[1] for c in (coverage(symbol) for symbol in settings.symbols) if c is not None]
    return max(ends) + timeframe_delta(settings.timeframe) if ends else None


def run_ingest(
    settings: Settings,
    *,
    source: MarketSource | None = None,
    now: pd.Timestamp | None = None,
    project_root: Path | str | None = None,
) -> IngestResult:
    """Ingest the settings' window for every symbol and write store + manifest.

    The manifest records the settings and `project_root` (where later tasks resolve
    their own relative paths; default: the data folder's parent).
    """
    now = to_utc(now) if now is not None else utc_now()
    source = source or make_source(settings, now=now)
    data_end = _data_end(source, settings) if settings.end is None else None
    start, end = (pd.Timestamp(t) for t in settings.window(data_end or now))
    validated = {
        symbol: _fetch_and_validate(source, settings, symbol, start, end)
        for symbol in settings.symbols
    }
    paths = Paths.of(settings)
    store = paths.store()
    run_at = now.isoformat()
    merged_bars = {}
    for symbol, (result, _) in validated.items():
        if len(result.quarantine):
            _save_quarantine(settings, symbol, result.quarantine, run_at)
        existing = store.read(symbol, "bars")
        merged_bars[symbol] = upsert_frames(existing, result.clean[BAR_COLUMNS])
    features = {}
    for symbol, derived in compute_feature_panel(merged_bars).items():
        store.write(symbol, merged_bars[symbol], "bars")
        features[symbol] = merged_bars[symbol].join(derived)
        store.write(symbol, features[symbol], "features")
    quality = pd.DataFrame(
        [
            {
                "symbol": symbol,
                "rows_fetched": len(result.clean) + len(result.quarantine),
                "rows_clean": len(result.clean),
                "quarantined": len(result.quarantine),
                "unparseable": int(report.get("unparseable_timestamps", 0)),
                "incomplete_bars_dropped": int(report.get("incomplete_bars_dropped", 0)),
                "gaps": len(result.gaps),
                "missing_bars": result.missing_bars,
                "first_bar": result.clean.index.min(),
                "last_bar": result.clean.index.max(),
                "rows_stored": len(features[symbol]),
            }
            for symbol, (result, report) in validated.items()
        ],
        columns=QUALITY_COLUMNS,
    )
    manifest = {
        "created_at": run_at,
        "source": source.name,
        "timeframe": settings.timeframe,
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "settings": settings_payload(settings),
        "project_root": str(Path(project_root or Path(settings.data_dir).parent).resolve()),
        "symbols": {
            symbol: {
                "path": str(store.path(symbol)),
                "sha256": sha256_file(store.path(symbol)),
                "rows": len(frame),
                "first_bar": frame.index.min().isoformat(),
                "last_bar": frame.index.max().isoformat(),
            }
            for symbol, frame in features.items()
        },
        "quality": quality.assign(
            first_bar=quality["first_bar"].astype(str), last_bar=quality["last_bar"].astype(str)
        ).to_dict(orient="records"),
    }
    manifest_path = write_json_atomic(paths.manifest, manifest)
    return IngestResult(
        window=(start, end),
        quality=quality,
        quarantine={s: r.quarantine for s, (r, _) in validated.items()},
        features=features,
        manifest_path=manifest_path,
    )
