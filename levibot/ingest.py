"""The ingest step: fetch -> validate/quarantine -> upsert bars -> features -> manifest.

Two halves, so a cluster can fan the first one out per symbol (the pipeline's
`fetch-<SYMBOL>` tasks): `stage_symbol` fetches and validates one symbol and writes
nothing to the store; `merge_staged` upserts every staged symbol, computes the
cross-asset features and writes the manifest. Every symbol is staged before anything is
written, so a source that fails validation for one symbol leaves the whole store as it
was. `run_ingest` is both halves in one process.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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


@dataclass
class StagedSymbol:
    """One symbol fetched and validated, not yet in the store (see the module doc)."""

    symbol: str
    source: str
    window: tuple[pd.Timestamp, pd.Timestamp]
    clean: pd.DataFrame
    quarantine: pd.DataFrame
    gaps: int
    missing_bars: int
    unparseable: int = 0
    incomplete_bars_dropped: int = 0

    def report(self) -> dict:
        """The JSON-able part (the frames are kept as files of their own)."""
        return {
            "symbol": self.symbol,
            "source": self.source,
            "window": [self.window[0].isoformat(), self.window[1].isoformat()],
            "gaps": self.gaps,
            "missing_bars": self.missing_bars,
            "unparseable": self.unparseable,
            "incomplete_bars_dropped": self.incomplete_bars_dropped,
        }

    @classmethod
    def from_report(
        cls, report: dict, clean: pd.DataFrame, quarantine: pd.DataFrame
    ) -> StagedSymbol:
        start, end = (pd.Timestamp(t) for t in report["window"])
        return cls(
            symbol=report["symbol"],
            source=report["source"],
            window=(start, end),
            clean=clean,
            quarantine=quarantine,
            gaps=int(report["gaps"]),
            missing_bars=int(report["missing_bars"]),
            unparseable=int(report["unparseable"]),
            incomplete_bars_dropped=int(report["incomplete_bars_dropped"]),
        )


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


def ingest_window(
    source: MarketSource, settings: Settings, now: pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of this run: the settings' window, ending at the file's last bar for a
    file source with `end: null` (the same for every symbol of the run)."""
    data_end = _data_end(source, settings) if settings.end is None else None
    start, end = settings.window(data_end or now)
    return pd.Timestamp(start), pd.Timestamp(end)


def stage_symbol(
    settings: Settings,
    symbol: str,
    *,
    source: MarketSource | None = None,
    now: pd.Timestamp | None = None,
) -> StagedSymbol:
    """Fetch and validate one symbol's window; raises DataValidationError, writes nothing."""
    now = to_utc(now) if now is not None else utc_now()
    source = source or make_source(settings, now=now)
    start, end = ingest_window(source, settings, now)
    result, report = _fetch_and_validate(source, settings, symbol, start, end)
    return StagedSymbol(
        symbol=symbol,
        source=source.name,
        window=(start, end),
        clean=result.clean,
        quarantine=result.quarantine,
        gaps=len(result.gaps),
        missing_bars=result.missing_bars,
        unparseable=int(report.get("unparseable_timestamps", 0)),
        incomplete_bars_dropped=int(report.get("incomplete_bars_dropped", 0)),
    )


MAX_STAGED_SKEW_BARS = 1  # fetch tasks running across one bar close may differ by a bar


def common_window(
    staged: list[StagedSymbol], bar: pd.Timedelta
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The window every staged symbol covers. Fetch tasks on a live source can straddle a
    bar close, so windows may differ by MAX_STAGED_SKEW_BARS; the bars outside the shared
    window are left out so every symbol ends on the same bar (cross-asset features need
    aligned bars). A larger difference means a fetch task's products are from an earlier
    build (Ploomber found its parameters unchanged) and would silently cut fresh bars."""
    start = max(s.window[0] for s in staged)
    end = min(s.window[1] for s in staged)
    newest = max(s.window[1] for s in staged)
    stale = [s for s in staged if newest - s.window[1] > MAX_STAGED_SKEW_BARS * bar]
    if stale or end <= start:
        described = ", ".join(f"{s.symbol} {s.window[0]}..{s.window[1]}" for s in stale or staged)
        what = (
            f"staged from an earlier build: {described}"
            if stale
            else f"no shared window: {described}"
        )
        raise DataValidationError(
            f"the fetch tasks' windows disagree ({what}); newest end {newest}; "
            "rebuild them with ploomber build --force"
        )
    return start, end


def _cut(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Rows of `frame` inside [start, end) (rows without a timestamp are kept)."""
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.empty:
        return frame
    return frame.loc[index.isna() | ((index >= start) & (index < end))]


def _quality_row(staged: StagedSymbol, stored: int) -> dict:
    return {
        "symbol": staged.symbol,
        "rows_fetched": len(staged.clean) + len(staged.quarantine),
        "rows_clean": len(staged.clean),
        "quarantined": len(staged.quarantine),
        "unparseable": staged.unparseable,
        "incomplete_bars_dropped": staged.incomplete_bars_dropped,
        "gaps": staged.gaps,
        "missing_bars": staged.missing_bars,
        "first_bar": staged.clean.index.min(),
        "last_bar": staged.clean.index.max(),
        "rows_stored": stored,
    }


def merge_staged(
    settings: Settings,
    staged: list[StagedSymbol],
    *,
    now: pd.Timestamp | None = None,
    project_root: Path | str | None = None,
) -> IngestResult:
    """Upsert every staged symbol into the store, recompute the features, write the manifest.

    The manifest records the settings and `project_root` (where later tasks resolve
    their own relative paths; default: the data folder's parent).
    """
    by_symbol = {s.symbol: s for s in staged}
    missing = [symbol for symbol in settings.symbols if symbol not in by_symbol]
    if missing or len(by_symbol) != len(staged):
        raise DataValidationError(
            f"ingest needs each of the settings' symbols staged once; missing {missing}, "
            f"staged {[s.symbol for s in staged]}"
        )
    sources = sorted({item.source for item in staged})
    if len(sources) > 1:
        raise DataValidationError(
            f"the staged symbols come from different sources {sources}; rebuild the fetch "
            "tasks with ploomber build --force"
        )
    start, end = common_window(
        [by_symbol[symbol] for symbol in settings.symbols], timeframe_delta(settings.timeframe)
    )
    staged = [
        replace(
            item, clean=_cut(item.clean, start, end), quarantine=_cut(item.quarantine, start, end)
        )
        for item in (by_symbol[symbol] for symbol in settings.symbols)
    ]
    now = to_utc(now) if now is not None else utc_now()
    paths = Paths.of(settings)
    store = paths.store()
    run_at = now.isoformat()
    merged_bars = {}
    for item in staged:
        if len(item.quarantine):
            _save_quarantine(settings, item.symbol, item.quarantine, run_at)
        existing = store.read(item.symbol, "bars")
        merged_bars[item.symbol] = upsert_frames(existing, item.clean[BAR_COLUMNS])
    features = {}
    for symbol, derived in compute_feature_panel(merged_bars).items():
        store.write(symbol, merged_bars[symbol], "bars")
        features[symbol] = merged_bars[symbol].join(derived)
        store.write(symbol, features[symbol], "features")
    quality = pd.DataFrame(
        [_quality_row(item, len(features[item.symbol])) for item in staged],
        columns=QUALITY_COLUMNS,
    )
    manifest = {
        "created_at": run_at,
        "source": staged[0].source,
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
        quarantine={item.symbol: item.quarantine for item in staged},
        features=features,
        manifest_path=manifest_path,
    )


def run_ingest(
    settings: Settings,
    *,
    source: MarketSource | None = None,
    now: pd.Timestamp | None = None,
    project_root: Path | str | None = None,
) -> IngestResult:
    """Ingest the settings' window for every symbol in one process: stage them all, then
    merge (see `merge_staged`)."""
    now = to_utc(now) if now is not None else utc_now()
    source = source or make_source(settings, now=now)
    staged = [stage_symbol(settings, symbol, source=source, now=now) for symbol in settings.symbols]
    return merge_staged(settings, staged, now=now, project_root=project_root)
